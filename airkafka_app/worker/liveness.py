"""Worker heartbeats, and the sweep that finds tasks whose worker is gone.

Every worker publishes a heartbeat every ``AIRKAFKA_HEARTBEAT_S`` and reads everyone's. A
worker silent for ``AIRKAFKA_WORKER_LOST_AFTER_S`` is lost. The sweep cannot write the table
(writes need the event of the task's partition), so it sends a recovery request for a lost
task on the queue's internal topic, and the intake of the partition's owner decides and records.
Heartbeat times are the senders' clocks: keep the hosts' clocks in sync (NTP).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import faust
from aiokafka import TopicPartition
from mode import Service

from airkafka_app.contract import signing
from airkafka_app.contract.commands import Command
from airkafka_app.contract.heartbeats import Beat, encode_beat, parse_beat, roster
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.states import IN_FLIGHT, State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.control import Control
from airkafka_app.worker.kafka.admin import partition_count
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.kafka.signed import signed
from airkafka_app.worker.pool import WorkerPool
from airkafka_app.worker.tables.tasks import AwaitingReports

if TYPE_CHECKING:
    from airkafka_app.worker.queues import Queue

log = logging.getLogger(__name__)

STOP_ANNOUNCE_S = 5.0


class Heartbeats(Service):
    """The last heartbeat time of every worker, read from the heartbeats topic without a group."""

    def __init__(self, settings: Settings, **kwargs) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self.last_seen: dict[str, float] = {}
        self.urls: dict[str, str] = {}  # worker -> its web server, as its heartbeats say
        self.stopped: set[str] = set()  # workers whose last heartbeat said they stopped
        self.maintenance: dict[str, str | None] = {}  # worker -> its last heartbeat's maintenance comment
        self.caught_up = asyncio.Event()
        self._own_beats_since = 0.0

    def is_lost(self, worker: str | None) -> bool:
        """Silent for the bound, measured on this worker's own heartbeats as read back.

        While the broker is away nobody's heartbeats arrive, this worker's included, so an
        outage makes nobody lost; and a worker judges only once its own heartbeats have
        flowed for the whole bound, so it has had the chance to hear everyone else's.
        """
        settings = self._settings
        own = self.last_seen.get(settings.worker_name)
        bound = settings.worker_lost_after_s
        if not self.caught_up.is_set() or worker == settings.worker_name:
            return False
        if worker in self.stopped:
            return True
        if own is None:
            return False
        return own - self._own_beats_since >= bound and own - self.last_seen.get(worker or "", 0.0) > bound

    def roster(self) -> dict[str, tuple[str, float]]:
        """Worker -> (online, maintenance, lost or stopped; seconds since its last heartbeat)."""
        last = {
            worker: Beat(worker, at, worker in self.stopped, maintenance=self.maintenance.get(worker))
            for worker, at in self.last_seen.items()
        }
        return roster(last, time.time(), self._settings.worker_lost_after_s)

    def _observe(
        self, worker: str, at: float, stopped: bool = False, url: str | None = None, maintenance: str | None = None
    ) -> None:
        settings = self._settings
        # A time ahead of ours would keep its sender alive for as long as it is ahead.
        at = min(at, time.time() + settings.heartbeat_s)
        if stopped:
            self.stopped.add(worker)
        elif at > self.last_seen.get(worker, 0.0):
            self.stopped.discard(worker)  # back, under the same name
        if worker == settings.worker_name and at - self.last_seen.get(worker, 0.0) > 2 * settings.heartbeat_s:
            self._own_beats_since = at  # the first beat after a gap, or ever
        if at >= self.last_seen.get(worker, 0.0):
            self.maintenance[worker] = maintenance
        self.last_seen[worker] = max(at, self.last_seen.get(worker, 0.0))
        if url is not None:
            self.urls[worker] = url

    @Service.task
    async def _read(self) -> None:
        settings = self._settings
        consumer = group_less_consumer(settings)
        await consumer.start()
        try:
            # The worker creates the topic as it starts; a topic deleted since is waited for.
            while not (count := await partition_count(settings, settings.heartbeats_topic)):
                await asyncio.sleep(settings.heartbeat_s)
            tps = [TopicPartition(settings.heartbeats_topic, p) for p in range(count)]
            consumer.assign(tps)
            # Anything older than the loss bound says only that its sender is lost.
            since = int((time.time() - 2 * settings.worker_lost_after_s) * 1000)
            found = await consumer.offsets_for_times({tp: since for tp in tps})
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, found[tp].offset if found[tp] else ends[tp])
            while not self.should_stop:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for message in messages:
                        if not signing.verified(
                            settings.cluster_key, message.topic, message.key, message.value, message.headers
                        ):
                            log.warning(
                                "heartbeat %s:%d@%d skipped: not signed with the cluster key",
                                message.topic,
                                message.partition,
                                message.offset,
                            )
                        elif (beat := parse_beat(message.value)) is None:
                            log.warning(
                                'heartbeat %s:%d@%d skipped: not {"worker": <name>, "at": <time>}',
                                message.topic,
                                message.partition,
                                message.offset,
                            )
                        else:
                            self._observe(*beat)
                if not self.caught_up.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up.set()
        finally:
            await consumer.stop()


class Liveness:
    """This worker's heartbeats, its last one as it stops, and the judgement and sweep of orphans."""

    def __init__(
        self,
        settings: Settings,
        app: faust.App,
        topic: faust.TopicT,
        heartbeats: Heartbeats,
        control: Control,
        pool: WorkerPool,
        queues: Mapping[str, Queue],
        awaiting_report: AwaitingReports,
    ) -> None:
        self._settings = settings
        self._queues = queues
        self._app = app
        self._topic = topic
        self.heartbeats = heartbeats
        self._control = control
        self._pool = pool
        self._awaiting_report = awaiting_report
        # Written when a stop has handed back this worker's tasks (shutdown.py), read as it starts again.
        self._clean_stop = Path(settings.data_dir) / "stopped"
        # When this worker, under its name, last stopped cleanly: what it left then is to be
        # run again at once. After a crash, its records wait out the loss bound instead.
        self.clean_stop_at = 0.0

    def is_orphan(self, record: TaskRecord, queue: str) -> bool:
        """In flight, yet nobody runs it: its worker is lost or has stopped, or it is this worker
        under the same name after a restart, or it is a retry that has come due, or it waited for an
        operator's order to be lifted, which is (control.py) (the caller checks that the pool does
        not hold it)."""
        if record.state not in IN_FLIGHT or self._awaiting_report.get(record.id, 0.0) > record.updated_at:
            return False
        if record.state is State.QUEUED and record.worker is None:
            return self._control.mode.takes(queue)
        if record.retry_at is not None:
            # A retry waits in the table, not on a worker: once due, its partition's owner runs it.
            return record.due_in(time.time()) <= 0
        if record.worker == self._settings.worker_name:
            return (
                record.updated_at <= self.clean_stop_at
                or time.time() - record.updated_at > self._settings.worker_lost_after_s
            )
        return self.heartbeats.is_lost(record.worker)

    def note_clean_stop(self) -> None:
        self._clean_stop.parent.mkdir(parents=True, exist_ok=True)
        self._clean_stop.write_text(repr(time.time()))

    def read_clean_stop(self) -> None:
        """As the worker starts: whether, and when, it last stopped cleanly."""
        if self._clean_stop.exists():
            self.clean_stop_at = float(self._clean_stop.read_text())
            self._clean_stop.unlink()

    def _heartbeat(self, stopped: bool = False) -> dict:
        """A heartbeat's send: the worker's name, web server and maintenance, signed."""
        name = self._settings.worker_name
        url = str(self._app.conf.canonical_url)
        value = encode_beat(name, time.time(), url, self._control.mode.maintenance, stopped)
        return signed(self._settings.cluster_key, self._topic, name.encode(), value)

    async def beat(self) -> None:
        if not self._pool.draining:  # after the last one, which says this worker stopped
            await self._topic.send(**self._heartbeat())

    async def announce_stop(self) -> None:
        """Tell the other workers that this one has stopped, so they recover its tasks at once."""
        try:
            async with asyncio.timeout(STOP_ANNOUNCE_S):
                await (await self._topic.send(**self._heartbeat(stopped=True)))
        except Exception as exc:  # the others will judge it lost after the bound instead
            log.warning("last heartbeat not sent: %r", exc)

    async def sweep(self) -> None:
        """Ask the owners to recover orphans, among the records in flight."""
        if self._app.rebalancing or not self.heartbeats.caught_up.is_set():
            return
        for queue in self._queues.values():
            for record in queue.tasks.in_flight():
                if self.is_orphan(record, queue.name) and not self._pool.holds(record.id):
                    command = Command(**record.command)
                    log.info(
                        "task %s attempt %d %s on lost worker %s: asking its owner to recover it",
                        record.id,
                        record.attempt,
                        record.state.value,
                        record.worker,
                    )
                    await queue.internal.send(**queue.tasks.recovery_request(command))

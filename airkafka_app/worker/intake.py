"""The intake agents, one per queue: each command message becomes a task, or a dead letter saying why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faust.types import EventT, StreamT
from mode import CrashingSupervisor

from airkafka_app.contract import airflow_tasks, signing
from airkafka_app.contract.commands import (
    CANCEL,
    FORCE,
    REPLAY_HEADER,
    Command,
    InvalidCommand,
    decode_command,
    shown,
)
from airkafka_app.contract.dead_letters import MAX_ERROR_CHARS, MAX_KEY_BYTES, dead_letter, encode_dead_letter
from airkafka_app.contract.internal import Recover, Report, decode_internal
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker import task_metrics
from airkafka_app.worker.core import decisions
from airkafka_app.worker.core.task_rules import reserved_header, with_worker_limits
from airkafka_app.worker.parts import Parts
from airkafka_app.worker.pool import Run
from airkafka_app.worker.queues import Queue
from airkafka_app.worker.runners import Runner, runner_for
from airkafka_app.worker.tables.counters import DEAD_LETTERS, DUPLICATES

log = logging.getLogger(__name__)


class Intake:
    """What a queue's intake agent does with each message it reads."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.pool = parts.pool
        self.control = parts.control
        self.liveness = parts.liveness
        self.lookout = parts.lookout
        self.metrics = parts.metrics

    async def _reject(self, queue: Queue, event: EventT, reason: str, unexpected: bool = False) -> None:
        message = event.message
        letter = dead_letter(reason, message.topic, message.partition, message.offset, message.key, message.value)
        # Keyed by a prefix of the message's key: the whole key may be as large as the message.
        await self.parts.topics.dead_letters.send(
            key=(message.key or b"")[:MAX_KEY_BYTES] or None, value=encode_dead_letter(letter)
        )
        queue.counters.increment(DEAD_LETTERS, message.partition)
        internal = message.topic == queue.internal_topic_name
        self.metrics.dead_letters.labels(queue.name, task_metrics.dead_letter_class(reason, internal, unexpected)).inc()
        log.warning(
            "dead letter %s:%d@%d: %s", message.topic, message.partition, message.offset, reason[:MAX_ERROR_CHARS]
        )

    def _known(self, queue: Queue, task_id: str) -> decisions.Known:
        record = queue.tasks.load(task_id)
        return decisions.Known(
            record,
            held=self.pool.holds(task_id),
            runs_here=self.pool.runs(task_id),
            orphan=record is not None and self.liveness.is_orphan(record, queue.name),
        )

    def _lost(self, record: TaskRecord | None) -> str:
        worker = record.worker if record else None
        return f"worker {worker} lost: no heartbeat for {self.settings.worker_lost_after_s:g}s"

    async def _perform(
        self,
        queue: Queue,
        task_id: str,
        effects: list[decisions.Effect],
        event: EventT,
        command: Command | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Carry out what was decided about the task, in order."""
        for effect in effects:
            match effect:
                case decisions.Save(record=record):
                    queue.tasks.save(record, event)
                case decisions.Store(record=record):
                    queue.tasks.store(record, event)
                case decisions.Run(record=record, recovered=recovered):
                    assert command is not None and runner is not None
                    if recovered and record.worker is None:
                        log.info("task %s attempt %d waited, and runs now", task_id, record.attempt)
                    elif recovered and record.retry_at is None:
                        log.warning("task %s attempt %d recovered: %s", task_id, record.attempt, self._lost(record))
                    await self.pool.submit(Run(command, runner, queue.tasks, record, event))
                case decisions.EndRun(reason=reason):
                    self.pool.cancel(task_id, reason)
                case decisions.Forward(worker=worker, reason=reason):
                    await self.control.send_cancel(worker, task_id, reason)
                    log.info("task %s runs on %s, which is asked to end it: %s", task_id, worker, reason)
                case decisions.Duplicate(why=why):
                    queue.counters.increment(DUPLICATES, event.message.partition)
                    self.metrics.duplicates.labels(queue.name, task_metrics.duplicate_class(why)).inc()
                    log.info("task %s duplicate ignored: %s", task_id, why)
                case decisions.Skip(why=why):
                    log.info("task %s: %s", task_id, why)

    def _topics_without_metadata(self, queue: Queue) -> list[str]:
        names = (
            queue.topic_name,
            queue.internal_topic_name,
            queue.tasks.table.changelog_topic_name,
            queue.counters.table.changelog_topic_name,
        )
        return [name for name in names if self.parts.app.consumer.topic_partitions(name) == 0]

    async def _await_topic_metadata(self, queue: Queue) -> None:
        """Wait out metadata that still shows a new topic with 0 partitions.

        Faust would take it for a co-partitioning mismatch and stop the worker. It happens right
        after start-up, before the consumer's next metadata refresh.
        """
        while missing := self._topics_without_metadata(queue):
            log.info("waiting for metadata of %s", ", ".join(missing))
            await asyncio.sleep(0.5)

    async def accept(self, queue: Queue, event: EventT) -> None:
        """Handle one message. Whatever it holds and whatever its handling raises, it ends as a task,
        a change to one, or a dead letter with the reason, and the worker goes on."""
        await self._await_topic_metadata(queue)
        try:
            if event.message.topic == queue.internal_topic_name:
                message = event.message
                if not signing.verified(
                    self.settings.cluster_key, message.topic, message.key, message.value, message.headers
                ):
                    raise InvalidCommand("internal message not signed with the cluster key (AIRKAFKA_CLUSTER_KEY)")
                await self._internal(queue, decode_internal(message.value), event)
            else:
                await self._command(queue, event)
        except InvalidCommand as exc:
            await self._reject(queue, event, str(exc))
        except Exception as exc:
            log.debug(
                "message %s:%d@%d failed",
                event.message.topic,
                event.message.partition,
                event.message.offset,
                exc_info=True,
            )
            await self._reject(queue, event, f"{type(exc).__name__}: {exc}", unexpected=True)

    async def _command(self, queue: Queue, event: EventT) -> None:
        """A message on the commands topic: its class is decided before any runner is asked, so that
        a cancel or a re-key never depends on this worker's runners."""
        message = event.message
        headers = dict(message.headers or [])
        if reserved := reserved_header(list(headers)):
            raise InvalidCommand(f"header {shown(str(reserved))} is reserved to AirKafka's workers")
        command = decode_command(message.key, message.value)
        airflow_tasks.check_id(command)
        if message.key != (routing_key := command.routing_key.encode()):
            # Without its routing key (keyless, or a cancel keyed otherwise), the command sits in a
            # partition that does not own its task's record.
            await queue.commands.send(key=routing_key, value=message.value)
            log.info("task %s re-keyed by %s", command.id, command.routing_key)
            return
        if command.kind == CANCEL:
            target = command.args["target"]
            self.lookout.early.reached(target)  # intake acts on it in order
            effects = decisions.cancel(command.id, self._known(queue, target), worker=self.settings.worker_name)
            await self._perform(queue, target, effects, event)
            return
        command = with_worker_limits(command, self.settings)
        runner = runner_for(self.parts.runners, command, f"worker {self.settings.worker_name}")
        known = self._known(queue, command.id)
        early = self.lookout.early.take(command.id, message.partition, message.offset) if self.lookout.early else None
        effects = decisions.command(
            command,
            known,
            worker=self.settings.worker_name,
            source=f"{message.partition}:{message.offset}",
            forced=headers.get(REPLAY_HEADER) == FORCE,
            size=len(message.value),
            lost=self._lost(known.record),
            cancelled_early=early and f"{early} before it was read",
            waiting=self.control.mode.why_waiting(queue.name),
        )
        await self._perform(queue, command.id, effects, event, command, runner)

    async def _internal(self, queue: Queue, message: Report | Recover, event: EventT) -> None:
        if isinstance(message, Report):
            report = message.record
            await self._perform(queue, report.id, decisions.report(report, queue.tasks.load(report.id)), event)
            return
        command, runner, cannot_run = message.command, None, None
        try:
            runner = runner_for(self.parts.runners, command, f"worker {self.settings.worker_name}")
        except InvalidCommand as exc:
            cannot_run = str(exc)
        known = self._known(queue, command.id)
        effects = decisions.recovery_request(command, known, lost=self._lost(known.record), cannot_run=cannot_run)
        await self._perform(queue, command.id, effects, event, command, runner)


def install(parts: Parts) -> None:
    """An intake agent for each queue."""
    intake = Intake(parts)
    pool, control = parts.pool, parts.control

    def agent(queue: Queue) -> Callable[[StreamT], Awaitable[None]]:
        async def take(stream: StreamT) -> None:
            async for event in stream.events():
                if pool.draining:
                    # The worker is stopping (ops/shutdown.py): this message stays unacknowledged,
                    # for the partition's next owner.
                    await asyncio.Future()
                if not control.caught_up.is_set():
                    await control.caught_up.wait()  # so that a maintenance or a pause holds from the start
                await intake.accept(queue, event)

        return take

    for queue in parts.queues.values():
        # A crash here is a broken setup or a bug: stop the worker and say why, rather than
        # restart the agent in a loop that looks alive.
        parts.app.agent(
            parts.topics.intake(queue.name), name=f"intake.{queue.name}", supervisor_strategy=CrashingSupervisor
        )(agent(queue))

"""A worker that cannot publish says so, and then restarts.

Publishing is stalled when the table publisher's batch has waited for the broker's
acknowledgement, or this worker's own heartbeats have not come back, for
``AIRKAFKA_PUBLISH_STALL_S``, while a broker answers (an outage is not a stall: the records go
out when it ends). A stall logs an error naming the partitions, and ``/health/`` answers 503 with
the reason. A stall that lasts ``AIRKAFKA_PUBLISH_STALL_EXIT_S`` more ends the worker with exit
code 70 (EX_SOFTWARE), so that its supervisor restarts it: first the records and state changes
that were never acknowledged are written to ``<data dir>/unsent.json``, and the next start
publishes them, the records as reports to their partitions' owners. Offsets are never committed
past them, since Faust commits only after the publisher's flush, which waits for the batch.

The watch runs as a plain task of the event loop, not a Faust timer: a stalled worker's stop
hangs in that flush, after Faust has stopped its timers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import faust

from airkafka_app.contract.settings import Settings
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.kafka.admin import KafkaRefused, KafkaUnreachable, check_connection
from airkafka_app.worker.liveness import Heartbeats
from airkafka_app.worker.pool import WorkerPool
from airkafka_app.worker.tables.publisher import TablePublisher
from airkafka_app.worker.tables.tasks import AwaitingReports

if TYPE_CHECKING:
    from airkafka_app.worker.queues import Queue

log = logging.getLogger(__name__)

WATCH_EVERY_S = 1.0


class StallWatchdog:
    def __init__(
        self,
        settings: Settings,
        app: faust.App,
        publisher: TablePublisher,
        heartbeats: Heartbeats,
        pool: WorkerPool,
        queues: Mapping[str, Queue],
        awaiting_report: AwaitingReports,
    ) -> None:
        self._settings = settings
        self._app = app
        self._publisher = publisher
        self._heartbeats = heartbeats
        self._pool = pool
        self._queues = queues
        self._awaiting_report = awaiting_report
        self.unsent_file = Path(settings.data_dir) / "unsent.json"
        self.stalled: str | None = None  # why, while publishing is stalled
        self._since: float | None = None
        self._started = time.time()

    def symptom(self) -> str | None:
        """What looks stalled now, before the broker is asked whether it answers."""
        settings, publisher, heartbeats = self._settings, self._publisher, self._heartbeats
        loop = asyncio.get_running_loop()
        bound = settings.publish_stall_s
        if publisher.in_flight_since is not None and (waited := loop.time() - publisher.in_flight_since) > bound:
            where = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in publisher.in_flight_partitions)
            return f"a batch of the table publisher unacknowledged for {waited:.0f}s, to {where}"
        # Silence counts from the watch's start: a heartbeat read back from before it may be a
        # previous run's, under the same name, and none is sent while the worker starts.
        own = max(heartbeats.last_seen.get(settings.worker_name, 0.0), self._started)
        # A stopping worker sends no more heartbeats (liveness.beat): their silence is no stall.
        if (
            not self._pool.draining
            and heartbeats.caught_up.is_set()
            and (silent := time.time() - own) > max(bound, 3 * settings.heartbeat_s)
        ):
            return f"this worker's heartbeats not read back for {silent:.0f}s"
        return None

    async def check(self) -> None:
        symptom = self.symptom()
        if symptom is not None:
            try:
                await check_connection(self._settings)
            except (KafkaUnreachable, KafkaRefused):
                symptom = None  # waiting for the broker is not a stall
        if symptom is None:
            if self.stalled is not None:
                log.warning("publishing resumed after %.0fs of stall", time.monotonic() - self._since)
            self.stalled = self._since = None
            return
        if self.stalled is None:
            self._since = time.monotonic()
            log.error(
                "publishing stalled while the broker answers: %s; exit in %gs unless it resumes",
                symptom,
                self._settings.publish_stall_exit_s,
            )
        self.stalled = symptom
        if time.monotonic() - self._since >= self._settings.publish_stall_exit_s:
            self._exit()

    def _exit(self) -> None:
        records, changes = self._publisher.unsent()
        self.save_unsent(records, changes)
        log.critical(
            "publishing stalled for %gs (%s): %d records and %d state changes saved to %s; exiting 70",
            self._settings.publish_stall_exit_s,
            self.stalled,
            len(records),
            len(changes),
            self.unsent_file,
        )
        logging.shutdown()
        os._exit(os.EX_SOFTWARE)

    async def watch(self) -> None:
        self._started = time.time()
        while True:
            await asyncio.sleep(WATCH_EVERY_S)
            try:
                await self.check()
            except Exception:
                log.exception("stall watchdog check failed")

    def save_unsent(self, records: list[tuple[str, bytes]], changes: list[tuple[bytes, bytes]]) -> None:
        """Add to the file, atomically: a restart that stalls again keeps what the last one did not send."""
        unsent = self.unsent_file
        saved = json.loads(unsent.read_text()) if unsent.exists() else {"records": [], "changes": []}
        saved["records"] += [{"table": table, "record": json.loads(record)} for table, record in records]
        saved["changes"] += [{"key": key.decode(), "change": json.loads(change)} for key, change in changes]
        unsent.parent.mkdir(parents=True, exist_ok=True)
        partial = unsent.with_suffix(".partial")
        partial.write_text(json.dumps(saved))
        os.replace(partial, unsent)

    def hold_unsent(self) -> None:
        """Before any message is handled: what the table holds of these tasks may be older."""
        if self.unsent_file.exists():
            for entry in json.loads(self.unsent_file.read_text())["records"]:
                self._awaiting_report.note(TaskRecord.from_json(entry["record"]))

    async def publish_unsent(self, state_changes: faust.TopicT) -> None:
        """Publish what a stalled run of this worker saved: each state change as it was, and each
        record as a report to its partition's owner, which keeps it unless it holds a newer one."""
        if not self.unsent_file.exists():
            return
        saved = json.loads(self.unsent_file.read_text())
        by_table = {queue.tasks.table.name: queue for queue in self._queues.values()}
        for entry in saved["records"]:
            queue = by_table.get(entry["table"])
            if queue is None:
                log.error(
                    "unsent record of task %s dropped: table %s is not served here",
                    entry["record"]["id"],
                    entry["table"],
                )
                continue
            await queue.internal.send(**queue.tasks.report(TaskRecord.from_json(entry["record"])))
        for entry in saved["changes"]:
            await state_changes.send(key=entry["key"].encode(), value=json.dumps(entry["change"]).encode())
        await self._app.producer.flush()
        self.unsent_file.unlink()
        log.warning(
            "published %d records and %d state changes that a stalled run left unsent",
            len(saved["records"]),
            len(saved["changes"]),
        )

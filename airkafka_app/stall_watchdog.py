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
from pathlib import Path

import faust

from airkafka_app import topics
from airkafka_app.application import app
from airkafka_app.contract.commands import Command
from airkafka_app.contract.internal import encode_report
from airkafka_app.contract.settings import settings
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.kafka.admin import KafkaRefused, KafkaUnreachable, check_connection
from airkafka_app.kafka.signed import signed
from airkafka_app.liveness import heartbeats
from airkafka_app.queues import queues
from airkafka_app.tables.publisher import publisher
from airkafka_app.tables.tasks import note_report
from airkafka_app.worker_pool import pool

log = logging.getLogger(__name__)

UNSENT = Path(settings.data_dir) / "unsent.json"
WATCH_EVERY_S = 1.0


class StallWatchdog:
    def __init__(self) -> None:
        self.stalled: str | None = None  # why, while publishing is stalled
        self._since: float | None = None
        self._started = time.time()

    def symptom(self) -> str | None:
        """What looks stalled now, before the broker is asked whether it answers."""
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
            not pool.draining
            and heartbeats.caught_up.is_set()
            and (silent := time.time() - own) > max(bound, 3 * settings.heartbeat_s)
        ):
            return f"this worker's heartbeats not read back for {silent:.0f}s"
        return None

    async def check(self) -> None:
        symptom = self.symptom()
        if symptom is not None:
            try:
                await check_connection()
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
                settings.publish_stall_exit_s,
            )
        self.stalled = symptom
        if time.monotonic() - self._since >= settings.publish_stall_exit_s:
            self._exit()

    def _exit(self) -> None:
        records, changes = publisher.unsent()
        save_unsent(records, changes)
        log.critical(
            "publishing stalled for %gs (%s): %d records and %d state changes saved to %s; exiting 70",
            settings.publish_stall_exit_s,
            self.stalled,
            len(records),
            len(changes),
            UNSENT,
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


watchdog = StallWatchdog()


def save_unsent(records: list[tuple[str, bytes]], changes: list[tuple[bytes, bytes]]) -> None:
    """Add to the file, atomically: a restart that stalls again keeps what the last one did not send."""
    saved = json.loads(UNSENT.read_text()) if UNSENT.exists() else {"records": [], "changes": []}
    saved["records"] += [{"table": table, "record": json.loads(record)} for table, record in records]
    saved["changes"] += [{"key": key.decode(), "change": json.loads(change)} for key, change in changes]
    UNSENT.parent.mkdir(parents=True, exist_ok=True)
    partial = UNSENT.with_suffix(".partial")
    partial.write_text(json.dumps(saved))
    os.replace(partial, UNSENT)


@app.on_worker_init.connect
def hold_unsent(sender: faust.App, **kwargs) -> None:
    """Before any message is handled: what the table holds of these tasks may be older."""
    if UNSENT.exists():
        for entry in json.loads(UNSENT.read_text())["records"]:
            record = TaskRecord.from_json(entry["record"])
            note_report(record)


async def publish_unsent() -> None:
    """Publish what a stalled run of this worker saved: each state change as it was, and each
    record as a report to its partition's owner, which keeps it unless it holds a newer one."""
    if not UNSENT.exists():
        return
    saved = json.loads(UNSENT.read_text())
    by_table = {queue.tasks.table.name: queue for queue in queues.values()}
    for entry in saved["records"]:
        queue = by_table.get(entry["table"])
        if queue is None:
            log.error(
                "unsent record of task %s dropped: table %s is not served here", entry["record"]["id"], entry["table"]
            )
            continue
        record = TaskRecord.from_json(entry["record"])
        routing_key = Command(**record.command).routing_key.encode()
        await queue.internal.send(**signed(queue.internal, routing_key, encode_report(record)))
    for entry in saved["changes"]:
        await topics.state_changes.send(key=entry["key"].encode(), value=json.dumps(entry["change"]).encode())
    await app.producer.flush()
    UNSENT.unlink()
    log.warning(
        "published %d records and %d state changes that a stalled run left unsent",
        len(saved["records"]),
        len(saved["changes"]),
    )


@app.task
async def start_watchdog() -> None:
    asyncio.get_running_loop().create_task(watchdog.watch())  # not Faust's: it must outlive a hung stop
    await publish_unsent()

"""A queue's ``tasks`` table: every task's record, the truth about it, and the source of state changes.

Writes need Faust's current event (its partition picks the RocksDB partition and the
changelog partition), so they happen while a command is processed, or in a run that
was started from it and keeps it as its context. A write lands in RocksDB at once; its
changelog record and state change follow in the publisher's next batch (``publisher.py``).
A run can outlive its worker's hold on that partition (a rebalance); its records then
travel as reports to the new owner, which never reads a changelog it owns, and the run's
worker publishes their state changes itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, EventT

from airkafka_app.contract.commands import Command
from airkafka_app.contract.internal import encode_recover, encode_report
from airkafka_app.contract.settings import per_queue
from airkafka_app.contract.states import IN_FLIGHT, PASSING, TERMINAL, State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.kafka.signed import signed
from airkafka_app.worker.kafka.transport import partition_store
from airkafka_app.worker.tables import codec
from airkafka_app.worker.tables.publisher import TablePublisher
from airkafka_app.worker.tables.task_index import SLICE_S, Entry, TaskIndex
from airkafka_app.worker.task_metrics import TaskMetrics

log = logging.getLogger(__name__)

# Per partition. Faust's defaults (64 MiB memtables, three of them, and a 2 GiB block cache)
# let a worker's memory grow with the table's history; records are small and a task's last
# one is read soon after it is written, so small memtables and a small cache cost nothing.
ROCKSDB_OPTIONS = {"write_buffer_size": 4 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}

# Records a filtered listing reads at most per page, found or not: each is decoded on the event loop.
MAX_SCAN = 5000
ROUTINE = frozenset({State.QUEUED, State.RUNNING, State.SUCCESS})


class IndexedTable(faust.Table):
    """A Faust table whose partitions assigned anew are indexed again once recovered, before the
    streams resume (``task_index.py``)."""

    def __init__(self, *args: Any, index: TaskIndex, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index = index
        self._to_index: set[int] = set()

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        for tp in revoked:
            if tp.topic == self.changelog_topic_name:
                self.index.drop(tp.partition)
                self._to_index.discard(tp.partition)
        self._to_index |= {tp.partition for tp in newly_assigned if tp.topic == self.changelog_topic_name}

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        for tp in sorted(active_tps):
            if tp.topic == self.changelog_topic_name and tp.partition in self._to_index:
                self._to_index.discard(tp.partition)
                began = asyncio.get_running_loop().time()
                count = await self.index.rebuild(tp.partition, partition_store(self, tp.partition))
                log.info(
                    "table %s partition %d indexed: %d records in %.1fs",
                    self.name,
                    tp.partition,
                    count,
                    asyncio.get_running_loop().time() - began,
                )


class AwaitingReports(dict[str, float]):
    """Task id -> the time of its newest record that this worker sent as a report (its partition was
    moving) or that a stalled run left unsent (stall_watchdog). Until a record that new is stored,
    the table may show an older one: the run's own start, say, though the run has ended. The task
    is no orphan meanwhile (liveness.is_orphan). One for all the queues' tables."""

    def note(self, record: TaskRecord) -> None:
        self[record.id] = max(record.updated_at, self.get(record.id, 0.0))

    def settled_by(self, record: TaskRecord) -> None:
        """A record this new is stored: the table is the last word on the task again."""
        if self and self.get(record.id, math.inf) <= record.updated_at:
            del self[record.id]


class TaskTable:
    """Task id -> record, for one queue: each queue's table is co-partitioned with its commands topic."""

    def __init__(
        self,
        app: Any,
        queue: str,
        internal: faust.TopicT,
        publisher: TablePublisher,
        awaiting_report: AwaitingReports,
        metrics: TaskMetrics,
        *,
        partitions: int,
        data_dir: str,
        cluster_key: str,
    ) -> None:
        self.queue = queue
        self.internal = internal
        self._app = app
        self._publisher = publisher
        self.awaiting_report = awaiting_report
        self._cluster_key = cluster_key
        self._metrics = metrics
        name = per_queue("tasks", queue)
        self.index = TaskIndex(Path(data_dir) / "index" / name)
        # bytes keys: table_route hashes the key as the changelog serializes it, and raw
        # bytes hash exactly as the producers' keys do (a JSON str key would carry quotes).
        # Values are JSON bytes too, encoded once here for RocksDB and the changelog alike
        # (codec.py): Faust's codec encodes each write twice, and slower.
        self.table = app.tables.add(
            IndexedTable(
                app,
                name=name,
                key_type=bytes,
                value_type=bytes,
                partitions=partitions,
                help=f"Task id -> the task's record, queue {queue}.",
                options=ROCKSDB_OPTIONS,
                beacon=app.tables.beacon,
                index=self.index,
            )
        )

    def get(self, task_id: str) -> dict[str, Any] | None:
        """The task's record as stored: a JSON object."""
        data = self.table.get(task_id.encode())
        return json.loads(data) if data is not None else None

    def partitions(self) -> list[int]:
        """This worker's partitions of the table: their records are its to show."""
        return sorted(
            tp.partition for tp in self._app.assigned_actives() if tp.topic == self.table.changelog_topic_name
        )

    async def newest(
        self,
        states: Iterable[State],
        after: Entry | None,
        limit: int,
        match: Callable[[dict[str, Any]], bool] | None = None,
        scan: int = MAX_SCAN,
    ) -> tuple[list[tuple[Entry, dict[str, Any]]], Entry | None]:
        """Up to ``limit`` records in these states that ``match``, newest first, older than
        ``after``; read from each record's own partition, a slice at a time. With ``match``, at
        most ``scan`` records are read: the second value is then the last one read, where a
        next page goes on, unless the records ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SLICE_S
        found = []
        entries = self.index.newest(self.partitions(), states, after)
        for read, entry in enumerate(entries if match else itertools.islice(entries, limit), 1):
            if (data := partition_store(self.table, entry.partition).get(entry.key)) is not None:
                record = json.loads(data)
                if match is None or match(record):
                    found.append((entry, record))
            if len(found) == limit:
                break
            if match is not None and read == scan:
                return found, entry
            if loop.time() > deadline:
                await asyncio.sleep(0)
                deadline = loop.time() + SLICE_S
        return found, None

    def counts(self) -> Counter[str]:
        """Records by state, over this worker's partitions."""
        total: Counter[str] = Counter({state.value: 0 for state in State})
        for partition in self.partitions():
            total.update({state.value: n for state, n in self.index.counts.get(partition, {}).items()})
        return total

    def load(self, task_id: str) -> TaskRecord | None:
        data = self.get(task_id)
        return TaskRecord.from_json(data) if data is not None else None

    def save(self, record: TaskRecord, event: EventT) -> TaskRecord:
        """Record a transition: the task's record goes to the table, or, when this worker no longer
        surely owns the event's partition, as a report to the partition's owner; its state change
        is published by this worker either way, in the order of its transitions. A report can
        reach the owner after the same run's next transition, which this worker stored itself
        once the rebalance was over: the report is then stale, and only its state change tells."""
        key = record.id.encode()
        if self._app.rebalancing or event.message.tp not in self._app.assigned_actives():
            self.awaiting_report.note(record)
            self.internal.send_soon(**self.report(record))
            log.info(
                "task %s attempt %d %s reported to the partition's owner", record.id, record.attempt, record.state.value
            )
        else:
            self.store(record, event)
        change = codec.dumps(record.state_change(self.queue))
        self._publisher.add_change(key, change, passing=record.state in PASSING)
        self._metrics.observe(self.queue, record)
        # Failures, retries and cancels are what an operator acts on; routine transitions
        # stay at DEBUG, since at a thousand tasks a second they would drown the log.
        level = logging.DEBUG if record.state in ROUTINE else logging.INFO
        if log.isEnabledFor(level):
            summary = record.detail.partition("\n")[0]
            log.log(level, "task %s attempt %d %s %s", record.id, record.attempt, record.state.value, summary)
        return record

    def store(self, record: TaskRecord, event: EventT) -> None:
        """Write the record to the event's partition: RocksDB at once, the changelog in the publisher's next batch."""
        key = record.id.encode()
        value = codec.dumps(record.to_json())
        self.awaiting_report.settled_by(record)
        self.table.data[key] = value
        self.index.note(event.message.partition, key, record.state, record.updated_at)
        # A task not started yet is queued again by its redelivered command: its changelog record
        # may wait for the task's next one, which makes it moot (publisher.py).
        self._publisher.add_record(self.table, event.message.partition, key, value, hold=record.state is State.QUEUED)

    def report(self, record: TaskRecord) -> dict[str, Any]:
        """The send of ``record`` as a report to its partition's owner, signed."""
        routing_key = Command(**record.command).routing_key.encode()
        return signed(self._cluster_key, self.internal, routing_key, encode_report(record))

    def recovery_request(self, command: Command) -> dict[str, Any]:
        """The send of a request to the task's partition's owner to run it again, signed."""
        return signed(self._cluster_key, self.internal, command.routing_key.encode(), encode_recover(command))

    def in_flight(self) -> list[TaskRecord]:
        """The records this worker holds that have not ended; call it outside a rebalance."""
        return [
            TaskRecord.from_json(data)
            for entry in self.index.of(self.partitions(), IN_FLIGHT)
            if (data := self.get(entry.key.decode())) is not None
        ]

    async def expire(self, before: float) -> int:
        """Delete the ended records last changed before ``before``, each with a tombstone on the
        changelog, a slice at a time; how many."""
        loop = asyncio.get_running_loop()
        deleted = 0
        for partition in self.partitions():
            db = partition_store(self.table, partition)
            for state in TERMINAL:
                finished, after = False, None
                while not finished:
                    deadline, finished = loop.time() + SLICE_S, True
                    for entry in self.index.oldest(partition, state, before, after):
                        db.delete(entry.key)
                        self.index.forget(partition, entry.key)
                        self._publisher.add_record(self.table, partition, entry.key, None)
                        deleted += 1
                        after = entry
                        if loop.time() > deadline:
                            finished = False
                            break
                    await asyncio.sleep(0)
                    # A stopping worker closes the tables, then its producer: stop before either.
                    if self._app.rebalancing or self._app.should_stop or partition not in self.partitions():
                        return deleted
        return deleted

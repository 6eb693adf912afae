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

import functools
import json
import logging
from collections.abc import Iterator
from typing import Any

import faust
from faust.types import EventT

from airkafka_app.application import app
from airkafka_app.commands import Command
from airkafka_app.internal import encode_report
from airkafka_app.settings import per_queue, settings
from airkafka_app.states import IN_FLIGHT, State
from airkafka_app.tables.publisher import publisher
from airkafka_app.task_record import TaskRecord

log = logging.getLogger(__name__)

# Per partition. Faust's defaults (64 MiB memtables, three of them, and a 2 GiB block cache)
# let a worker's memory grow with the table's history; records are small and a task's last
# one is read soon after it is written, so small memtables and a small cache cost nothing.
ROCKSDB_OPTIONS = {"write_buffer_size": 4 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}

ROUTINE = frozenset({State.QUEUED, State.RUNNING, State.SUCCESS})


class TaskTable:
    """Task id -> record, for one queue: each queue's table is co-partitioned with its commands topic."""

    def __init__(self, queue: str, internal: faust.TopicT) -> None:
        self.queue = queue
        self.internal = internal
        # bytes keys: table_route hashes the key as the changelog serializes it, and raw
        # bytes hash exactly as the producers' keys do (a JSON str key would carry quotes).
        # Values are JSON bytes too, encoded once here for RocksDB and the changelog alike,
        # by the standard library: Faust's codec encodes each write twice, and slower.
        self.table = app.Table(
            per_queue("tasks", queue),
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            help=f"Task id -> the task's record, queue {queue}.",
            options=ROCKSDB_OPTIONS,
        )
        # Keys of the records not yet ended, so that the sweep reads those, not the whole
        # history. Rebuilt from the table after each rebalance (its partitions changed, and
        # recovery writes around save()), then kept by save().
        self._in_flight: set[bytes] = set()
        self._in_flight_generation: int | None = None

    def get(self, task_id: str) -> dict[str, Any] | None:
        """The task's record as stored: a JSON object."""
        data = self.table.get(task_id.encode())
        return json.loads(data) if data is not None else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of this worker's partitions, as stored."""
        return (json.loads(data) for data in self.table.values())

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
        if app.rebalancing or event.message.tp not in _assigned_actives():
            self.internal.send_soon(key=Command(**record.command).routing_key.encode(), value=encode_report(record))
            log.info("task %s attempt %d %s reported to the partition's owner", record.id, record.attempt,
                     record.state.value)
        else:
            self.store(record, event)
        publisher.add_change(key, json.dumps(record.state_change()).encode())
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
        value = json.dumps(record.to_json()).encode()
        self.table.data[key] = value
        if record.state in IN_FLIGHT:
            self._in_flight.add(key)
        else:
            self._in_flight.discard(key)
        publisher.add_record(self.table, event.message.partition, key, value)

    def in_flight(self) -> list[TaskRecord]:
        """The records this worker holds that have not ended; call it outside a rebalance."""
        if self._in_flight_generation != app.consumer_generation_id:
            self._in_flight = {key for key, data in self.table.items() if json.loads(data)["state"] in IN_FLIGHT}
            self._in_flight_generation = app.consumer_generation_id
        records = []
        for key in list(self._in_flight):
            data = self.get(key.decode())
            if data is None or data["state"] not in IN_FLIGHT:
                self._in_flight.discard(key)
            else:
                records.append(TaskRecord.from_json(data))
        return records

    def transition(self, task_id: str, state: State, event: EventT, **changes: Any) -> TaskRecord:
        """Move a stored task to ``state``, from its current record in the table."""
        current = self.load(task_id)
        if current is None:
            raise KeyError(task_id)
        return self.save(current.to(state, **changes), event)


def _assigned_actives() -> frozenset:
    return _actives_of(app.consumer_generation_id)


@functools.lru_cache(maxsize=1)
def _actives_of(generation: int) -> frozenset:
    """The active partitions of a group generation, once: Faust builds the set anew on each call.
    A generation's assignment is set before its id is known, and save() asks only out of a rebalance."""
    return frozenset(app.assignor.assigned_actives())

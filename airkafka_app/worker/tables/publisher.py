"""Publishes the task tables' writes to Kafka in batches, one batch in flight at a time.

A batch sends each written key's latest record to its table's changelog, then the state
changes in the order the transitions happened. While one batch is in flight, the next one
gathers: a task that starts and ends meanwhile costs one changelog record instead of two or
three, and one state change instead of three, since a passing state (``queued``, ``running``)
followed in the same batch by a later change of its task is left out (docs/contract.md). A
``queued`` record waits for the task's next record, or for the next commit, whichever comes
first: under load a task waits for a run slot longer than a batch takes, and its ``running``
record makes the ``queued`` one moot. Produce requests grow with the load instead of
multiplying with it. With nothing in flight, a write goes out at the end of the loop's current
step; but passing changes alone wait up to ``PASSING_WAIT_S`` for a later change: a short
task's ``running`` and its end then go in one batch, not two, while an end never waits.

As with Kafka Streams' record cache, nothing waits past a commit: Faust flushes the producer
before it commits offsets or gives up partitions, and that flush first sends what is gathered
and waits until the broker has acknowledged it (``kafka.transport.Producer.before_flush``). So
an offset is committed only after the records of the tasks its commands started. Faust's own
flush is not enough for that: it returns once its buffer has not moved for 0.1 s, with
messages still in it.

A batch goes to aiokafka whole (``Producer.send_batches``), past Faust's per-message path, so
the publisher does what Faust does for each changelog record it sends: it keeps the last
acknowledged offset of each changelog partition in the store, where recovery starts reading.
aiokafka retries a batch for as long as the producer's request timeout (20 minutes with Faust's
default), so a batch that still fails has met an error that sending again would not cure. Its
tasks are logged; the table keeps their records, and views show them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import defaultdict

import faust
from faust.types import TP

log = logging.getLogger(__name__)

MAX_LOGGED_IDS = 20
# Records and state changes per batch: building one holds the event loop, record by record.
MAX_BATCH = 2000
# Keys whose partition is remembered, at most: about 10 MB.
MAX_KEYS = 50_000
# How long passing changes alone wait for more: longer than a short task takes to end, and too
# short for an operator to notice in a task's ``running``.
PASSING_WAIT_S = 0.005

# (table, key) -> (partition, record): a key's latest record only; None deletes it.
Records = dict[tuple[faust.Table, bytes], tuple[int, bytes | None]]
# (key, state change, passing), in transition order; a passing one may be left out (``leave_out_passing``).
Changes = list[tuple[bytes, bytes, bool]]


def take_batch(records: Records, changes: Changes, limit: int) -> tuple[Records, Changes]:
    """Remove and return the next batch of at most ``limit`` records and changes: the changelog
    records first, then the state changes in transition order. A burst, such as retention's
    tombstones, is cut, and taken in place, so that each batch holds the event loop for its own
    size, not for what is left of the burst."""
    batch = dict(itertools.islice(records.items(), limit))
    for key in batch:
        del records[key]
    room = limit - len(batch)
    batch_changes = changes[:room]
    del changes[:room]
    return batch, leave_out_passing(batch_changes)


def leave_out_passing(changes: Changes) -> Changes:
    """The changes without each passing one that a later change of its key follows: a reader
    that sees the later one has lost nothing it was promised."""
    later: set[bytes] = set()
    kept = []
    for key, change, passing in reversed(changes):
        if not (passing and key in later):
            kept.append((key, change, passing))
        later.add(key)
    kept.reverse()
    return kept


def wait_before_sending(changes: Changes) -> float:
    """How long what is gathered may wait before it is sent: passing changes alone wait for a
    later change of their tasks, which would leave them out; anything else goes at once."""
    return PASSING_WAIT_S if changes and all(passing for _, _, passing in changes) else 0.0


class TablePublisher:
    def __init__(self, app: faust.App, state_changes_topic: str) -> None:
        self._app = app
        self._topic = state_changes_topic
        self._records: Records = {}
        # Records of tasks that have not started (``queued``), held back until the task's next
        # write replaces them or a commit needs them: ``add_record(..., hold=True)``.
        self._held: Records = {}
        self._changes: Changes = []
        self._in_flight: asyncio.Task | None = None
        self._sending: tuple[Records, Changes] = ({}, [])
        # The flush to come, when one is due: a timer when it waits for more (``wait_before_sending``).
        self._scheduled: asyncio.Handle | None = None
        # Key -> its partition of the state-changes topic: aiokafka's hash is pure Python, and each
        # of a task's transitions would compute it again.
        self._partitions: dict[bytes, int] = {}
        self._partition_count = 0
        # When the batch in flight was handed over (loop time), and where it goes.
        self.in_flight_since: float | None = None
        self.in_flight_partitions: list[TP] = []

    def add_record(
        self, table: faust.Table, partition: int, key: bytes, record: bytes | None, hold: bool = False
    ) -> None:
        """Gather a record written to a table, or a tombstone (None), for its changelog in the next
        batch; or, with ``hold``, until the key's next record or the next commit, whichever comes
        first. Only a record that a redelivered command would write again may be held: its
        command's offset is committed only after the flush that sends it. A record that takes
        the place of one waiting to be sent (a resubmitted task's, after its last attempt's end)
        is not held: that end's state change goes out in the next batch, and so must a record
        at least as new."""
        if hold and (table, key) not in self._records:
            self._held[(table, key)] = (partition, record)
            return
        self._held.pop((table, key), None)
        self._records[(table, key)] = (partition, record)
        self._schedule()

    def add_change(self, key: bytes, change: bytes, passing: bool = False) -> None:
        """Gather a state change for the next batch; a ``passing`` one is left out when a later
        change of the same key goes in the same batch."""
        self._changes.append((key, change, passing))
        self._schedule()

    def _schedule(self) -> None:
        if self._in_flight is not None:
            return  # its landing flushes
        wait = wait_before_sending(self._changes)
        if self._scheduled is not None:
            if wait or not isinstance(self._scheduled, asyncio.TimerHandle):
                return
            self._scheduled.cancel()  # something that may not wait has come
        loop = asyncio.get_running_loop()
        self._scheduled = loop.call_later(wait, self.flush) if wait else loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is gathered to the producer, up to MAX_BATCH at a time: the changelog
        records, then the state changes."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if not (self._records or self._changes) or self._in_flight is not None:
            return
        records, changes = take_batch(self._records, self._changes, MAX_BATCH)
        self._sending = records, changes
        self.in_flight_since = asyncio.get_running_loop().time()
        self._in_flight = asyncio.ensure_future(self._send(records, changes))
        self._in_flight.add_done_callback(lambda sent: self._landed(sent, records, changes))

    async def flush_and_wait(self) -> None:
        """Send what is gathered, and wait until the broker has acknowledged the batches that
        carry it: the one in flight, then as many as what is gathered fills. Not the batches
        after those, which hold what is written meanwhile: under load, a commit waiting for
        them would wait as long as tasks keep ending."""
        self._records.update(self._held)
        self._held.clear()
        gathered = len(self._records) + len(self._changes)
        batches = (self._in_flight is not None) + math.ceil(gathered / MAX_BATCH)
        self.flush()
        for _ in range(batches):
            if self._in_flight is None:
                return
            # Shielded: a cancelled flush must not cancel the batch. Its done callback has
            # handed over the next batch by the time this wakes.
            await asyncio.shield(self._in_flight)

    def unsent(self) -> tuple[list[tuple[str, bytes]], list[tuple[bytes, bytes]]]:
        """The records (table name, record) and state changes (key, change) not yet acknowledged, oldest first."""
        records = {**self._sending[0], **self._held, **self._records}
        return (
            [(table.name, record) for (table, _), (_, record) in records.items() if record is not None],
            [(key, change) for key, change, _ in (*self._sending[1], *self._changes)],
        )

    async def _send(self, records: Records, changes: Changes) -> None:
        batches: dict[TP, list[tuple[bytes, bytes]]] = defaultdict(list)
        changelogs = {}
        for (table, key), (partition, record) in records.items():
            tp = TP(table.changelog_topic_name, partition)
            batches[tp].append((key, record))
            changelogs[tp] = table
        topic, producer = self._topic, self._app.producer
        # key_partition needs the topic's metadata; a task's partition holds while its count does.
        if len(await producer.partitions_for(topic)) != self._partition_count or len(self._partitions) > MAX_KEYS:
            self._partitions.clear()
            self._partition_count = len(await producer.partitions_for(topic))
        partitions = self._partitions
        for key, change, _ in changes:
            if (partition := partitions.get(key)) is None:
                partition = partitions[key] = producer.key_partition(topic, key).partition
            batches[TP(topic, partition)].append((key, change))
        self.in_flight_partitions = sorted(batches)
        last = await producer.send_batches(batches)
        for tp, table in changelogs.items():
            table.data.set_persisted_offset(tp, last[tp])

    def _landed(self, sent: asyncio.Task, records: Records, changes: Changes) -> None:
        self._in_flight = None
        self._sending = ({}, [])
        self.in_flight_since = None
        self.in_flight_partitions = []
        if not sent.cancelled() and (error := sent.exception()) is not None:
            ids = list(dict.fromkeys([key.decode() for _, key in records] + [key.decode() for key, _, _ in changes]))
            log.error(
                "table publisher: %d records and %d state changes not sent, of tasks %s%s: %r",
                len(records),
                len(changes),
                ", ".join(ids[:MAX_LOGGED_IDS]),
                " and more" if len(ids) > MAX_LOGGED_IDS else "",
                error,
            )
        self.flush()

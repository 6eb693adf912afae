"""Publishes the task tables' writes to Kafka in batches, one batch in flight at a time.

A batch sends each written key's latest record to its table's changelog, then every state
change in the order the transitions happened. While one batch is in flight, the next one
gathers: a task that starts and ends meanwhile costs one changelog record instead of two or
three, and produce requests grow with the load instead of multiplying with it. With nothing
in flight, a write goes out at the end of the loop's current step.

As with Kafka Streams' record cache, nothing waits past a commit: Faust flushes the producer
before it commits offsets or gives up partitions, and that flush first sends what is gathered
and waits until the broker has acknowledged it (``kafka_transport.Producer.before_flush``). So
an offset is committed only after the records of the tasks its commands started. Faust's own
flush is not enough for that: it returns once its buffer has not moved for 0.1 s, with
messages still in it.
"""
from __future__ import annotations

import asyncio
import faust
from faust.types import FutureMessage

from airkafka_app import topics
from airkafka_app.application import app


class TablePublisher:
    def __init__(self) -> None:
        self._records: dict[tuple[faust.Table, bytes], tuple[int, bytes]] = {}
        self._changes: list[tuple[bytes, bytes]] = []
        self._in_flight: FutureMessage | None = None
        self._scheduled = False

    def add(self, table: faust.Table, partition: int, key: bytes, record: bytes, change: bytes) -> None:
        """Gather a written record, and its state change, for the next batch."""
        self._records[(table, key)] = (partition, record)
        self._changes.append((key, change))
        if self._in_flight is None and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is gathered to Faust's producer: the changelog records, then the state changes."""
        self._scheduled = False
        if not self._changes:
            return
        records, changes = self._records, self._changes
        self._records, self._changes = {}, []
        for (table, key), (partition, record) in records.items():
            table.send_changelog(partition, key, record)
        for key, change in changes:
            last = topics.state_changes.send_soon(key=key, value=change)
        self._in_flight = last
        last.add_done_callback(self._landed)

    async def flush_and_wait(self) -> None:
        """Send what is gathered, and wait until the broker has acknowledged the last batch."""
        self.flush()
        if self._in_flight is not None:
            # Shielded: a cancelled flush must not cancel the message's future, which Faust resolves.
            await asyncio.shield(self._in_flight)

    def _landed(self, batch: FutureMessage) -> None:
        if batch is self._in_flight:
            self._in_flight = None
            self.flush()


publisher = TablePublisher()


@app.task
async def flush_before_commits() -> None:
    app.producer.before_flush.append(publisher.flush_and_wait)

"""Faust's aiokafka transport, with three fixes, a flush hook, ``partitions_for`` and ``send_batches``;
and the one place that reaches into Faust's and aiokafka's private parts (``partition_store``,
``committed_offset``).

The producer is idempotent. Without it, a batch that a stopping broker had written but answered
with an error was retried and written twice: a duplicated state change, seen in the
broker-restart fault test. Its ``before_flush`` callbacks run, and are awaited, before each
flush, which Faust does before it commits offsets: writes held back for batching go out first.
``send_batches`` hands aiokafka whole record batches, for the table publisher's records: Faust's
per-message path cost each record a future, callbacks and a pass through its buffer.

After a rebalance, a stream partition that has no committed offset is read again from its start.

During recovery Faust resumes fetching before it seeks the stream partitions to their committed
offsets, and drops the events buffered meanwhile when it resumes; it counts on that seek to
fetch them again (faust-streaming #216 fixed the same race for apps without tables). aiokafka's
``seek_to_committed`` leaves a partition with no committed offset (none, or 0) where its fetcher
is, so such events stayed unread until the next rebalance: commands that became neither a task
nor a dead letter, seen in the two-worker fault test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import RecordMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service
from mode.utils.futures import maybe_async


async def seek_to_committed_or_beginning(
    consumer: AIOKafkaConsumer, changelogs: Collection[str]
) -> Mapping[TopicPartition, int | None]:
    """Seek the assigned partitions to their committed offsets, and those without one to their start.

    Changelog partitions are left alone: Faust keeps their offsets itself, not in the group.
    """
    committed = await consumer.seek_to_committed()
    uncommitted = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
    if uncommitted:
        await consumer.seek_to_beginning(*uncommitted)
    return committed


async def seek_to_start(consumer: AIOKafkaConsumer, tps: Collection[TopicPartition]) -> None:
    """Seek to the oldest offsets kept, explicitly: ``seek_to_beginning`` lost, here, to the pending
    reset of a new assignment to the end once ``end_offsets`` had been asked."""
    for tp, start in (await consumer.beginning_offsets(list(tps))).items():
        consumer.seek(tp, start)


def partition_store(table: Any, partition: int) -> Any:
    """The RocksDB of one partition of a Faust table: reads and deletes by key, past the table's
    per-event routing, for the index, listings and retention."""
    return table.data._db_for_partition(partition)


def committed_offset(consumer: Any, tp: TopicPartition) -> int | None:
    """The next offset of ``tp`` that Faust's ``consumer`` last committed or sought to, or None."""
    return consumer._committed_offset.get(TP(tp.topic, tp.partition))


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer service, run on the worker's event loop instead of a thread of its own.

    In a thread, each fetch went to the consumer's loop and back (``call_thread``): two wakeups
    through a self-pipe and a wait for the GIL, about 0.45 ms of a task's latency
    (docs/benchmark.md). On the worker's loop a call is a plain await. aiokafka's heartbeats then
    share the loop with the worker's own work, as in any single-loop client, whose iterations
    are far shorter than the session timeout.
    """

    def __init__(self, *args: Any, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        loop = loop or asyncio.get_event_loop()
        super().__init__(*args, loop=loop, thread_loop=loop, **kwargs)

    async def start(self) -> None:
        self._thread_started.set()
        await self._default_start()

    async def stop(self) -> None:
        """What the thread's end did, in line: the consumer stops after its children and tasks."""
        if self._started.is_set() and not self._stopped.is_set():
            self._stopped.set()
            await self.on_stop()
            await self.on_thread_stop()
            await self._default_stop_children()
            await self._default_stop_futures()
            await self._default_stop_exit_stacks()
            self._shutdown.set()
            await self.on_shutdown()

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        await maybe_async(fun(*args, **kwargs))

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(
            seek_to_committed_or_beginning, self._ensure_consumer(), self.app.tables.changelog_topics
        )

    @Service.task
    async def _stay_in_group(self) -> None:
        """Count a consumer with nothing assigned as polling.

        Faust fetches only for assigned partitions, and aiokafka leaves the group for good once
        a consumer has not fetched for ``max_poll_interval``: a standby worker left it after
        five minutes, exactly when it would have been needed.
        """
        interval = self.app.conf.broker_max_poll_interval / 4
        while not self.should_stop:
            await self.sleep(interval)
            consumer = self._consumer
            if consumer is not None and not consumer.assignment():
                with consumer._fetcher._subscriptions.fetch_context():
                    pass


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_flush: list[Callable[[], Awaitable[None]]] = []

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    async def _track(self, topic: str) -> None:
        """Have the producer's metadata refreshes always name ``topic``.

        aiokafka tracks a topic only when its metadata is missing. One known from an earlier
        fetch of all topics is not tracked, and the first refresh naming only tracked topics
        drops it: its batches then wait for a leader that no refresh can find. A fresh worker
        with a single batch in flight stopped publishing for good that way.
        """
        await self._ensure_producer().client.add_topic(topic)

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Awaitable[RecordMetadata]:
        await self._track(topic)
        return await super().send(topic, *args, **kwargs)

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, its metadata fetched first when this producer lacks it:
        Faust's ``key_partition``, which routes view requests, fails on a topic without it."""
        await self._track(topic)
        return await self._ensure_producer().partitions_for(topic)

    async def send_batches(self, records: Mapping[TP, Sequence[tuple[bytes, bytes]]]) -> dict[TP, int]:
        """Send each partition's (key, value) records in order, as few batches as fit; once the
        broker has acknowledged them all, the offset of each partition's last record."""
        producer = self._ensure_producer()
        for topic in {tp.topic for tp in records}:
            await self._track(topic)
        sent = []
        for tp, items in records.items():
            batch, count = producer.create_batch(), 0
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    sent.append((tp, count, await producer.send_batch(batch, tp.topic, partition=tp.partition)))
                    batch, count = producer.create_batch(), 0
                    batch.append(key=key, value=value, timestamp=None)
                count += 1
            batch.close()  # a closed batch goes out at once, whatever the linger
            sent.append((tp, count, await producer.send_batch(batch, tp.topic, partition=tp.partition)))
        last: dict[TP, int] = {}
        for tp, count, delivered in sent:
            last[tp] = (await delivered).offset + count - 1  # a batch reports its first record's offset
        return last

    async def flush(self) -> None:
        for callback in self.before_flush:
            await callback()
        await super().flush()


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer

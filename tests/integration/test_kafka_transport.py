"""The seek Faust makes after a rebalance, against the real broker: a partition without a committed
offset must be read again from its start, or the events Faust dropped there are never seen."""

import asyncio
import uuid

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

from airkafka_app.worker.kafka.transport import Transport, seek_to_committed_or_beginning


async def _scenario(bootstrap: str) -> dict[str, int]:
    commands, changelog = f"cmd-{uuid.uuid4().hex}", f"log-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(commands, 3, 1), NewTopic(changelog, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, partitions in ((commands, 3), (changelog, 1)):
            for partition in range(partitions):
                for n in range(5):
                    await producer.send_and_wait(topic, b"%d" % n, partition=partition)
    finally:
        await producer.stop()
    tps = {
        "never": TopicPartition(commands, 0),
        "zero": TopicPartition(commands, 1),
        "three": TopicPartition(commands, 2),
        "changelog": TopicPartition(changelog, 0),
    }
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(list(tps.values()))
        await consumer.commit({tps["zero"]: 0, tps["three"]: 3})
        await consumer.seek_to_end()
        for tp in tps.values():
            await consumer.position(tp)
        await seek_to_committed_or_beginning(consumer, changelogs={changelog})
        return {name: await consumer.position(tp) for name, tp in tps.items()}
    finally:
        await consumer.stop()


def test_partitions_without_a_committed_offset_are_read_again_from_their_start(broker):
    positions = asyncio.run(_scenario(broker.bootstrap))
    assert positions == {"never": 0, "zero": 0, "three": 3, "changelog": 5}


async def _tracked_after_refresh(bootstrap: str) -> dict[str, bool]:
    known, later = f"known-{uuid.uuid4().hex}", f"later-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = None
    try:
        await admin.create_topics([NewTopic(known, 1, 1)])
        app = faust.App(f"t-{uuid.uuid4().hex}", broker=f"kafka://{bootstrap}")
        producer = Transport(app.conf.broker_consumer, app).create_producer()
        await producer.start()
        client = producer._ensure_producer().client
        await client.force_metadata_update()  # nothing tracked yet: metadata of every topic
        await producer.send_batches({TP(known, 0): [(b"k", b"v")]})
        await admin.create_topics([NewTopic(later, 1, 1)])
        await (await producer.send(later, b"k", b"v", None, None, None))
        await client.force_metadata_update()
        return {
            name: client.cluster.partitions_for_topic(topic) is not None
            for name, topic in (("known", known), ("later", later))
        }
    finally:
        if producer is not None:
            await producer.stop()
        await admin.close()


def test_a_topic_the_publisher_sent_to_stays_in_the_producers_metadata(broker):
    """A topic known from a fetch of every topic, then dropped by a refresh of the tracked ones,
    left the table publisher's batch waiting for a leader for good (a fresh worker's stall)."""
    assert asyncio.run(_tracked_after_refresh(broker.bootstrap)) == {"known": True, "later": True}

"""The seek Faust makes after a rebalance, against the real broker: a partition without a committed
offset must be read again from its start, or the events Faust dropped there are never seen."""
import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from airkafka_app.kafka_transport import seek_to_committed_or_beginning


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
    tps = {"never": TopicPartition(commands, 0), "zero": TopicPartition(commands, 1),
           "three": TopicPartition(commands, 2), "changelog": TopicPartition(changelog, 0)}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
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

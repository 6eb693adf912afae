"""Questions to the Kafka cluster that Faust has no public API for, via aiokafka's admin client."""
from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from airkafka_app.settings import settings


async def partition_count(topic: str) -> int | None:
    """The topic's partition count, or None when it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(description["partitions"]) if description["error_code"] == 0 else None

"""The worker's own Kafka clients, beside Faust's."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.settings import Settings


def group_less_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer outside any group that commits nothing: it reads what it is assigned, where it
    is sought, for heartbeats, orders, read-ahead cancels and listings."""
    return AIOKafkaConsumer(**aiokafka_options(settings), group_id=None, enable_auto_commit=False)

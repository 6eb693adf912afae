"""The Kafka topics of the wire contract, as Faust topics carrying raw bytes.

Every topic has the tables' partition count, so a task's routing key maps to the same
partition number in its queue's commands topic and in that queue's changelogs.
"""

import faust

from airkafka_app.application import app
from airkafka_app.contract.settings import settings


def _raw_topic(*names: str) -> faust.TopicT:
    # Raw bytes: a typed value_type would make Faust drop undecodable messages with
    # only a log line, and every bad input must become a dead letter instead.
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )


def commands(queue: str) -> faust.TopicT:
    return _raw_topic(settings.commands_topic_for(queue))


def internal(queue: str) -> faust.TopicT:
    return _raw_topic(settings.internal_topic_for(queue))


def intake(queue: str) -> faust.TopicT:
    """What a queue's intake agent reads: its commands and its internal topic, co-partitioned."""
    return _raw_topic(settings.commands_topic_for(queue), settings.internal_topic_for(queue))


state_changes = _raw_topic(settings.state_changes_topic)
dead_letters = _raw_topic(settings.dead_letters_topic)
heartbeats = _raw_topic(settings.heartbeats_topic)
control = _raw_topic(settings.control_topic)
logs = _raw_topic(settings.logs_topic)

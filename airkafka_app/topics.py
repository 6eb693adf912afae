"""The Kafka topics of the wire contract, as Faust topics carrying raw bytes.

Every topic has the table's partition count, so a task id maps to the same
partition number in the commands, state-changes and changelog topics.
"""
from airkafka_app.application import app
from airkafka_app.settings import settings


def _raw_topic(name: str):
    # Raw bytes: a typed value_type would make Faust drop undecodable messages with
    # only a log line, and every bad input must become a dead letter instead.
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=True,
    )


commands = _raw_topic(settings.commands_topic)
state_changes = _raw_topic(settings.state_changes_topic)
dead_letters = _raw_topic(settings.dead_letters_topic)

"""The Kafka topics of the wire contract, as Faust topics carrying raw bytes.

Every topic has the tables' partition count, so a task's routing key maps to the same
partition number in its queue's commands topic and in that queue's changelogs.
"""

from __future__ import annotations

import faust

from airkafka_app.contract.settings import Settings


class Topics:
    """The app's topics: the shared ones as attributes, a queue's by its name."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self.state_changes = self._raw(settings.state_changes_topic)
        self.dead_letters = self._raw(settings.dead_letters_topic)
        self.heartbeats = self._raw(settings.heartbeats_topic)
        self.control = self._raw(settings.control_topic)
        self.logs = self._raw(settings.logs_topic)

    def _raw(self, *names: str) -> faust.TopicT:
        # Raw bytes: a typed value_type would make Faust drop undecodable messages with
        # only a log line, and every bad input must become a dead letter instead.
        return self._app.topic(
            *names,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=self._settings.partitions,
            internal=True,
        )

    def commands(self, queue: str) -> faust.TopicT:
        return self._raw(self._settings.commands_topic_for(queue))

    def internal(self, queue: str) -> faust.TopicT:
        return self._raw(self._settings.internal_topic_for(queue))

    def intake(self, queue: str) -> faust.TopicT:
        """What a queue's intake agent reads: its commands and its internal topic, co-partitioned."""
        return self._raw(self._settings.commands_topic_for(queue), self._settings.internal_topic_for(queue))

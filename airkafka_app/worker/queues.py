"""The queues this worker serves (``AIRKAFKA_QUEUES``): each is a commands topic and its own tables.

A queue's tables are co-partitioned with its topic only, so Faust's assignor, which
assigns each group of co-subscribed topics among the workers subscribing to all of
them, hands a queue's partitions to the workers that serve it and to no other.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from airkafka_app.worker.tables.counters import CounterTable
from airkafka_app.worker.tables.tasks import TaskTable


@dataclass
class Queue:
    name: str
    commands: faust.TopicT
    internal: faust.TopicT
    tasks: TaskTable
    counters: CounterTable

    @property
    def topic_name(self) -> str:
        return self.commands.get_topic_name()

    @property
    def internal_topic_name(self) -> str:
        return self.internal.get_topic_name()

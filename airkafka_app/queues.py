"""The queues this worker serves (``AIRKAFKA_QUEUES``): each is a commands topic and its own tables.

A queue's tables are co-partitioned with its topic only, so Faust's assignor, which
assigns each group of co-subscribed topics among the workers subscribing to all of
them, hands a queue's partitions to the workers that serve it and to no other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faust

from airkafka_app import topics
from airkafka_app.contract.settings import settings
from airkafka_app.tables.counters import CounterTable
from airkafka_app.tables.tasks import TaskTable


@dataclass
class Queue:
    name: str
    commands: faust.TopicT = field(init=False)
    internal: faust.TopicT = field(init=False)
    tasks: TaskTable = field(init=False)
    counters: CounterTable = field(init=False)

    def __post_init__(self) -> None:
        self.commands = topics.commands(self.name)
        self.internal = topics.internal(self.name)
        self.tasks = TaskTable(self.name, self.internal)
        self.counters = CounterTable(self.name)

    @property
    def topic_name(self) -> str:
        return settings.commands_topic_for(self.name)

    @property
    def internal_topic_name(self) -> str:
        return settings.internal_topic_for(self.name)


queues: dict[str, Queue] = {name: Queue(name) for name in settings.queues}

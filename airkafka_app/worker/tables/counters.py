"""Durable counters of inputs that did not become tasks: dead letters and duplicates.

Each counter is kept per partition (``name/partition``), because a table write lands
in the partition of the event being processed; a worker sums the partitions it owns.
"""

from __future__ import annotations

from collections import Counter

import faust

from airkafka_app.contract.settings import per_queue

DEAD_LETTERS = "dead_letters"
DUPLICATES = "duplicates"


class CounterTable:
    """One queue's counters, co-partitioned with its commands topic like its task table."""

    def __init__(self, app: faust.App, queue: str, partitions: int) -> None:
        self.table = app.Table(
            per_queue("counters", queue),
            key_type=bytes,
            default=int,
            partitions=partitions,
            help=f"name/partition -> count, queue {queue}.",
        )

    def increment(self, name: str, partition: int) -> None:
        self.table[f"{name}/{partition}".encode()] += 1

    def totals(self) -> Counter[str]:
        counts: Counter[str] = Counter({DEAD_LETTERS: 0, DUPLICATES: 0})
        for key, value in self.table.items():
            counts[key.decode().partition("/")[0]] += value
        return counts

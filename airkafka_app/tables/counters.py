"""Durable counters of inputs that did not become tasks: dead letters and duplicates.

Each counter is kept per partition (``name/partition``), because a table write lands
in the partition of the event being processed; a worker sums the partitions it owns.
"""
from __future__ import annotations

from collections import Counter

from airkafka_app.application import app
from airkafka_app.settings import settings

DEAD_LETTERS = "dead_letters"
DUPLICATES = "duplicates"

table = app.Table(
    "counters",
    key_type=bytes,
    default=int,
    partitions=settings.partitions,
    help="name/partition -> count.",
)


def increment(name: str, partition: int) -> None:
    table[f"{name}/{partition}".encode()] += 1


def totals() -> Counter[str]:
    counts: Counter[str] = Counter({DEAD_LETTERS: 0, DUPLICATES: 0})
    for key, value in table.items():
        counts[key.decode().partition("/")[0]] += value
    return counts

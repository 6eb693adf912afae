"""Transient Kafka client conditions as one line a minute each, and a metric, not a flood.

aiokafka logs each failed attempt at ERROR: a fresh broker's coordinator not yet elected, a
broker of the cluster restarting, a connection refused. While one broker of a cluster was down a
worker logged about 1,700 ERROR lines a minute, and each start on a fresh broker opened with an
ERROR, though nothing was wrong that the client's retries would not mend. Such a line is passed
on at WARNING, at most once per kind a minute, saying how many like it were held back; every
occurrence counts in ``airkafka_kafka_client_errors_total{kind}``. What lasts shows elsewhere too:
the stall watchdog, ``/health/``, and the rebalance and lag metrics.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

# aiokafka's messages for conditions its retries outlast, by kind, the first that matches.
KINDS = {
    "coordinator": re.compile(
        r"Group Coordinator Request failed|Marking the coordinator dead|Coordinator .*not available"
    ),
    "fetch": re.compile(r"Failed fetch messages"),
    "metadata": re.compile(r"Unable to update metadata|Unable to request metadata|not found in cluster metadata"),
    # Last: the other kinds' messages may name a connection error too.
    "connection": re.compile(r"Unable connect to|NodeNotReadyError|KafkaConnectionError"),
}
# aiokafka's client logs as "aiokafka"; a logger's filter sees only what is logged to it by name.
LOGGERS = (
    "aiokafka",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.fetcher",
    "aiokafka.producer.sender",
)
EVERY_S = 60.0


def kind_of(message: str) -> str | None:
    return next((kind for kind, pattern in KINDS.items() if pattern.search(message)), None)


@dataclass
class Quieter:
    """Which occurrences of each kind are logged: the first, then one per ``every_s``."""

    every_s: float = EVERY_S
    _last: dict[str, float] = field(default_factory=dict)
    _held: Counter[str] = field(default_factory=Counter)

    def admit(self, kind: str, now: float) -> int | None:
        """How many of ``kind`` were held back since the last line, when this one is logged; None
        when it is held back too."""
        if (last := self._last.get(kind)) is not None and now - last < self.every_s:
            self._held[kind] += 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)


class TransientKafkaErrors(logging.Filter):
    def __init__(self, counted: PromCounter, quieter: Quieter | None = None) -> None:
        super().__init__()
        self.counted = counted
        self.quieter = quieter or Quieter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a filter that raised would raise in aiokafka's code: logging tells instead
            return True
        if (kind := kind_of(message)) is None:
            return True
        self.counted.labels(kind).inc()
        held = self.quieter.admit(kind, time.monotonic())
        if held is None:
            return False
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        note = f"{held} like it held back" if held else "more like it at most once a minute"
        record.msg, record.args = f"{message} (transient, the client retries; {note})", ()
        return True


def install(registry: CollectorRegistry) -> None:
    """The filter on aiokafka's loggers, counting into ``registry``; a build's filter replaces the
    one before it."""
    counted = PromCounter(
        "airkafka_kafka_client_errors",
        "aiokafka's errors of transient conditions (coordinator, connection, fetch, metadata), by kind",
        ["kind"],
        registry=registry,
    )
    quieting = TransientKafkaErrors(counted)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, TransientKafkaErrors)]:
            logger.removeFilter(old)
        logger.addFilter(quieting)

"""A queue's last hour as the dashboard draws it: attempts ended per minute and how long they ran.

Each worker keeps, per queue and per minute, the attempts it ended and their run times; the
cluster view adds up the workers' minutes (``merge_rates``). Run times go in bins a factor of
√2 apart, from 1 ms up, so that minutes of different workers add up; a percentile is read as
its bin's upper edge, at most 41 % above the truth. A worker's restart starts its hour anew.
Plain code: no Faust, no clock of its own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MINUTES = 60
FIRST_EDGE_S = 0.001
BINS = 64  # up to about 50 days
# The rate shown beside a queue's counts: over the last few minutes, the current one in part.
RATE_MINUTES = 5


def bin_of(seconds: float) -> int:
    if seconds <= FIRST_EDGE_S:
        return 0
    return min(BINS - 1, math.ceil(2 * math.log2(seconds / FIRST_EDGE_S)))


def upper_edge(index: int) -> float:
    return FIRST_EDGE_S * math.sqrt(2) ** index


def percentile(runs: Counter[int], q: float) -> float | None:
    """The ``q`` (0 to 1) percentile of the binned run times, as its bin's upper edge."""
    total = sum(runs.values())
    if not total:
        return None
    wanted, seen = q * total, 0
    for index in sorted(runs):
        seen += runs[index]
        if seen >= wanted:
            return upper_edge(index)
    return upper_edge(max(runs))


@dataclass
class Minute:
    ended: int = 0
    runs: Counter[int] = field(default_factory=Counter)


class TaskRates:
    """One worker's minutes, per queue, over the last hour."""

    def __init__(self) -> None:
        self._queues: dict[str, dict[int, Minute]] = {}

    def note(self, queue: str, at: float, ended: bool, run_s: float | None) -> None:
        """An attempt that ``ended`` at ``at`` (epoch seconds), or a run that lasted ``run_s``, or both."""
        minutes = self._queues.setdefault(queue, {})
        minute = int(at // 60)
        if minute not in minutes:
            for old in [m for m in minutes if m <= minute - MINUTES]:
                del minutes[old]
            minutes[minute] = Minute()
        if ended:
            minutes[minute].ended += 1
        if run_s is not None:
            minutes[minute].runs[bin_of(max(0.0, run_s))] += 1

    def snapshot(self, now: float) -> dict[str, dict[str, dict[str, Any]]]:
        """Queue -> minute (its start, epoch seconds, as text) -> ended and run-time bins: JSON."""
        first = int(now // 60) - MINUTES + 1
        return {
            queue: {
                str(minute * 60): {"ended": m.ended, "runs": {str(i): n for i, n in m.runs.items()}}
                for minute, m in sorted(minutes.items())
                if minute >= first
            }
            for queue, minutes in self._queues.items()
        }


def merge_rates(snapshots: Iterable[Any], now: float) -> dict[str, dict[str, Any]]:
    """The workers' snapshots added up: per queue, the last hour's minutes (their starts), the
    attempts ended in each, the p50 and p99 of their run times (seconds, None without runs), and
    the rate over the last ``RATE_MINUTES`` minutes. What is not a snapshot adds nothing."""
    current = int(now // 60)
    starts = [(current - MINUTES + 1 + n) * 60 for n in range(MINUTES)]
    merged: dict[str, dict[int, Minute]] = {}
    for snapshot in snapshots:
        for queue, minutes in _mapping(snapshot).items():
            into = merged.setdefault(str(queue), {})
            for start, m in _mapping(minutes).items():
                if not str(start).isdigit() or int(start) not in starts:
                    continue
                minute = into.setdefault(int(start), Minute())
                m = _mapping(m)
                minute.ended += _count(m.get("ended"))
                for index, n in _mapping(m.get("runs")).items():
                    if str(index).isdigit() and int(index) < BINS:
                        minute.runs[int(index)] += _count(n)
    series = {}
    for queue, minutes in sorted(merged.items()):
        ended = [minutes[s].ended if s in minutes else 0 for s in starts]
        runs = [minutes[s].runs if s in minutes else Counter[int]() for s in starts]
        spanned = RATE_MINUTES - 1 + (now % 60) / 60
        series[queue] = {
            "minutes": starts,
            "ended": ended,
            "p50_s": [percentile(r, 0.5) for r in runs],
            "p99_s": [percentile(r, 0.99) for r in runs],
            "per_minute": round(sum(ended[-RATE_MINUTES:]) / spanned, 1),
        }
    return series


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

"""Orders on the control topic, ``<app id>-control``, each signed with the cluster key, and what
they make of a worker's mode. Faust-free and unit-tested: ``apply`` is the decision, the worker
(``control.py``) carries it out.

- ``{"to": W, "cancel": T, "reason": R}``: worker W ends its run of task T (a rebalance left it
  there);
- ``{"to": W, "maintenance": "comment"}``, or ``null``: W starts no new task, or starts them again;
- ``{"to": "*", "pause": Q}`` / ``{"to": "*", "resume": Q}``: every worker stops, or goes on,
  starting the tasks of queue Q;
- ``{"to": W, "concurrency": n}``: W runs up to n tasks at once from now on.

A worker reads the orders from the start of the topic as it starts: a maintenance, a pause or a
concurrency outlives a restart, for as long as the topic keeps the order (its retention).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from airkafka_app.contract.commands import json_object

EVERY_WORKER = "*"
MAX_TEXT = 1024
MAX_CONCURRENCY = 4096


class Cancel(NamedTuple):
    to: str
    target: str
    reason: str


class Maintenance(NamedTuple):
    to: str
    comment: str | None  # None: out of maintenance


class Pause(NamedTuple):
    queue: str
    paused: bool


class Concurrency(NamedTuple):
    to: str
    concurrency: int


Order = Cancel | Maintenance | Pause | Concurrency


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def parse_order(value: bytes | None) -> Order | None:
    """The order a record holds, or None for anything else."""
    if (order := json_object(value)) is None or not _text(to := order.get("to")):
        return None
    fields = set(order) - {"to"}
    if fields == {"cancel", "reason"} and _text(order["cancel"]) and _text(order["reason"]):
        return Cancel(to, order["cancel"], order["reason"])
    if fields == {"maintenance"} and (order["maintenance"] is None or _text(order["maintenance"])):
        return Maintenance(to, order["maintenance"])
    if to == EVERY_WORKER and fields in ({"pause"}, {"resume"}):
        queue = order.get("pause", order.get("resume"))
        return Pause(queue, "pause" in order) if _text(queue) else None
    count = order.get("concurrency")
    if fields == {"concurrency"} and isinstance(count, int) and not isinstance(count, bool):
        return Concurrency(to, count) if 1 <= count <= MAX_CONCURRENCY else None
    return None


def encode_order(order: Order) -> bytes:
    if isinstance(order, Cancel):
        data: dict[str, Any] = {"to": order.to, "cancel": order.target, "reason": order.reason}
    elif isinstance(order, Maintenance):
        data = {"to": order.to, "maintenance": order.comment}
    elif isinstance(order, Pause):
        data = {"to": EVERY_WORKER, "pause" if order.paused else "resume": order.queue}
    else:
        data = {"to": order.to, "concurrency": order.concurrency}
    return json.dumps(data).encode()


def order_key(order: Order) -> bytes:
    return (EVERY_WORKER if isinstance(order, Pause) else order.to).encode()


@dataclass(frozen=True)
class Mode:
    """What the orders so far make of one worker."""

    concurrency: int
    maintenance: str | None = None
    paused: frozenset[str] = frozenset()

    def takes(self, queue: str) -> bool:
        """Whether it runs new tasks of ``queue``."""
        return self.why_waiting(queue) is None

    def why_waiting(self, queue: str) -> str | None:
        """Why a new task of ``queue`` waits rather than runs; None when it runs."""
        if self.maintenance is not None:
            return f"the worker is in maintenance: {self.maintenance}"
        return f"queue {queue} is paused" if queue in self.paused else None


def apply(mode: Mode, order: Order, me: str) -> Mode:
    """The mode of worker ``me`` after ``order``; a cancel leaves it as it is."""
    if isinstance(order, Pause):
        paused = mode.paused | {order.queue} if order.paused else mode.paused - {order.queue}
        return replace(mode, paused=paused)
    if isinstance(order, Cancel) or order.to != me:
        return mode
    if isinstance(order, Maintenance):
        return replace(mode, maintenance=order.comment)
    return replace(mode, concurrency=order.concurrency)

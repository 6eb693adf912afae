"""A worker's heartbeat on the heartbeats topic: ``{"worker": <name>, "at": <unix time>, "url":
<its web server>}``, with ``"stopped": true`` on the last one of a clean stop. Signed with the
cluster key, the URL tells the other workers which web servers are members to ask. Faust-free:
the Airflow CLI reads them too."""

from __future__ import annotations

import json
import math
from typing import NamedTuple

from airkafka_app.contract.commands import json_object


class Beat(NamedTuple):
    worker: str
    at: float
    stopped: bool = False
    url: str | None = None


def encode_beat(worker: str, at: float, url: str | None = None, **fields: bool) -> bytes:
    return json.dumps({"worker": worker, "at": at, **({"url": url} if url else {}), **fields}).encode()


def parse_beat(value: bytes | None) -> Beat | None:
    """A heartbeat's worker, time, whether it stopped, and URL; None for anything else."""
    if (beat := json_object(value)) is None:
        return None
    worker, at = beat.get("worker"), beat.get("at")
    if not (
        isinstance(worker, str)
        and 0 < len(worker) <= 255
        and isinstance(at, (int, float))
        and not isinstance(at, bool)
        and math.isfinite(at)
    ):
        return None
    url = beat.get("url") if isinstance(beat.get("url"), str) and len(beat["url"]) <= 1024 else None
    return Beat(worker, float(at), beat.get("stopped") is True, url)


# A worker shows (lost or stopped) this long after its last heartbeat, then is forgotten: its
# tasks were recovered long before, and an alert on it ends.
SHOWN_S = 3600.0


def worker_status(silent_s: float, stopped: bool, lost_after_s: float) -> str:
    """``online``, ``lost`` (silent past the bound) or ``stopped`` (its last heartbeat said so)."""
    if stopped:
        return "stopped"
    return "online" if silent_s <= lost_after_s else "lost"


def roster(last: dict[str, tuple[float, bool]], now: float, lost_after_s: float) -> dict[str, tuple[str, float]]:
    """Worker -> (status, seconds since its last heartbeat), for the workers heard in SHOWN_S;
    ``last`` maps a worker to the time of its last heartbeat and whether that one said it stopped."""
    return {
        worker: (worker_status(now - at, stopped, lost_after_s), now - at)
        for worker, (at, stopped) in sorted(last.items())
        if now - at <= SHOWN_S
    }

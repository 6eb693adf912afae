"""A worker's heartbeat on the heartbeats topic: ``{"worker": <name>, "at": <unix time>, "url":
<its web server>}``, with ``"maintenance": <comment>`` while it is in maintenance, and
``"stopped": true`` on the last one of a clean stop. Signed with the
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
    maintenance: str | None = None  # its comment, while the worker is in maintenance


def encode_beat(
    worker: str, at: float, url: str | None = None, maintenance: str | None = None, stopped: bool = False
) -> bytes:
    beat: dict = {"worker": worker, "at": at}
    if url:
        beat["url"] = url
    if maintenance is not None:
        beat["maintenance"] = maintenance
    if stopped:
        beat["stopped"] = True
    return json.dumps(beat).encode()


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
    url, comment = (
        value if isinstance(value := beat.get(name), str) and len(value) <= 1024 else None
        for name in ("url", "maintenance")
    )
    return Beat(worker, float(at), beat.get("stopped") is True, url, comment)


# A worker shows (lost or stopped) this long after its last heartbeat, then is forgotten: its
# tasks were recovered long before, and an alert on it ends.
SHOWN_S = 3600.0


def worker_status(silent_s: float, stopped: bool, lost_after_s: float, maintenance: bool = False) -> str:
    """``online``, ``maintenance`` (online, taking no new work), ``lost`` (silent past the bound)
    or ``stopped`` (its last heartbeat said so)."""
    if stopped:
        return "stopped"
    if silent_s > lost_after_s:
        return "lost"
    return "maintenance" if maintenance else "online"


def roster(last: dict[str, Beat], now: float, lost_after_s: float) -> dict[str, tuple[str, float]]:
    """Worker -> (status, seconds since its last heartbeat), for the workers heard in SHOWN_S;
    ``last`` maps a worker to its last heartbeat."""
    return {
        worker: (worker_status(now - beat.at, beat.stopped, lost_after_s, beat.maintenance is not None), now - beat.at)
        for worker, beat in sorted(last.items())
        if now - beat.at <= SHOWN_S
    }

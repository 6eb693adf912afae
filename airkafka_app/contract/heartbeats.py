"""A worker's heartbeat on the heartbeats topic: ``{"worker": <name>, "at": <unix time>}``, with
``"stopped": true`` on the last one of a clean stop. Faust-free: the Airflow CLI reads them too."""

from __future__ import annotations

import json
import math

from airkafka_app.contract.commands import json_object


def encode_beat(worker: str, at: float, **fields: bool) -> bytes:
    return json.dumps({"worker": worker, "at": at, **fields}).encode()


def parse_beat(value: bytes | None) -> tuple[str, float, bool] | None:
    """(worker, time, whether it stopped) of a heartbeat, or None for anything else."""
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
    return worker, float(at), beat.get("stopped") is True


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

"""A worker's heartbeat on the heartbeats topic: ``{"worker": <name>, "at": <unix time>}``, with
``"stopped": true`` on the last one of a clean stop. Faust-free: the Airflow CLI reads them too."""
from __future__ import annotations

import json
import math

from airkafka_app.commands import json_object


def encode_beat(worker: str, at: float, **fields: bool) -> bytes:
    return json.dumps({"worker": worker, "at": at, **fields}).encode()


def parse_beat(value: bytes | None) -> tuple[str, float, bool] | None:
    """(worker, time, whether it stopped) of a heartbeat, or None for anything else."""
    if (beat := json_object(value)) is None:
        return None
    worker, at = beat.get("worker"), beat.get("at")
    if not (isinstance(worker, str) and 0 < len(worker) <= 255 and isinstance(at, (int, float))
            and not isinstance(at, bool) and math.isfinite(at)):
        return None
    return worker, float(at), beat.get("stopped") is True

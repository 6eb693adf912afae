"""The dead-letter record: why an input was refused, and the input itself (Faust-free)."""
from __future__ import annotations

import base64
from typing import Any


def _bytes_field(name: str, data: bytes | None) -> dict[str, Any]:
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


def dead_letter(error: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """The JSON value published on the dead-letters topic."""
    return {
        "error": error,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        **_bytes_field("key", key),
        **_bytes_field("value", value),
    }

"""The dead-letter record: why an input was refused, and the input itself (Faust-free).

A dead letter must always fit the producer's limit, whatever the input's size: it quotes a
prefix of the key and the value, with their lengths in bytes.
"""

from __future__ import annotations

import base64
import json
from typing import Any

MAX_ERROR_CHARS = 1024
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 64 * 1024


def _bytes_field(name: str, data: bytes | None, limit: int) -> dict[str, Any]:
    if data is None:
        return {name: None}
    quoted = {f"{name}_length": len(data)} if len(data) > limit else {}
    try:
        data.decode("utf-8")
        # A prefix of valid UTF-8 may end inside a character: only that one is dropped.
        return {name: data[:limit].decode("utf-8", errors="ignore"), **quoted}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data[:limit]).decode("ascii"), **quoted}


def dead_letter(
    error: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
) -> dict[str, Any]:
    """The dead letter's fields. A key or value longer than its limit is quoted in part, and
    ``key_length`` or ``value_length`` gives its whole length in bytes."""
    return {
        "error": error[:MAX_ERROR_CHARS],
        "topic": topic,
        "partition": partition,
        "offset": offset,
        **_bytes_field("key", key, MAX_KEY_BYTES),
        **_bytes_field("value", value, MAX_VALUE_BYTES),
    }


def encode_dead_letter(letter: dict[str, Any]) -> bytes:
    """As UTF-8 JSON: escaped, a quoted prefix could grow sixfold."""
    return json.dumps(letter, ensure_ascii=False).encode("utf-8", errors="backslashreplace")

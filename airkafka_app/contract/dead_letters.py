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


# How much of a refused value a listing shows; the whole quote stays in the topic.
SHOWN_VALUE_CHARS = 300


def listing(value: bytes | None, timestamp_ms: int) -> dict[str, Any] | None:
    """A dead letter as the dead-letter view lists it: when, the refused message's key and
    place, the reason, its size in bytes, and the start of its value (base64 when it was not
    text, marked so); None for a record that is no dead letter."""
    try:
        letter = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    if not isinstance(letter, dict) or not isinstance(letter.get("error"), str):
        return None
    if isinstance(text := letter.get("value"), str):
        size = len(text.encode())
    elif isinstance(b64 := letter.get("value_b64"), str):
        text, size = f"(base64) {b64}", len(base64.b64decode(b64))
    else:
        text, size = "", 0
    if isinstance(letter.get("value_length"), int):
        size = letter["value_length"]  # the whole value's, of which only a prefix is quoted
    key = letter.get("key") if isinstance(letter.get("key"), str) else letter.get("key_b64")
    return {
        "at": timestamp_ms / 1000,
        "key": key,
        "reason": letter["error"],
        "size": size,
        "value": text[:SHOWN_VALUE_CHARS],
        "truncated": len(text) > SHOWN_VALUE_CHARS or "value_length" in letter,
        "source": f"{letter.get('topic')}:{letter.get('partition')}@{letter.get('offset')}",
    }

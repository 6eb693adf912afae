"""Worker-to-worker messages, signed with the cluster key (Faust-free).

Reports, recovery requests, control orders and heartbeats act on other workers' tasks, so each
carries an HMAC-SHA256 of its topic, key and value under ``AIRKAFKA_CLUSTER_KEY`` in the header
``airkafka-mac``, and a worker acts on none without checking it. The topic is part of what is
signed, so a record signed for one kind of message is no good as another. Requests one worker
makes of another's web views are signed the same way (``peer_signature``) instead of carrying
the operator's web token. With no cluster key, nothing is signed or checked: the workers then
trust whoever may write their topics, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Iterable

HEADER = "airkafka-mac"
PEER_HEADER = "X-AirKafka-Peer"
# How far a signed request's time may be from the receiver's clock (keep hosts in NTP sync).
PEER_WINDOW_S = 60.0


def _mac(key: str, *parts: bytes) -> bytes:
    framed = b"".join(struct.pack(">I", len(part)) + part for part in parts)
    return hmac.new(key.encode(), framed, hashlib.sha256).digest()


def headers(key: str, topic: str, record_key: bytes | None, value: bytes | None) -> list[tuple[str, bytes]]:
    """The headers that sign a record for ``topic``; none without a cluster key."""
    return [(HEADER, _mac(key, b"record", topic.encode(), record_key or b"", value or b""))] if key else []


def verified(
    key: str,
    topic: str,
    record_key: bytes | None,
    value: bytes | None,
    record_headers: Iterable[tuple[str, bytes]] | None,
) -> bool:
    """Whether the record was signed for ``topic`` with the cluster key; always, without one."""
    if not key:
        return True
    given = [v for name, v in (record_headers or ()) if name == HEADER]
    expected = headers(key, topic, record_key, value)[0][1]
    return len(given) == 1 and isinstance(given[0], bytes) and hmac.compare_digest(given[0], expected)


def peer_signature(key: str, method: str, path_qs: str, now: float | None = None) -> str:
    """The value of PEER_HEADER for a request one worker makes of another."""
    at = f"{time.time() if now is None else now:.3f}"
    return f"{at}:{_mac(key, b'peer', method.encode(), path_qs.encode(), at.encode()).hex()}"


def peer_verified(key: str, method: str, path_qs: str, signature: str, now: float | None = None) -> bool:
    """Whether a request comes from a worker holding the cluster key, recently."""
    at, _, _ = signature.partition(":")
    try:
        skew = abs((time.time() if now is None else now) - float(at))
    except ValueError:
        return False
    if not key or skew > PEER_WINDOW_S:
        return False
    return hmac.compare_digest(signature, peer_signature(key, method, path_qs, float(at)))

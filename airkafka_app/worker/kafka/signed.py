"""Sends of the records workers send each other, signed with the cluster key (contract/signing.py)."""

from __future__ import annotations

from typing import Any

import faust

from airkafka_app.contract import signing


def signed(cluster_key: str, topic: faust.TopicT, key: bytes, value: bytes) -> dict[str, Any]:
    """The arguments of a send of ``key`` and ``value`` on ``topic``, with its signature."""
    headers = signing.headers(cluster_key, topic.get_topic_name(), key, value)
    return {"key": key, "value": value, "headers": headers}

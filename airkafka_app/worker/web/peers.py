"""Requests one worker makes of another's web views: for the cluster views, and to reach the
owner of a task's partition.

Only members the heartbeats name are asked, at the URL their heartbeat gives (heartbeats are
signed with the cluster key), so a forged group member cannot be made a target. A request is
signed with the cluster key (contract/signing.py), never with the operator's web token, which
stays on the worker it was given to; and an answer is taken only as a JSON object, which the
asking worker serves again as JSON of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from faust.web import Request
from yarl import URL

from airkafka_app.contract import signing
from airkafka_app.worker.application import App

TIMEOUT_S = 3.0


def known(app: App, url: str) -> bool:
    """Whether ``url`` is this worker's, or one a worker's heartbeat gave."""
    return url == str(app.conf.canonical_url) or url in app.parts.heartbeats.urls.values()


async def _known_soon(app: App, url: str) -> bool:
    """Whether ``url`` is known, or becomes so within two heartbeats: a worker that has just
    started is named by its first heartbeat, a heartbeat interval after its start."""
    deadline = asyncio.get_running_loop().time() + 2 * app.settings.heartbeat_s
    while not known(app, url):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def is_peer(cluster_key: str, request: Request) -> bool:
    """Whether the request comes from a worker holding the cluster key."""
    signature = request.headers.get(signing.PEER_HEADER, "")
    return bool(signature) and signing.peer_verified(cluster_key, request.method, request.raw_path, signature)


async def ask(
    app: App, url: str, path_qs: str, method: str = "GET", timeout_s: float = TIMEOUT_S
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON object) of a member's answer; (502, {"error": ...}) when it gave none."""
    settings = app.settings
    target = URL(url).join(URL(path_qs))
    if not await _known_soon(app, url):
        return 502, {"error": f"{url} is not a worker the heartbeats name"}
    headers = {}
    if settings.cluster_key:
        headers[signing.PEER_HEADER] = signing.peer_signature(settings.cluster_key, method, target.raw_path_qs)
    try:
        async with app.http_client.request(
            method, target, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            answer = await response.json(content_type=None)
            status = response.status
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return 502, {"error": f"{type(exc).__name__}: {exc}"}
    if not isinstance(answer, dict):
        return 502, {"error": f"HTTP {status}: not a JSON object"}
    if status == 401 and not settings.cluster_key:
        answer = {
            **answer,
            "error": f"{answer.get('error')}: set AIRKAFKA_CLUSTER_KEY, so that workers may read each other",
        }
    return status, answer

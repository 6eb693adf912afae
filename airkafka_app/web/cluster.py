"""Cluster views: what every worker answers for its own partitions, merged, and every worker as
the heartbeats tell of it. Any worker serves them.

The workers asked are the consumer group's members, at the canonical URLs Faust's assignor
shares, the same ones Faust routes a table request to; a request's bearer token goes with it, as
with Faust's routing. A member that does not answer within MEMBER_TIMEOUT_S is listed with the
error, and the merge goes on without it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from faust.web import Request, Response, View
from yarl import URL

from airkafka_app.application import app
from airkafka_app.contract.airflow_tasks import IDENTITY
from airkafka_app.contract.settings import DEFAULT_QUEUE
from airkafka_app.contract.states import State
from airkafka_app.liveness import heartbeats
from airkafka_app.web.cluster_merge import merge_queues, merge_tasks, merge_workers
from airkafka_app.web.views import MAX_LIMIT, refused_read

MEMBER_TIMEOUT_S = 3.0


def member_urls() -> list[str]:
    """This worker's URL and those of the group's other members, as the last assignment told."""
    assignor = app.assignor
    urls = {str(app.conf.canonical_url), *assignor.external_topics_metadata(), *assignor.tables_metadata()}
    return sorted(urls)


async def _ask(url: str, path: str, query: dict[str, str], request: Request) -> dict[str, Any]:
    headers = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
    try:
        async with app.http_client.get(
            URL(url).with_path(path).with_query(query),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=MEMBER_TIMEOUT_S),
        ) as response:
            answer = await response.json(content_type=None)
            if response.status != 200 or not isinstance(answer, dict):
                return {
                    "error": f"HTTP {response.status}: {answer.get('error') if isinstance(answer, dict) else answer}"
                }
            return answer
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


async def ask_members(path: str, query: dict[str, str], request: Request) -> dict[str, dict[str, Any]]:
    """Member URL -> its answer, or ``{"error": ...}``."""
    urls = member_urls()
    answers = await asyncio.gather(*(_ask(url, path, query, request) for url in urls))
    return dict(zip(urls, answers, strict=True))


@app.page("/cluster/")
async def cluster(web: View, request: Request) -> Response:
    """The workers, online, lost or stopped, and each queue's counts over the whole cluster."""
    if refused := refused_read(web, request):
        return refused
    answers = await ask_members("/stats/", {}, request)
    return web.json(
        {
            "workers": merge_workers(answers, heartbeats.roster()),
            "queues": merge_queues(answers),
            "states": [state.value for state in State],
        }
    )


@app.page("/cluster/tasks/")
async def cluster_tasks(web: View, request: Request) -> Response:
    """The newest tasks of a queue over the whole cluster, ``limit`` (default 50) of them, picked by
    ``state``, ``worker`` and the Airflow fields as ``/tasks/`` picks them; one page, newest change first."""
    if refused := refused_read(web, request):
        return refused
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return web.json({"error": f"limit must be an integer from 1 to {MAX_LIMIT}"}, status=400)
    query = {"queue": request.query.get("queue", DEFAULT_QUEUE), "limit": str(limit)}
    query.update({name: request.query[name] for name in ("state", *IDENTITY) if name in request.query})
    answers = await ask_members("/tasks/", query, request)
    return web.json(merge_tasks(answers, request.query.get("worker"), limit))

"""Cluster views: what every worker answers for its own partitions, merged, and every worker as
the heartbeats tell of it. Any worker serves them.

The workers asked are the consumer group's members, at the canonical URLs Faust's assignor
shares, that the heartbeats name too (``peers.py``); each request is signed with the cluster key,
not with the caller's token. A member that does not answer within peers.TIMEOUT_S is listed
with the error, and the merge goes on without it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.web import Request, Response, View
from yarl import URL

from airkafka_app.contract.airflow_tasks import IDENTITY
from airkafka_app.contract.settings import DEFAULT_QUEUE
from airkafka_app.contract.states import State
from airkafka_app.worker.application import App
from airkafka_app.worker.task_rates import merge_rates
from airkafka_app.worker.web import peers
from airkafka_app.worker.web.cluster_merge import merge_queues, merge_tasks, merge_workers
from airkafka_app.worker.web.views import LIMIT_ERROR, limit_of, refused_read


def member_urls(app: App) -> list[str]:
    """This worker's URL and those of the group's other members, as the last assignment told,
    that the heartbeats name."""
    assignor = app.assignor
    urls = {str(app.conf.canonical_url), *assignor.external_topics_metadata(), *assignor.tables_metadata()}
    return sorted(url for url in urls if peers.known(app, url))


async def _ask(app: App, url: str, path: str, query: dict[str, str]) -> dict[str, Any]:
    status, answer = await peers.ask(app, url, str(URL(path).with_query(query)))
    return answer if status == 200 else {"error": f"HTTP {status}: {answer.get('error')}"}


async def ask_members(app: App, path: str, query: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Member URL -> its answer, or ``{"error": ...}``."""
    urls = member_urls(app)
    answers = await asyncio.gather(*(_ask(app, url, path, query) for url in urls))
    return dict(zip(urls, answers, strict=True))


async def cluster(web: View, request: Request) -> Response:
    """The workers, online, lost or stopped, and each queue's counts over the whole cluster."""
    if refused := refused_read(web, request):
        return refused
    answers = await ask_members(web.app, "/stats/", {})
    return web.json(
        {
            "workers": merge_workers(answers, web.app.parts.heartbeats.roster()),
            "queues": merge_queues(answers),
            "rates": merge_rates((answer.get("rates") for answer in answers.values()), time.time()),
            "states": [state.value for state in State],
            # Where the dashboard links an Airflow try's full log.
            "airflow_url": web.app.settings.airflow_api_url,
        }
    )


async def cluster_tasks(web: View, request: Request) -> Response:
    """The newest tasks of a queue over the whole cluster, ``limit`` (default 50) of them, picked by
    ``state``, ``worker`` and the Airflow fields as ``/tasks/`` picks them; one page, newest change first."""
    if refused := refused_read(web, request):
        return refused
    if (limit := limit_of(request, 50)) is None:
        return web.json({"error": LIMIT_ERROR}, status=400)
    query = {"queue": request.query.get("queue", DEFAULT_QUEUE), "limit": str(limit)}
    query.update({name: request.query[name] for name in ("state", "search", *IDENTITY) if name in request.query})
    answers = await ask_members(web.app, "/tasks/", query)
    return web.json(merge_tasks(answers, request.query.get("worker"), limit))


def install(app: App) -> None:
    app.page("/cluster/")(cluster)
    app.page("/cluster/tasks/")(cluster_tasks)

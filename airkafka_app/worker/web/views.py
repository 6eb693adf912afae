"""Web views on the task tables, served by Faust's web server.

``?queue=`` picks a queue (default ``default``); a task with a serial key is found by
``?key=<serial key>``, the key that placed it on its partition. The views that change
anything, cancel and replay, need ``Authorization: Bearer $AIRKAFKA_WEB_TOKEN``; with
``AIRKAFKA_WEB_AUTH_READS`` the others do too, all but ``/health/``. Records are shown without
their command's env values and workload token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from faust.web import Request, Response, View

from airkafka_app.contract.airflow_tasks import IDENTITY
from airkafka_app.contract.commands import CANCEL, FORCE, REPLAY_HEADER, Command, decode_command
from airkafka_app.contract.orders import Cancel, Pause, encode_order, parse_order
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import DEFAULT_QUEUE
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import redacted
from airkafka_app.worker.application import App
from airkafka_app.worker.core.task_rules import replay_decision
from airkafka_app.worker.queues import Queue
from airkafka_app.worker.runners import enabled_kinds, shell_runner
from airkafka_app.worker.tables.task_index import Entry
from airkafka_app.worker.web import peers

log = logging.getLogger(__name__)

MAX_LIMIT = 500


def _has_token(web: View, request: Request) -> bool:
    """The operator's token, or another worker's signed request on an operator's behalf."""
    settings = web.app.settings
    given = request.headers.get("Authorization", "").encode()
    if settings.web_token and hmac.compare_digest(given, f"Bearer {settings.web_token}".encode()):
        return True
    return peers.is_peer(settings.cluster_key, request)


def refused_read(web: View, request: Request) -> Response | None:
    """401 when reads need the token and the request has not got it."""
    if web.app.settings.web_auth_reads and not _has_token(web, request):
        return web.json({"error": "missing or wrong bearer token"}, status=401)
    return None


def limit_of(request: Request, default: int) -> int | None:
    """The ``limit`` a listing asks for, or None when it is no integer from 1 to MAX_LIMIT."""
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        return None
    return limit if 1 <= limit <= MAX_LIMIT else None


LIMIT_ERROR = f"limit must be an integer from 1 to {MAX_LIMIT}"


def _cursor(entry: Entry) -> str:
    return f"{entry.at}.{entry.key.hex()}"


def _after(cursor: str) -> Entry:
    """The entry a cursor names; ValueError for anything else."""
    at, _, key = cursor.partition(".")
    return Entry(int(at), bytes.fromhex(key), 0, State.QUEUED)


def _filter(request: Request) -> Callable[[dict[str, Any]], bool] | None:
    """Records of the Airflow task instances the query names (``dag_id``, ``task_id``, ...), and
    of those whose id or Airflow ids hold ``search`` (case aside)."""
    wanted = {name: request.query[name] for name in IDENTITY if name in request.query}
    search = request.query.get("search", "").strip().casefold()
    if not wanted and not search:
        return None

    def match(record: dict[str, Any]) -> bool:
        airflow = record.get("airflow") or {}
        if not all(str(airflow.get(name)) == value for name, value in wanted.items()):
            return False
        ids = [str(record.get("id", "")), *(str(airflow.get(name, "")) for name in ("dag_id", "task_id", "run_id"))]
        return not search or any(search in text.casefold() for text in ids)

    return match


def _queue_stats(queue: Queue) -> tuple[Counter[str], Counter[str]]:
    return queue.tasks.counts(), queue.counters.totals()


def install(app: App) -> None:
    """The views of this worker's own partitions, and its health."""
    parts = app.parts
    settings, queues, pool, control = parts.settings, parts.queues, parts.pool, parts.control
    heartbeats, watchdog, loop_lag = parts.heartbeats, parts.watchdog, parts.loop_lag

    def _queue(request: Request) -> Queue | None:
        return queues.get(request.query.get("queue", DEFAULT_QUEUE))

    def _not_served(web: View, request: Request) -> Response:
        name = request.query.get("queue", DEFAULT_QUEUE)
        return web.json({"error": f"queue {name!r} is not served by {settings.worker_name}"}, status=404)

    async def _owning_queue(web: View, request: Request, task_id: str) -> Queue | Response:
        """The queue when this worker owns the task's partition; else the answer to give: not served,
        or the owner's, asked as a peer (``peers.py``). Routed by the queue's commands topic: Faust's
        table routing knows only the tables of the group leader, which may not serve this queue."""
        queue = _queue(request)
        if queue is None:
            return _not_served(web, request)
        await app.producer.partitions_for(queue.topic_name)
        try:
            owner = str(app.router.external_topic_key_store(queue.commands, request.query.get("key", task_id)))
        except KeyError:
            return web.json({"error": "no worker owns the task's partition yet; try again"}, status=503)
        if owner == str(app.conf.canonical_url):
            return queue
        status, answer = await peers.ask(app, owner, request.raw_path, request.method)
        return web.json(answer, status=status)

    def _refused_change(web: View, request: Request, action: str) -> Response | None:
        """403 when changes over the web are off, 401 without the token."""
        if not settings.web_token:
            return web.json({"error": f"{action} over the web is off: AIRKAFKA_WEB_TOKEN is not set"}, status=403)
        if not _has_token(web, request):
            return web.json({"error": "missing or wrong bearer token"}, status=401)
        return None

    @app.page("/tasks/{task_id}/")
    async def task_detail(web: View, request: Request, task_id: str) -> Response:
        """The task's record, from the worker that owns its partition."""
        if refused := refused_read(web, request):
            return refused
        if not isinstance(owner := await _owning_queue(web, request, task_id), Queue):
            return owner
        data = owner.tasks.get(task_id)
        if data is None:
            return web.json({"error": f"unknown task {task_id!r}"}, status=404)
        return web.json(redacted(data))

    @app.page("/tasks/")
    async def task_list(web: View, request: Request) -> Response:
        """Tasks held by this worker's partitions of the queue, newest first, a page at a time:
        ``limit`` (1 to 500, default 100) of them, and ``next``, the ``cursor`` of the next page.
        Airflow tasks can be picked by ``dag_id``, ``task_id``, ``run_id``, ``map_index`` and
        ``try_number``, and any task by ``search``, a part of its id or of its Airflow ids: a page
        then reads at most MAX_SCAN records, and may hold fewer than ``limit`` with a ``next`` to
        go on from."""
        if refused := refused_read(web, request):
            return refused
        queue = _queue(request)
        if queue is None:
            return _not_served(web, request)
        state = request.query.get("state")
        if state is not None and state not in State._value2member_map_:
            return web.json({"error": f"unknown state {state!r}"}, status=400)
        if (limit := limit_of(request, 100)) is None:
            return web.json({"error": LIMIT_ERROR}, status=400)
        try:
            after = _after(request.query["cursor"]) if "cursor" in request.query else None
        except ValueError:
            return web.json({"error": "cursor must be the next of a page"}, status=400)
        states = [State(state)] if state else list(State)
        match = _filter(request)
        found, stopped_at = await queue.tasks.newest(states, after, limit + 1, match)
        counts = queue.tasks.counts()
        if len(found) > limit:
            stopped_at = found[limit - 1][0]
        return web.json(
            {
                "tasks": [redacted(data) for _, data in found[:limit]],
                "count": sum(counts[s.value] for s in states) if match is None else None,
                "next": _cursor(stopped_at) if stopped_at is not None else None,
                "rebuilding": queue.tasks.index.rebuilding,
            }
        )

    @app.page("/tasks/{task_id}/cancel/")
    class TaskCancel(View):
        async def post(self, request: Request, task_id: str) -> Response:
            """Send a cancel for the task to its queue; 202 once it is on the commands topic."""
            if refused := _refused_change(self, request, "cancel"):
                return refused
            queue = _queue(request)
            if queue is None:
                return _not_served(self, request)
            key = request.query.get("key")
            cancel = Command(
                f"web-cancel-{uuid.uuid4().hex[:12]}",
                CANCEL,
                {"target": task_id, **({"serial_key": key} if key else {})},
            )
            await queue.commands.send(key=cancel.routing_key.encode(), value=cancel.encode())
            return self.json({"cancel": cancel.id, "target": task_id}, status=202)

    @app.page("/tasks/{task_id}/replay/")
    class TaskReplay(View):
        async def post(self, request: Request, task_id: str) -> Response:
            """Send an ended task's command again, from the worker that owns its record; 202 once it is on
            the commands topic. A successful task needs ``?force=1``, as ``faust -A airkafka_app replay``."""
            if refused := _refused_change(self, request, "replay"):
                return refused
            if not isinstance(queue := await _owning_queue(self, request, task_id), Queue):
                return queue
            record = queue.tasks.load(task_id)
            if record is None:
                return self.json({"error": f"unknown task {task_id!r}"}, status=404)
            force = request.query.get("force") == "1"
            kind = record.command.get("kind")
            if (why := replay_decision(record.state.value, only_failed=False, force=force, kind=kind)) != "replayed":
                return self.json({"error": f"not replayed: {why.removeprefix('skipped: ')}"}, status=409)
            command = decode_command(None, json.dumps(record.command).encode())
            await queue.commands.send(
                key=command.routing_key.encode(),
                value=command.encode(),
                headers={REPLAY_HEADER: FORCE} if force else None,
            )
            log.info("task %s replayed from the web (attempt %d was %s)", task_id, record.attempt, record.state.value)
            return self.json({"replayed": task_id, "was": record.state.value}, status=202)

    @app.page("/control/")
    class Orders(View):
        async def post(self, request: Request) -> Response:
            """Send an operator's order to the workers (contract/orders.py), signed by this worker:
            maintenance, a queue's pause or resume, a worker's concurrency. 202 once it is on the
            control topic; each worker then logs what it has become, and ``/cluster/`` shows it."""
            if refused := _refused_change(self, request, "control"):
                return refused
            order = parse_order(await request.read())
            if order is None or isinstance(order, Cancel):
                return self.json(
                    {
                        "error": 'not an order: {"to": worker, "maintenance": comment | null}, '
                        '{"to": "*", "pause" | "resume": queue} or {"to": worker, "concurrency": n}'
                    },
                    status=400,
                )
            if not isinstance(order, Pause) and order.to not in {settings.worker_name, *heartbeats.last_seen}:
                return self.json({"error": f"no worker {order.to!r} heard from"}, status=404)
            await control.send(order)
            sent = json.loads(encode_order(order))
            log.info("order sent from the web: %s", printable(json.dumps(sent)))
            return self.json({"sent": sent}, status=202)

    @app.page("/stats/")
    async def stats(web: View, request: Request) -> Response:
        """Counts over this worker's partitions: all its queues together, then each queue."""
        if refused := refused_read(web, request):
            return refused
        tasks, counts, per_queue = Counter[str](), Counter[str](), {}
        for name, queue in queues.items():
            by_state, queue_counts = _queue_stats(queue)
            tasks.update(by_state)
            counts.update(queue_counts)
            per_queue[name] = {"tasks": dict(by_state), **queue_counts}
        return web.json(
            {
                "worker": settings.worker_name,
                "tasks": dict(tasks),
                **counts,
                "queues": per_queue,
                "running": pool.running_count,
                "partitions": _partitions(),
                "concurrency": pool.concurrency,
                "maintenance": control.mode.maintenance,
                "paused": sorted(control.mode.paused),
                "rates": parts.metrics.rates.snapshot(time.time()),
            }
        )

    def _partitions() -> dict[str, list[int]]:
        """Queue -> the partitions of its commands topic this worker owns."""
        assigned = app.assignor.assigned_actives()
        return {
            name: sorted(tp.partition for tp in assigned if tp.topic == queue.topic_name)
            for name, queue in queues.items()
        }

    @app.page("/live/")
    async def live(web: View, request: Request) -> Response:
        """200 while the worker's event loop answers, through rebalances and recovery: a liveness
        probe. A stalled worker exits by itself (stall_watchdog)."""
        return web.json(
            {"status": "alive", "worker": settings.worker_name, "recovering": bool(app.rebalancing or app.in_recovery)}
        )

    @app.page("/health/")
    async def health(web: View, request: Request) -> Response:
        """503 until the tables are recovered, so a readiness probe never sees a partial table, and
        while publishing is stalled."""
        if watchdog.stalled is not None:
            return web.json(
                {"status": "stalled", "worker": settings.worker_name, "reason": watchdog.stalled}, status=503
            )
        if app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set():
            return web.json({"status": "recovering", "worker": settings.worker_name}, status=503)
        return web.json(
            {
                "status": "ok",
                "worker": settings.worker_name,
                "kinds": enabled_kinds(parts.runners),
                "containment": shell_runner(parts.runners).containment,
                "partitions": _partitions(),
                "event_loop_max_stall_ms": round(loop_lag.max_s * 1000, 1),
            }
        )

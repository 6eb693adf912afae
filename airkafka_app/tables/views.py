"""Read-only web views on the task table, served by Faust's web server."""
from __future__ import annotations

from collections import Counter

from faust.web import Request, Response, View

from airkafka_app.application import app
from airkafka_app.settings import settings
from airkafka_app.states import State
from airkafka_app.tables import counters, tasks


@app.page("/tasks/{task_id}/")
@app.table_route(table=tasks.table, match_info="task_id")
async def task_detail(web: View, request: Request, task_id: str) -> Response:
    data = tasks.table.get(task_id.encode())
    if data is None:
        return web.json({"error": f"unknown task {task_id!r}"}, status=404)
    return web.json(data)


@app.page("/tasks/")
async def task_list(web: View, request: Request) -> Response:
    """Tasks held by this worker's partitions, newest first."""
    state = request.query.get("state")
    if state is not None and state not in State._value2member_map_:
        return web.json({"error": f"unknown state {state!r}"}, status=400)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return web.json({"error": "limit must be an integer"}, status=400)
    found = [data for data in tasks.table.values() if state is None or data["state"] == state]
    found.sort(key=lambda data: data["updated_at"], reverse=True)
    return web.json({"tasks": found[:limit], "count": len(found)})


@app.page("/stats/")
async def stats(web: View, request: Request) -> Response:
    by_state = Counter({state.value: 0 for state in State})
    by_state.update(data["state"] for data in tasks.table.values())
    return web.json({"worker": settings.worker_name, "tasks": dict(by_state), **counters.totals()})


@app.page("/health/")
async def health(web: View, request: Request) -> Response:
    """503 until the table is recovered, so a readiness probe never sees a partial table."""
    if app.rebalancing or app.in_recovery or not app.tables.recovery.completed.is_set():
        return web.json({"status": "recovering", "worker": settings.worker_name}, status=503)
    assigned = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.commands_topic)
    return web.json({"status": "ok", "worker": settings.worker_name, "partitions": assigned})

"""``/dead-letters/``: the newest dead letters of the whole cluster, with their reasons. Every
worker writes them to one topic, so any worker answers for all; each request reads the topic's
tail without a group."""

from __future__ import annotations

from aiokafka import TopicPartition
from faust.web import Request, Response, View

from airkafka_app.contract.dead_letters import listing
from airkafka_app.contract.settings import Settings
from airkafka_app.worker.application import App
from airkafka_app.worker.kafka.admin import partition_count
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.web.views import LIMIT_ERROR, limit_of, refused_read


async def newest(settings: Settings, limit: int) -> list[dict]:
    """The ``limit`` newest dead letters, newest first."""
    tps = [
        TopicPartition(settings.dead_letters_topic, p)
        for p in range(await partition_count(settings, settings.dead_letters_topic) or 0)
    ]
    if not tps:
        return []
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        consumer.assign(tps)
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        for tp in tps:  # the newest ``limit`` of every partition hold the newest ``limit`` of all
            consumer.seek(tp, max(starts[tp], ends[tp] - limit))
        found = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                found += [
                    shown for message in messages if (shown := listing(message.value, message.timestamp)) is not None
                ]
        return sorted(found, key=lambda letter: letter["at"], reverse=True)[:limit]
    finally:
        await consumer.stop()


async def dead_letters(web: View, request: Request) -> Response:
    """The newest ``limit`` (default 50) dead letters over the cluster, newest first: when, the
    refused message's key and place, the reason, its size, and the start of its value."""
    if refused := refused_read(web, request):
        return refused
    if (limit := limit_of(request, 50)) is None:
        return web.json({"error": LIMIT_ERROR}, status=400)
    return web.json({"dead_letters": await newest(web.app.settings, limit)})


def install(app: App) -> None:
    app.page("/dead-letters/")(dead_letters)

"""``airkafka replay``: reprocess a range of the commands topic.

Each command in the range is re-published unless its task is in progress, or successful
(without --force), or a worker refused its message (it is in the dead letters; --id sends it
again all the same). The table decides, read through a worker's routed view, not consumer
offsets. A forced replay carries the ``airkafka-replay: force`` header, which intake honours.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from yarl import URL

from airkafka_app.contract.commands import (
    CANCEL,
    FORCE,
    REPLAY_HEADER,
    InvalidCommand,
    decode_command,
    json_object,
)
from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import DEFAULT_QUEUE, Settings
from airkafka_app.worker.core.task_rules import replay_decision
from airkafka_app.worker.kafka.admin import (
    KafkaRefused,
    KafkaUnreachable,
    check_connection,
    partition_count,
)
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.terminal import WORKER_URL, Terminal, run_async


def _epoch_ms(text: str) -> int:
    """An ISO 8601 time or epoch seconds, as Kafka's epoch milliseconds."""
    try:
        return int(float(text) * 1000)
    except ValueError:
        return int(datetime.fromisoformat(text).timestamp() * 1000)


async def _range(consumer: AIOKafkaConsumer, tps: list[TopicPartition], args: dict[str, Any]):
    """(start, end) offsets per partition; end is exclusive, taken now so replays are not re-read."""
    first = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)

    async def at(when: str | None, offset: int | None, default: dict, shift: int) -> dict:
        if when is not None:
            found = await consumer.offsets_for_times({tp: _epoch_ms(when) for tp in tps})
            return {tp: found[tp].offset if found[tp] else last[tp] for tp in tps}
        if offset is not None:
            return {tp: min(max(offset + shift, first[tp]), last[tp]) for tp in tps}
        return default

    start = await at(args["since"], args["from_offset"], first, 0)
    end = await at(args["until"], args["to_offset"], last, 1)
    return start, end


@click.command()
@click.option("--queue", default=DEFAULT_QUEUE, help="The queue whose commands topic to replay.")
@click.option("--from-offset", type=int, default=None, help="First offset to replay.")
@click.option("--to-offset", type=int, default=None, help="Last offset to replay (inclusive).")
@click.option(
    "--partition",
    "partitions",
    type=int,
    multiple=True,
    help="Only this partition (repeatable).",
)
@click.option("--since", default=None, help="First message time: ISO 8601 or epoch seconds.")
@click.option("--until", default=None, help="Last message time: ISO 8601 or epoch seconds.")
@click.option("--only-failed", is_flag=True, help="Replay only failed or cancelled tasks.")
@click.option("--force", is_flag=True, help="Replay successful tasks too.")
@click.option("--dry-run", is_flag=True, help="List what would be replayed; change nothing.")
@click.option(
    "--id",
    "ids",
    multiple=True,
    help="Only this task (repeatable); its message is replayed even if a worker refused it.",
)
@WORKER_URL
@run_async
async def replay(terminal: Terminal, **args: Any) -> None:
    """Reprocess a range of the commands topic."""
    settings = terminal.settings
    args["worker_url"] = args["worker_url"] or settings.worker_url
    console = Console()
    try:
        await check_connection(settings)
    except (KafkaRefused, KafkaUnreachable) as exc:
        raise SystemExit(f"replay: {exc}") from None
    consumer = group_less_consumer(settings)
    producer = AIOKafkaProducer(**aiokafka_options(settings), enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        topic = settings.commands_topic_for(args["queue"])
        count = await partition_count(settings, topic)
        if count is None:
            raise SystemExit(f"topic {topic!r} does not exist at {settings.broker}")
        tps = [TopicPartition(topic, p) for p in (args["partitions"] or range(count))]
        args["refused"] = await _refused(settings, consumer, topic)
        start, end = await _range(consumer, tps, args)
        counts: Counter[str] = Counter()
        seen: set[str] = set()
        total = sum(max(end[tp] - start[tp], 0) for tp in tps)
        auth = settings.web_auth_headers
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=auth) as http:
            with Progress(console=console, transient=True) as progress:
                bar = progress.add_task("replaying" if not args["dry_run"] else "planning", total=total)
                for tp in tps:
                    if start[tp] >= end[tp]:
                        continue
                    consumer.assign([tp])
                    consumer.seek(tp, start[tp])
                    while await consumer.position(tp) < end[tp]:
                        batch = await consumer.getmany(tp, timeout_ms=1000)
                        for message in (m for m in batch.get(tp, []) if m.offset < end[tp]):
                            progress.advance(bar)
                            outcome, task_id = await _replay_one(message, http, producer, args, seen)
                            counts[outcome] += 1
                            if args["dry_run"] and outcome == "replayed":
                                console.print(
                                    f"would replay {printable(repr(task_id))} "
                                    f"(partition {tp.partition}, offset {message.offset})",
                                    markup=False,
                                )
        await producer.flush()
    finally:
        await producer.stop()
        await consumer.stop()
    summary = Table(title="replay" + (" (dry run: nothing sent)" if args["dry_run"] else ""))
    summary.add_column("outcome")
    summary.add_column("messages", justify="right")
    for outcome, count in sorted(counts.items()):
        summary.add_row(
            outcome if not args["dry_run"] else outcome.replace("replayed", "would replay"),
            str(count),
        )
    console.print(summary)


async def _refused(settings: Settings, consumer: AIOKafkaConsumer, topic: str) -> set[tuple[int, int]]:
    """(partition, offset) of each message of ``topic`` a worker refused, from the dead letters."""
    count = await partition_count(settings, settings.dead_letters_topic) or 0
    tps = [TopicPartition(settings.dead_letters_topic, p) for p in range(count)]
    if not tps:
        return set()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    refused = set()
    while any([await consumer.position(tp) < ends[tp] for tp in tps]):
        for messages in (await consumer.getmany(timeout_ms=1000)).values():
            for message in messages:
                letter = json_object(message.value)
                if letter is not None and letter.get("topic") == topic:
                    refused.add((letter.get("partition"), letter.get("offset")))
    return refused


async def _replay_one(
    message,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    args: dict,
    seen: set[str],
) -> tuple[str, str | None]:
    """What became of one message, and its task id when it holds a command."""
    try:
        command = decode_command(message.key, message.value)
    except InvalidCommand:
        return "skipped: invalid (was dead-lettered)", None
    if command.kind == CANCEL:
        return "skipped: cancel", command.id
    if args["ids"] and command.id not in args["ids"]:
        return "skipped: not named", command.id
    if command.id in seen:
        return "skipped: repeated in range", command.id
    seen.add(command.id)
    query = {"queue": args["queue"], "key": command.routing_key}
    url = URL(f"{args['worker_url']}/tasks/{quote(command.id, safe='')}/", encoded=True)
    async with http.get(url.with_query(query)) as response:
        if response.status not in (200, 404):
            raise RuntimeError(f"{args['worker_url']} answered {response.status} for task {command.id!r}")
        state = (await response.json())["state"] if response.status == 200 else None
    refused = (message.partition, message.offset) in args["refused"] and command.id not in args["ids"]
    outcome = replay_decision(
        state,
        only_failed=args["only_failed"],
        force=args["force"],
        refused=refused,
        kind=command.kind,
    )
    if outcome == "replayed" and not args["dry_run"]:
        headers = [(REPLAY_HEADER, FORCE)] if state == "success" else []
        await producer.send(
            message.topic,
            message.value,
            key=command.routing_key.encode(),
            headers=headers,
        )
    return outcome, command.id

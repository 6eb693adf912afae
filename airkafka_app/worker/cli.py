"""The ``airkafka`` command line (console.py): the operator's commands, which read the settings
(``AIRKAFKA_*``) and talk to Kafka and the workers' web views, and build no worker; ``airkafka
worker`` runs one. ``submit``, ``tasks``, ``task``, ``logs``, ``workers``, ``dead-letters``,
``replay`` (replay.py), and the live changes ``maintenance``, ``pause`` and ``concurrency``.
``airkafka --json ...`` prints JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp
import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from yarl import URL

from airkafka_app.contract.commands import InvalidCommand, decode_command
from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.task_logs import LogAssembly, partition_of
from airkafka_app.worker.kafka.admin import (
    KafkaRefused,
    KafkaUnreachable,
    check_connection,
    partition_count,
)
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.replay import replay
from airkafka_app.worker.terminal import QUEUE, WORKER_URL, Terminal, run_async, url_of

TERMINAL = ("success", "failed", "cancelled")
# `logs --follow`: how often it asks whether the task has ended, and how long it waits then.
FOLLOW_POLL_S = 1.0
FOLLOW_GRACE_S = 1.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print JSON rather than lines for people.")
@click.pass_context
def airkafka(ctx: click.Context, as_json: bool) -> None:
    """AirKafka's command line: an operator's commands against a cluster, and 'worker' to run one.

    Settings come from the AIRKAFKA_* variables (docs/configuration.md).
    """
    ctx.obj = Terminal(as_json)


def exit_code(change: dict[str, Any]) -> int:
    """What ``submit --wait`` exits with: 0 for success, the task's own code when it has one, else 1."""
    if change.get("state") == "success":
        return 0
    code = change.get("exit_code")
    return code if isinstance(code, int) and 0 < code < 256 else 1


def _command(args: dict[str, Any]) -> bytes:
    if args["argv"] == ("-",):
        return sys.stdin.buffer.read()
    if not args["argv"]:
        raise SystemExit("submit: give the program and its arguments, or - to read a JSON command from stdin")
    command: dict[str, Any] = {
        "id": args["task_id"] or f"cli-{uuid.uuid4().hex}",
        "kind": "shell",
        "args": {"argv": list(args["argv"])},
        "retries": args["retries"],
    }
    if args["timeout_s"] is not None:
        command["timeout_s"] = args["timeout_s"]
    if args["serial_key"] is not None:
        command["serial_key"] = args["serial_key"]
    return json.dumps(command).encode()


async def _tail(settings: Settings, topics: list[str]) -> AIOKafkaConsumer:
    """A consumer at the end of every partition of ``topics``, before anything is sent."""
    consumer = group_less_consumer(settings)
    await consumer.start()
    tps = [TopicPartition(topic, p) for topic in topics for p in range(await partition_count(settings, topic) or 0)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return consumer


async def _outcome(consumer: AIOKafkaConsumer, dead_letters_topic: str, task_id: str, sent: Any) -> dict[str, Any]:
    """The task's first terminal state change, or the dead letter of the message sent."""
    async for message in consumer:
        try:
            value = json.loads(message.value)
        except (TypeError, ValueError):
            continue
        if not isinstance(value, dict):
            continue
        if message.topic == dead_letters_topic:
            if (value.get("topic"), value.get("partition"), value.get("offset")) == (
                sent.topic,
                sent.partition,
                sent.offset,
            ):
                return {
                    "id": task_id,
                    "state": "dead_letter",
                    "detail": value.get("error"),
                }
        elif value.get("id") == task_id and value.get("state") in TERMINAL:
            return value
    raise RuntimeError("the consumer stopped")


@airkafka.command()
@click.argument("argv", nargs=-1)
@click.option("--id", "task_id", default=None, help="The task id (default: a new one).")
@QUEUE
@click.option("--serial-key", default=None, help="Run after the earlier tasks with this key.")
@click.option("--retries", type=int, default=0, help="Attempts after the first that fail.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=None,
    help="Seconds before the run is killed.",
)
@click.option("--wait", is_flag=True, help="Wait for the task's end and exit with its code.")
@run_async
async def submit(terminal: Terminal, **args: Any) -> None:
    """Send a shell command of ARGV, or with ARGV - a JSON command read from stdin."""
    settings = terminal.settings
    value = _command(args)
    try:
        command = decode_command(None, value)
        await check_connection(settings)
    except InvalidCommand as exc:
        raise SystemExit(f"submit: not sent: {exc}") from None
    except (KafkaRefused, KafkaUnreachable) as exc:
        raise SystemExit(f"submit: {exc}") from None
    topic = settings.commands_topic_for(args["queue"])
    watch = await _tail(settings, [settings.state_changes_topic, settings.dead_letters_topic]) if args["wait"] else None
    producer = AIOKafkaProducer(**aiokafka_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=command.routing_key.encode())
    finally:
        await producer.stop()
    if watch is None:
        terminal.say(
            terminal.dumps(
                {
                    "id": command.id,
                    "topic": topic,
                    "partition": sent.partition,
                    "offset": sent.offset,
                }
            )
            if terminal.json
            else f"sent {printable(command.id)} to {topic}[{sent.partition}]@{sent.offset}"
        )
        return
    try:
        change = await _outcome(watch, settings.dead_letters_topic, command.id, sent)
    finally:
        await watch.stop()
    terminal.say(
        terminal.dumps(change)
        if terminal.json
        else f"{printable(command.id)} {change['state']}"
        + (f": {printable(change['detail'], lines=True)}" if change.get("detail") else "")
    )
    raise SystemExit(exit_code(change))


async def _get(settings: Settings, url: str, path: str, query: dict[str, str]) -> dict[str, Any]:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers=settings.web_auth_headers
    ) as http:
        try:
            async with http.get(URL(url + path, encoded=True).with_query(query)) as response:
                answer = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise SystemExit(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status != 200:
        raise SystemExit(
            f"{url}{path}: HTTP {response.status}: {answer.get('error') if isinstance(answer, dict) else answer}"
        )
    return answer


@airkafka.command()
@QUEUE
@click.option("--state", default=None, help="Only tasks in this state.")
@click.option("--worker", default=None, help="Only tasks of this worker.")
@click.option("--dag-id", default=None, help="Only the Airflow tries of this DAG.")
@click.option("--search", default=None, help="Only tasks whose id or Airflow ids hold this (case aside).")
@click.option("--limit", type=int, default=50, help="How many, newest first.")
@WORKER_URL
@run_async
async def tasks(terminal: Terminal, **args: Any) -> None:
    """The newest tasks over the whole cluster, one line each, an Airflow try with its DAG, task,
    run and try; 'task ID' shows one whole."""
    query = {"queue": args["queue"], "limit": str(args["limit"])}
    query.update({name: args[name] for name in ("state", "worker", "dag_id", "search") if args[name]})
    answer = await _get(terminal.settings, url_of(terminal, args), "/cluster/tasks/", query)
    columns = ["id", "state", "attempt", "worker", "exit_code", "airflow", "detail"]
    rows = [
        {**{column: task.get(column) for column in columns}, "airflow": airflow_try(task.get("airflow"))}
        for task in answer["tasks"]
    ]
    terminal.listing(
        rows,
        columns,
        empty=f"no {args['state'] or ''} tasks in queue {args['queue']}".replace("  ", " "),
    )
    for url, error in answer.get("errors", {}).items():
        terminal.say(f"not answered by {printable(url)}: {printable(error)}", err=True)


def airflow_try(airflow: Any) -> str | None:
    """An Airflow try on one line: ``dag.task[map] run try N``; None for other tasks."""
    if not isinstance(airflow, dict):
        return None
    mapped = f"[{airflow['map_index']}]" if airflow.get("map_index") not in (None, -1) else ""
    return f"{airflow.get('dag_id')}.{airflow.get('task_id')}{mapped} {airflow.get('run_id')} try {airflow.get('try_number')}"


@airkafka.command()
@click.argument("task_id")
@QUEUE
@click.option("--key", default=None, help="Its serial key, if it has one.")
@WORKER_URL
@run_async
async def task(terminal: Terminal, task_id: str, **args: Any) -> None:
    """A task's record, from the worker that owns it."""
    query = {"queue": args["queue"], **({"key": args["key"]} if args["key"] else {})}
    record = await _get(
        terminal.settings,
        url_of(terminal, args),
        f"/tasks/{quote(task_id, safe='')}/",
        query,
    )
    terminal.say(json.dumps(record, indent=None if terminal.json else 2))


async def _ended(settings: Settings, url: str, task_id: str, queue: str) -> bool:
    """Whether the task's record is terminal; False while it cannot be read (not read yet)."""
    try:
        record = await _get(settings, url, f"/tasks/{quote(task_id, safe='')}/", {"queue": queue})
    except SystemExit:
        return False
    return record.get("state") in TERMINAL


@airkafka.command()
@click.argument("task_id")
@click.option("--follow", is_flag=True, help="Go on printing while the task runs, until it ends.")
@click.option(
    "--since",
    "since_s",
    type=float,
    default=86400.0,
    help="How far back its output may start, in seconds.",
)
@QUEUE
@WORKER_URL
@run_async
async def logs(terminal: Terminal, task_id: str, **args: Any) -> None:
    """A task's output, from the logs topic (contract/task_logs.py); an Airflow try's log is under
    its log path."""
    settings = terminal.settings
    topic = settings.logs_topic
    if not (partitions := await partition_count(settings, topic)):
        raise SystemExit(f"logs: no topic {topic}")
    tp = TopicPartition(topic, partition_of(task_id, partitions))
    consumer = group_less_consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        start = (await consumer.offsets_for_times({tp: int((time.time() - args["since_s"]) * 1000)}))[tp]
        if start is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, start.offset)
        log, printed, ended = LogAssembly(task_id), 0, not args["follow"]
        while True:
            if not ended and (log.complete or await _ended(settings, url_of(terminal, args), task_id, args["queue"])):
                ended = True
                await asyncio.sleep(FOLLOW_GRACE_S)  # its last records may still be on their way
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    log.add(message.key, message.value)
            lines = log.lines()
            for line in lines[printed:]:
                terminal.say(printable(line))
            printed = len(lines)
            if ended:
                return
            await asyncio.sleep(FOLLOW_POLL_S)
    finally:
        await consumer.stop()


async def _order(terminal: Terminal, url: str, order: dict[str, Any]) -> None:
    """Have the worker at ``url`` send the order (``POST /control/``, with AIRKAFKA_WEB_TOKEN)."""
    headers = terminal.settings.web_auth_headers
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=headers) as http:
        try:
            async with http.post(f"{url}/control/", json=order) as response:
                answer = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise SystemExit(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status != 202:
        raise SystemExit(f"{url}/control/: HTTP {response.status}: {printable(answer.get('error', answer))}")
    terminal.say(terminal.dumps(answer["sent"]) if terminal.json else f"sent {printable(json.dumps(answer['sent']))}")


@airkafka.command()
@click.argument("worker")
@click.option(
    "--comment",
    default="maintenance",
    help="Why, as the dashboard and the heartbeats show it.",
)
@click.option("--off", is_flag=True, help="Take the worker out of maintenance.")
@WORKER_URL
@run_async
async def maintenance(terminal: Terminal, worker: str, **args: Any) -> None:
    """Put WORKER in maintenance: it takes no new work and lets its runs finish."""
    await _order(
        terminal,
        url_of(terminal, args),
        {"to": worker, "maintenance": None if args["off"] else args["comment"]},
    )


@airkafka.command()
@click.argument("queue")
@click.option("--resume", is_flag=True, help="Take the queue's commands again.")
@WORKER_URL
@run_async
async def pause(terminal: Terminal, queue: str, **args: Any) -> None:
    """Stop every worker taking QUEUE's new commands; they wait in Kafka."""
    await _order(
        terminal,
        url_of(terminal, args),
        {"to": "*", "resume" if args["resume"] else "pause": queue},
    )


@airkafka.command()
@click.argument("worker")
@click.argument("count", type=int)
@WORKER_URL
@run_async
async def concurrency(terminal: Terminal, worker: str, count: int, **args: Any) -> None:
    """Have WORKER run up to COUNT tasks at once from now on."""
    await _order(terminal, url_of(terminal, args), {"to": worker, "concurrency": count})


@airkafka.command()
@WORKER_URL
@run_async
async def workers(terminal: Terminal, **args: Any) -> None:
    """The workers, as their heartbeats tell: online, in maintenance, lost or stopped."""
    answer = await _get(terminal.settings, url_of(terminal, args), "/cluster/", {})
    columns = [
        "worker",
        "status",
        "last_seen_s_ago",
        "running",
        "concurrency",
        "maintenance",
        "url",
    ]
    rows = [{column: row.get(column) for column in columns} for row in answer["workers"]]
    terminal.listing(rows, columns, empty="no worker heard from")


@airkafka.command(name="dead-letters")
@click.option("--limit", type=int, default=20, show_default=True, help="How many, newest first.")
@WORKER_URL
@run_async
async def dead_letters(terminal: Terminal, **args: Any) -> None:
    """The newest dead letters of the cluster, with their reasons."""
    answer = await _get(
        terminal.settings,
        url_of(terminal, args),
        "/dead-letters/",
        {"limit": str(args["limit"])},
    )
    letters = answer["dead_letters"]
    if not terminal.json:
        letters = [
            {
                **letter,
                "at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter["at"])),
            }
            for letter in letters
        ]
    terminal.listing(letters, ["at", "source", "key", "size", "reason"], empty="no dead letters")


airkafka.add_command(replay)

# What Faust's command line parses itself, options and all.
FAUST_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@airkafka.command(context_settings=FAUST_ARGS, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """Run a worker (faust -A airkafka_app worker); 'worker --help' lists its options."""
    _faust("worker", *args)


@airkafka.command(context_settings=FAUST_ARGS, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def faust(args: tuple[str, ...]) -> None:
    """Faust's own command line for this app ('faust --help')."""
    _faust(*args)


def _faust(*argv: str) -> None:
    from airkafka_app import app  # the worker, built from the settings

    sys.argv = ["airkafka", *argv]
    app.main()

"""The commands an operator runs against a cluster, on Faust's command line (console.py):
``submit``, ``tasks``, ``task`` and ``logs``, and the live changes ``maintenance``, ``pause`` and
``concurrency``. Faust's global options come first: ``airkafka --json tasks``
prints JSON.
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.cli import AppCommand, argument, option
from yarl import URL

from airkafka_app.contract.commands import InvalidCommand, decode_command
from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import DEFAULT_QUEUE, Settings
from airkafka_app.contract.task_logs import LogAssembly, partition_of
from airkafka_app.worker.application import App
from airkafka_app.worker.kafka.admin import KafkaRefused, KafkaUnreachable, check_connection, partition_count
from airkafka_app.worker.kafka.clients import group_less_consumer

TERMINAL = ("success", "failed", "cancelled")
# `logs --follow`: how often it asks whether the task has ended, and how long it waits then.
FOLLOW_POLL_S = 1.0
FOLLOW_GRACE_S = 1.0


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
                return {"id": task_id, "state": "dead_letter", "detail": value.get("error")}
        elif value.get("id") == task_id and value.get("state") in TERMINAL:
            return value
    raise RuntimeError("the consumer stopped")


async def submit(self: AppCommand, **args: Any) -> None:
    """Send a shell command of ARGV, or with ARGV ``-`` a JSON command read from stdin."""
    settings = self.app.settings
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
        self.say(
            self.dumps({"id": command.id, "topic": topic, "partition": sent.partition, "offset": sent.offset})
            if self.json
            else f"sent {printable(command.id)} to {topic}[{sent.partition}]@{sent.offset}"
        )
        return
    try:
        change = await _outcome(watch, settings.dead_letters_topic, command.id, sent)
    finally:
        await watch.stop()
    self.say(
        self.dumps(change)
        if self.json
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


async def tasks(self: AppCommand, **args: Any) -> None:
    """The newest tasks over the whole cluster."""
    query = {"queue": args["queue"], "limit": str(args["limit"])}
    query.update({name: args[name] for name in ("state", "worker") if args[name]})
    answer = await _get(self.app.settings, args["worker_url"], "/cluster/tasks/", query)
    rows = [
        [printable(t.get("id")), t.get("state"), t.get("attempt"), printable(t.get("worker")), t.get("exit_code")]
        + [printable(t.get("detail") or "", lines=True)]
        for t in answer["tasks"]
    ]
    self.say(self.tabulate(rows, headers=["id", "state", "attempt", "worker", "exit_code", "detail"], title="tasks"))
    for url, error in answer.get("errors", {}).items():
        self.say(f"not answered by {printable(url)}: {printable(error)}", err=True)


async def task(self: AppCommand, task_id: str, **args: Any) -> None:
    """A task's record, from the worker that owns it."""
    query = {"queue": args["queue"], **({"key": args["key"]} if args["key"] else {})}
    record = await _get(self.app.settings, args["worker_url"], f"/tasks/{quote(task_id, safe='')}/", query)
    self.say(json.dumps(record, indent=None if self.json else 2))


async def _ended(settings: Settings, url: str, task_id: str, queue: str) -> bool:
    """Whether the task's record is terminal; False while it cannot be read (not read yet)."""
    try:
        record = await _get(settings, url, f"/tasks/{quote(task_id, safe='')}/", {"queue": queue})
    except SystemExit:
        return False
    return record.get("state") in TERMINAL


async def logs(self: AppCommand, task_id: str, **args: Any) -> None:
    """A task's output, from the logs topic (contract/task_logs.py); an Airflow try's log is under
    its log path."""
    settings = self.app.settings
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
            if not ended and (log.complete or await _ended(settings, args["worker_url"], task_id, args["queue"])):
                ended = True
                await asyncio.sleep(FOLLOW_GRACE_S)  # its last records may still be on their way
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    log.add(message.key, message.value)
            lines = log.lines()
            for line in lines[printed:]:
                self.say(printable(line))
            printed = len(lines)
            if ended:
                return
            await asyncio.sleep(FOLLOW_POLL_S)
    finally:
        await consumer.stop()


async def _order(self: AppCommand, url: str, order: dict[str, Any]) -> None:
    """Have the worker at ``url`` send the order (``POST /control/``, with AIRKAFKA_WEB_TOKEN)."""
    headers = self.app.settings.web_auth_headers
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=headers) as http:
        try:
            async with http.post(f"{url}/control/", json=order) as response:
                answer = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise SystemExit(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status != 202:
        raise SystemExit(f"{url}/control/: HTTP {response.status}: {printable(answer.get('error', answer))}")
    self.say(self.dumps(answer["sent"]) if self.json else f"sent {printable(json.dumps(answer['sent']))}")


async def maintenance(self: AppCommand, worker: str, **args: Any) -> None:
    """Put WORKER in maintenance: it takes no new work and lets its runs finish."""
    await _order(self, args["worker_url"], {"to": worker, "maintenance": None if args["off"] else args["comment"]})


async def pause(self: AppCommand, queue: str, **args: Any) -> None:
    """Stop every worker taking QUEUE's new commands; they wait in Kafka."""
    await _order(self, args["worker_url"], {"to": "*", "resume" if args["resume"] else "pause": queue})


async def concurrency(self: AppCommand, worker: str, count: int, **args: Any) -> None:
    """Have WORKER run up to COUNT tasks at once from now on."""
    await _order(self, args["worker_url"], {"to": worker, "concurrency": count})


def install(app: App) -> None:
    """The operator's commands, on the app's command line."""
    settings = app.settings
    worker_url_option = option("--worker-url", default=settings.worker_url, help="Any worker's web views.")
    queue_option = option("--queue", default=DEFAULT_QUEUE, help="The task's queue.")
    app.command(
        argument("argv", nargs=-1),
        option("--id", "task_id", default=None, help="The task id (default: a new one)."),
        queue_option,
        option("--serial-key", default=None, help="Run after the earlier tasks with this key."),
        option("--retries", type=int, default=0, help="Attempts after the first that fail."),
        option("--timeout", "timeout_s", type=float, default=None, help="Seconds before the run is killed."),
        option("--wait", is_flag=True, help="Wait for the task's end and exit with its code."),
    )(submit)
    app.command(
        queue_option,
        option("--state", default=None, help="Only tasks in this state."),
        option("--worker", default=None, help="Only tasks of this worker."),
        option("--limit", type=int, default=50, help="How many, newest first."),
        worker_url_option,
    )(tasks)
    app.command(
        argument("task_id"),
        queue_option,
        option("--key", default=None, help="Its serial key, if it has one."),
        worker_url_option,
    )(task)
    app.command(
        argument("task_id"),
        option("--follow", is_flag=True, help="Go on printing while the task runs, until it ends."),
        option(
            "--since", "since_s", type=float, default=86400.0, help="How far back its output may start, in seconds."
        ),
        queue_option,
        worker_url_option,
    )(logs)
    app.command(
        argument("worker"),
        option("--comment", default="maintenance", help="Why, as the dashboard and the heartbeats show it."),
        option("--off", is_flag=True, help="Take the worker out of maintenance."),
        worker_url_option,
    )(maintenance)
    app.command(
        argument("queue"), option("--resume", is_flag=True, help="Take the queue's commands again."), worker_url_option
    )(pause)
    app.command(argument("worker"), argument("count", type=int), worker_url_option)(concurrency)

"""``airflow airkafka ...``: the provider's CLI, in Airflow's interpreter, without Faust.

``airflow airkafka workers`` lists the workers the heartbeats topic has heard from in the last
hour, as each worker's sweep judges them: online, lost (silent past AIRKAFKA_WORKER_LOST_AFTER_S)
or stopped (its last heartbeat said so). ``airflow airkafka tasks`` and ``task ID`` read a
worker's cluster views; ``maintenance``, ``pause`` and ``concurrency`` have a worker send an
operator's order to every worker (docs/operations.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from airkafka_app.contract.printable import printable

TIMEOUT_S = 10.0


def get_cli_commands() -> list[Any]:
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    from airkafka_app.contract.airflow_tasks import IDENTITY
    from airkafka_app.contract.settings import DEFAULT_QUEUE

    as_json = Arg(("--json",), help="One JSON object per line", action="store_true")
    worker = Arg(("worker",), help="The worker's name, as the workers command lists it")
    queue = Arg(("--queue",), default=DEFAULT_QUEUE, help="The queue (default: %(default)s)")
    worker_url = Arg(
        ("--worker-url",),
        default=None,
        help="Any worker's web views (default: from AIRKAFKA_WEB_HOST "
        "and AIRKAFKA_WEB_PORT); AIRKAFKA_WEB_TOKEN is sent when set",
    )
    picks = [
        Arg((f"--{name.replace('_', '-')}",), dest=name, type=kind, help=f"Only tasks of this {name}")
        for name, kind in IDENTITY.items()
    ]
    return [
        GroupCommand(
            name="airkafka",
            help="AirKafka's workers and tasks",
            subcommands=[
                ActionCommand(
                    name="workers",
                    help="List the workers and whether they are online, lost or stopped",
                    func=lazy_load_command("airkafka_app.airflow.cli.workers"),
                    args=(as_json,),
                ),
                ActionCommand(
                    name="tasks",
                    help="List the newest tasks over the cluster, Airflow's picked by dag, task or run",
                    func=lazy_load_command("airkafka_app.airflow.cli.tasks"),
                    args=(*picks, Arg(("--state",), help="Only tasks in this state"), queue, worker_url, as_json),
                ),
                ActionCommand(
                    name="task",
                    help="Show a task's record, from the worker that owns it",
                    func=lazy_load_command("airkafka_app.airflow.cli.task"),
                    args=(Arg(("id",), help="The task id, as the tasks command lists it"), queue, worker_url),
                ),
                ActionCommand(
                    name="maintenance",
                    help="Put a worker in maintenance (it starts no new task), or take it out with --off",
                    func=lazy_load_command("airkafka_app.airflow.cli.maintenance"),
                    args=(
                        worker,
                        Arg(("--comment",), default="maintenance", help="Why, as the workers list shows it"),
                        Arg(("--off",), action="store_true", help="Take the worker out of maintenance"),
                        worker_url,
                    ),
                ),
                ActionCommand(
                    name="pause",
                    help="Stop every worker starting a queue's tasks, or go on with --resume",
                    func=lazy_load_command("airkafka_app.airflow.cli.pause"),
                    args=(
                        Arg(("queue",), help="The queue"),
                        Arg(("--resume",), action="store_true", help="Start the queue's tasks again"),
                        worker_url,
                    ),
                ),
                ActionCommand(
                    name="concurrency",
                    help="Have a worker run up to N tasks at once from now on",
                    func=lazy_load_command("airkafka_app.airflow.cli.concurrency"),
                    args=(worker, Arg(("count",), type=int, help="N"), worker_url),
                ),
            ],
        )
    ]


def read_view(
    worker_url: str | None, path: str, query: dict[str, str], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A worker view's JSON answer, to a POST of ``body`` when given; SystemExit with the view's error."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from airkafka_app.contract.settings import Settings

    settings = Settings()

    base = worker_url or settings.worker_url
    request = urllib.request.Request(
        f"{base}{path}?{urllib.parse.urlencode(query)}",
        data=None if body is None else json.dumps(body).encode(),
        headers=settings.web_auth_headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"{base}{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}") from None
    except OSError as exc:
        raise SystemExit(f"{base}: {exc}") from None


def tasks(args: argparse.Namespace) -> None:
    from airkafka_app.contract.airflow_tasks import IDENTITY

    query = {
        "queue": args.queue,
        **{name: str(getattr(args, name)) for name in ("state", *IDENTITY) if getattr(args, name) is not None},
    }
    answer = read_view(args.worker_url, "/cluster/tasks/", query)
    if not answer["tasks"] and not args.json:
        print(f"no {args.state or ''} tasks in queue {args.queue}".replace("  ", " "))
    for task in answer["tasks"]:
        airflow = task.get("airflow") or {}
        if args.json:
            print(json.dumps(task))
        else:
            names = printable(" ".join(str(airflow[name]) for name in IDENTITY if name in airflow))
            print(f"{printable(task['id']):<44} {task['state']:<12} {printable(task.get('worker') or ''):<20} {names}")
    for url, error in answer.get("errors", {}).items():
        print(f"not answered by {printable(url)}: {printable(error)}", file=sys.stderr)


def task(args: argparse.Namespace) -> None:
    from urllib.parse import quote

    print(json.dumps(read_view(args.worker_url, f"/tasks/{quote(args.id, safe='')}/", {"queue": args.queue}), indent=2))


def heard_from() -> dict[str, Any]:
    """Worker -> its last heartbeat (a ``Beat``)."""
    from confluent_kafka import Consumer, TopicPartition

    from airkafka_app.contract.heartbeats import SHOWN_S, parse_beat
    from airkafka_app.contract.kafka_connection import confluent_options
    from airkafka_app.contract.settings import Settings

    settings = Settings()

    consumer = Consumer({**confluent_options(settings), "group.id": "airkafka-cli", "enable.auto.commit": False})
    try:
        topic = consumer.list_topics(settings.heartbeats_topic, timeout=TIMEOUT_S).topics[settings.heartbeats_topic]
        since = int((time.time() - SHOWN_S) * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(settings.heartbeats_topic, p, since) for p in topic.partitions], timeout=TIMEOUT_S
        )
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(settings.heartbeats_topic, p), timeout=TIMEOUT_S)[1]
            for p in topic.partitions
        }
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        last: dict[str, Any] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is None and (beat := parse_beat(message.value())) is not None:
                    if beat.worker not in last or beat.at >= last[beat.worker].at:
                        last[beat.worker] = beat
                if message.error() is None and (message.offset() or 0) + 1 >= ends[message.partition()]:
                    todo.discard(message.partition())
        return last
    finally:
        consumer.close()


def workers(args: argparse.Namespace) -> None:
    from airkafka_app.contract.heartbeats import SHOWN_S, roster
    from airkafka_app.contract.settings import Settings

    settings = Settings()

    rows = [
        {"worker": worker, "status": status, "last_seen_s_ago": round(silent, 1)}
        for worker, (status, silent) in roster(heard_from(), time.time(), settings.worker_lost_after_s).items()
    ]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    for row in rows:
        print(f"{printable(row['worker']):<40} {row['status']:<8} last heartbeat {row['last_seen_s_ago']:g}s ago")
    if not rows:
        print(f"no heartbeat on {settings.heartbeats_topic} in the last {SHOWN_S:g}s")


def _order(args: argparse.Namespace, order: dict[str, Any]) -> None:
    """Have a worker send the order to every worker (``POST /control/``, contract/orders.py)."""
    print(f"sent {printable(json.dumps(read_view(args.worker_url, '/control/', {}, order)['sent']))}")


def maintenance(args: argparse.Namespace) -> None:
    _order(args, {"to": args.worker, "maintenance": None if args.off else args.comment})


def pause(args: argparse.Namespace) -> None:
    _order(args, {"to": "*", "resume" if args.resume else "pause": args.queue})


def concurrency(args: argparse.Namespace) -> None:
    _order(args, {"to": args.worker, "concurrency": args.count})

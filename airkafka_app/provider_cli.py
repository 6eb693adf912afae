"""``airflow airkafka ...``: the provider's CLI, in Airflow's interpreter, without Faust.

``airflow airkafka workers`` lists the workers the heartbeats topic has heard from in the last
hour, as each worker's sweep judges them: online, lost (silent past AIRKAFKA_WORKER_LOST_AFTER_S)
or stopped (its last heartbeat said so).
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

SINCE_S = 3600.0
TIMEOUT_S = 10.0


def get_cli_commands() -> list[Any]:
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    as_json = Arg(("--json",), help="One JSON object per worker", action="store_true")
    return [GroupCommand(name="airkafka", help="AirKafka's workers", subcommands=[
        ActionCommand(name="workers", help="List the workers and whether they are online, lost or stopped",
                      func=lazy_load_command("airkafka_app.provider_cli.workers"), args=(as_json,)),
    ])]


def heard_from(since_s: float = SINCE_S) -> dict[str, tuple[float, bool]]:
    """Worker -> (time of its last heartbeat, whether that one said it stopped)."""
    from confluent_kafka import Consumer, TopicPartition

    from airkafka_app.heartbeats import parse_beat
    from airkafka_app.kafka_connection import confluent_options
    from airkafka_app.settings import settings

    consumer = Consumer({**confluent_options(), "group.id": "airkafka-cli", "enable.auto.commit": False})
    try:
        topic = consumer.list_topics(settings.heartbeats_topic, timeout=TIMEOUT_S).topics[settings.heartbeats_topic]
        since = int((time.time() - since_s) * 1000)
        starts = consumer.offsets_for_times([TopicPartition(settings.heartbeats_topic, p, since)
                                             for p in topic.partitions], timeout=TIMEOUT_S)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(settings.heartbeats_topic, p), timeout=TIMEOUT_S)[1]
                for p in topic.partitions}
        todo = {tp.partition for tp in starts if 0 <= tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in starts if tp.partition in todo])
        last: dict[str, tuple[float, bool]] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=1.0):
                if message.error() is None and (beat := parse_beat(message.value())) is not None:
                    worker, at, stopped = beat
                    if at >= last.get(worker, (0.0, False))[0]:
                        last[worker] = (at, stopped)
                if message.error() is None and message.offset() + 1 >= ends[message.partition()]:
                    todo.discard(message.partition())
        return last
    finally:
        consumer.close()


def workers(args: argparse.Namespace) -> None:
    from airkafka_app.settings import settings

    now = time.time()
    rows = [{"worker": worker, "status": "stopped" if stopped else
             "online" if now - at <= settings.worker_lost_after_s else "lost", "last_seen_s_ago": round(now - at, 1)}
            for worker, (at, stopped) in sorted(heard_from().items())]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    for row in rows:
        print(f"{row['worker']:<40} {row['status']:<8} last heartbeat {row['last_seen_s_ago']:g}s ago")
    if not rows:
        print(f"no heartbeat on {settings.heartbeats_topic} in the last {SINCE_S:g}s")

#!/usr/bin/env python3
"""The least a Faust app costs for the bare loop's work: what AirKafka's design starts from.

The bare loop's work (``bench/bare_loop.py``: `true` for each command, its end written to the
state-change topic) done by a stock Faust app: one agent on the commands topic, 32 actors,
Faust's producer. With ``--table``, each task's record is also written to a changelog-backed
RocksDB table three times (queued, running, its end), as a worker writes it. No validation,
no container, no spawn server. Between this and the bare loop is what Faust itself costs.

    python bench/faust_floor.py BOOTSTRAP COMMANDS STATE_CHANGES PARTITIONS CONCURRENCY [--table]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile

import faust
from bare_loop import create_topics


def build(bootstrap: str, commands: str, state_changes: str, partitions: int, concurrency: int, table: bool):
    app = faust.App(
        f"{commands}-floor",
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=tempfile.mkdtemp(prefix="faust-floor-"),
        topic_partitions=partitions,
        web_enabled=False,
        producer_acks=-1,
        producer_linger=0,
    )
    source = app.topic(commands, value_serializer="raw", key_serializer="raw", partitions=partitions)
    sink = app.topic(state_changes, value_serializer="raw", key_serializer="raw", partitions=partitions)
    records = app.Table("records", partitions=partitions, key_type=str, value_type=bytes) if table else None

    @app.agent(source, concurrency=concurrency)
    async def execute(stream):
        async for event in stream.events():
            task_id = json.loads(event.value)["id"]
            if records is not None:
                records[task_id] = json.dumps({"id": task_id, "state": "queued"}).encode()
                records[task_id] = json.dumps({"id": task_id, "state": "running"}).encode()
            child = await asyncio.create_subprocess_exec("true")
            code = await child.wait()
            end = json.dumps({"id": task_id, "state": "success" if code == 0 else "failed", "exit_code": code})
            if records is not None:
                records[task_id] = end.encode()
            await sink.send(key=task_id.encode(), value=end.encode())

    @app.task
    async def ready() -> None:
        while not app.consumer.assignment() or app.rebalancing:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # its recovery, of empty changelogs
        # Faust's worker sends what is printed to its log.
        sys.__stdout__.write("ready\n")
        sys.__stdout__.flush()

    return app


if __name__ == "__main__":
    bootstrap, commands, state_changes, partitions, concurrency = sys.argv[1:6]
    asyncio.run(create_topics(bootstrap, [commands, state_changes], int(partitions)))
    floor = build(bootstrap, commands, state_changes, int(partitions), int(concurrency), "--table" in sys.argv)
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    floor.main()

#!/usr/bin/env python3
"""The least a Kafka task runner in Python costs on this machine: the bench's third column.

One consumer in a consumer group that commits its offsets, `true` spawned for each command under
a semaphore, and one idempotent acks=all producer that writes the task's end to the state-change
topic. No table, no changelog, no validation: what AirKafka adds is measured against this.

    python bench/bare_loop.py BOOTSTRAP COMMANDS STATE_CHANGES PARTITIONS CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def run(bootstrap: str, commands: str, state_changes: str, partitions: int, concurrency: int) -> None:
    await create_topics(bootstrap, [commands, state_changes], partitions)
    consumer = AIOKafkaConsumer(
        commands,
        bootstrap_servers=bootstrap,
        group_id=f"{commands}.bare",
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    await consumer.start()
    slots = asyncio.Semaphore(concurrency)

    async def execute(task_id: str) -> None:
        async with slots:
            child = await asyncio.create_subprocess_exec("true")
            code = await child.wait()
            end = {"id": task_id, "state": "success" if code == 0 else "failed", "exit_code": code}
            await producer.send(state_changes, json.dumps(end).encode(), key=task_id.encode())

    while not consumer.assignment():
        await asyncio.sleep(0.1)
    await consumer.seek_to_end()
    print("ready", flush=True)
    running: set[asyncio.Task] = set()
    async for message in consumer:
        task = asyncio.create_task(execute(json.loads(message.value)["id"]))
        running.add(task)
        task.add_done_callback(running.discard)


if __name__ == "__main__":
    bootstrap, commands, state_changes, partitions, concurrency = sys.argv[1:6]
    asyncio.run(run(bootstrap, commands, state_changes, int(partitions), int(concurrency)))

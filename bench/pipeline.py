#!/usr/bin/env python3
"""End-to-end figures of the pipeline on a real local broker, with `true` shell tasks.

    make bench            # or: .venv/bin/python bench/pipeline.py --tasks 5000 --sequential 500

Throughput: commands/s from the first produce to the last terminal state change read
by a plain consumer. Latency: one task at a time, submit -> its terminal state change.
Each figure is the median of --repeat runs. A benchmark, not a test: it asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.local_deployment import Deployment, shell  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

TERMINAL = {"success", "failed", "cancelled"}


class Bench:
    """A producer of commands and a reader of state changes that notes when each task ended."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.ended: dict[str, float] = {}
        self.pending: set[str] = set()
        self.all_ended = asyncio.Event()

    async def __aenter__(self) -> Bench:
        d = self.deployment
        self.producer = AIOKafkaProducer(bootstrap_servers=d.bootstrap, linger_ms=0)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=d.bootstrap, group_id=None)
        await self.producer.start()
        await self.consumer.start()
        partitions = [TopicPartition(d.state_changes, p) for p in range(d.partitions)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self.reader.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def _read(self) -> None:
        async for message in self.consumer:
            change = json.loads(message.value)
            if change["state"] in TERMINAL and change["id"] in self.pending:
                self.ended[change["id"]] = time.perf_counter()
                self.pending.discard(change["id"])
                if not self.pending:
                    self.all_ended.set()

    async def run(self, ids: list[str]) -> float:
        """Send ``ids`` at once and wait until each has ended; returns the start time."""
        self.pending.update(ids)
        self.all_ended.clear()
        started = time.perf_counter()
        for task_id in ids:
            await self.producer.send(
                self.deployment.commands, json.dumps(shell(task_id, "true")).encode(), key=task_id.encode()
            )
        await self.producer.flush()
        await self.all_ended.wait()
        return started

    async def throughput(self, count: int) -> float:
        ids = [f"tp-{uuid.uuid4().hex}" for _ in range(count)]
        started = await self.run(ids)
        return count / (max(self.ended[i] for i in ids) - started)

    async def latencies(self, count: int) -> list[float]:
        results = []
        for _ in range(count):
            task_id = f"lat-{uuid.uuid4().hex}"
            started = await self.run([task_id])
            results.append(self.ended[task_id] - started)
        return results


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(deployment: Deployment, args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    throughputs, p50s, p99s = [], [], []
    async with Bench(deployment) as bench:
        # Warm-up: connections, metadata, and the broker's JIT, which otherwise costs a fresh
        # JVM more CPU per task than the worker itself for the first seconds of load.
        await bench.throughput(min(args.tasks, 2000))
        await bench.latencies(20)
        for _ in range(args.repeat):
            throughputs.append(await bench.throughput(args.tasks))
            lat = await bench.latencies(args.sequential)
            p50s.append(percentile(lat, 50) * 1000)
            p99s.append(percentile(lat, 99) * 1000)
    return throughputs, p50s, p99s


def run_airkafka(tasks: int, sequential: int, repeat: int, partitions: int, concurrency: int) -> dict:
    """A fresh broker and one worker: throughputs, p50s and p99s (ms) of each run, and peak RSS (MB)."""
    workdir = ROOT / ".cache" / "bench" / uuid.uuid4().hex[:8]
    broker = start_broker(workdir / "kafka")
    deployment = Deployment(broker.bootstrap, workdir, partitions=partitions)
    worker = deployment.worker("bench", AIRKAFKA_SHELL_ALLOW="true", AIRKAFKA_CONCURRENCY=str(concurrency))
    args = argparse.Namespace(tasks=tasks, sequential=sequential, repeat=repeat)
    try:
        worker.start().wait_ready()
        throughputs, p50s, p99s = asyncio.run(measure(deployment, args))
        rss = peak_rss_mb(worker.process.pid)
    finally:
        worker.stop()
        broker.stop()
    return {"throughputs": throughputs, "p50s": p50s, "p99s": p99s, "rss_mb": rss}


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__)
    figures = run_airkafka(args.tasks, args.sequential, args.repeat, args.partitions, args.concurrency)
    throughputs, p50s, p99s = figures["throughputs"], figures["p50s"], figures["p99s"]
    print(f"AirKafka pipeline, `true` shell tasks, 1 worker, concurrency {args.concurrency}, {args.partitions} partitions")
    print(f"  throughput  {statistics.median(throughputs):8.0f} tasks/s   ({args.tasks} sent at once; runs: "
          f"{', '.join(f'{t:.0f}' for t in throughputs)})")
    print(f"  latency p50 {statistics.median(p50s):8.1f} ms        ({args.sequential} sequential; runs: "
          f"{', '.join(f'{p:.1f}' for p in p50s)})")
    print(f"  latency p99 {statistics.median(p99s):8.1f} ms        (runs: {', '.join(f'{p:.1f}' for p in p99s)})")
    print(f"  worker peak RSS {figures['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

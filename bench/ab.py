#!/usr/bin/env python3
"""Two versions of the worker side by side on one warm broker, for judging a change here.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/ab.py /tmp/before .    # each: a tree holding airkafka_app/
    .venv/bin/python bench/ab.py . . --env-b F_LOOP=uvloop    # one tree, a setting changed
    .venv/bin/python bench/ab.py bare .    # bench/bare_loop.py against this tree

Runs of this machine drift by 15 % within minutes, more than most changes are worth. So both
workers run at once, each with its own topics and client: the throughput bursts alternate, their
order swapping each round, and the latency probes interleave one task at a time. It prints each
round, then per version the median throughput, latency percentiles over all its probes, and CPU
ms per task (the worker with its spawn server, its tasks, the broker, the client). The workers
import ``airkafka_app`` from their tree through PYTHONPATH. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import CPU_PARTS, ROOT, BareLoop, Bench, cpu_line, cpu_now, percentile  # noqa: E402

from scripts.local_deployment import Deployment  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

BARE = "bare"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "trees", nargs=2, type=Path, help="two trees, each holding airkafka_app/, or `bare` for the bare loop"
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per throughput burst")
    parser.add_argument("--probes", type=int, default=600, help="sequential tasks per version, in all")
    parser.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE", help="for the second worker")
    args = parser.parse_args()
    trees = [str(tree if str(tree) == BARE else tree.resolve()) for tree in args.trees]
    env_b = dict(setting.split("=", 1) for setting in args.env_b)
    names = [f"A {trees[0]}", f"B {trees[1]}" + "".join(f" {k}={v}" for k, v in env_b.items())]
    workdir = ROOT / ".cache" / "bench" / f"ab-{uuid.uuid4().hex[:8]}"
    broker = start_broker(workdir / "kafka")
    sides: dict[str, Bench] = {}
    try:
        for n, name in enumerate(names):
            deployment = Deployment(broker.bootstrap, workdir / str(n), partitions=8)
            if trees[n] == BARE:
                sides[name] = Bench(deployment, BareLoop(deployment, 32).start())
                continue
            env = {"AIRKAFKA_SHELL_ALLOW": "true", "AIRKAFKA_CONCURRENCY": "32", "PYTHONPATH": trees[n]}
            worker = deployment.worker(f"worker{n}", **env, **(env_b if n else {}))
            worker.start().wait_ready()
            sides[name] = Bench(deployment, worker)
        for bench in sides.values():  # the broker's JIT, and each worker's connections
            bench.throughput(args.tasks)
            bench.throughput(args.tasks)
        throughputs = {name: [] for name in names}
        cpu = {name: [] for name in names}
        latencies = {name: [] for name in names}
        for round_ in range(args.rounds):
            order = names if round_ % 2 == 0 else names[::-1]
            for name in order:
                bench = sides[name]
                before = cpu_now([bench.workers[0].process.pid], broker.process.pid)
                throughputs[name].append(bench.throughput(args.tasks))
                after = cpu_now([bench.workers[0].process.pid], broker.process.pid)
                cpu[name].append([1000 * (b - a) / args.tasks for a, b in zip(before, after, strict=True)])
            for _ in range(args.probes // args.rounds):
                for name in order:
                    latencies[name].extend(sides[name].latencies(1))
            print(
                f"round {round_ + 1}: " + ", ".join(f"{name} {throughputs[name][-1]:.0f}/s" for name in names),
                flush=True,
            )
    finally:
        for bench in sides.values():
            bench.close()
            bench.workers[0].stop()
        broker.stop()
    for name in names:
        cpu_ms = {part: statistics.median(run[i] for run in cpu[name]) for i, part in enumerate(CPU_PARTS)}
        lat = latencies[name]
        print(
            f"{name}\n  throughput {statistics.median(throughputs[name]):.0f} tasks/s "
            f"({', '.join(f'{t:.0f}' for t in throughputs[name])})\n"
            f"  latency p50 {percentile(lat, 50) * 1000:.2f} ms, p90 {percentile(lat, 90) * 1000:.2f}, "
            f"p99 {percentile(lat, 99) * 1000:.2f} ({len(lat)} tasks)\n"
            f"  CPU ms per task: {cpu_line(cpu_ms)}"
        )


if __name__ == "__main__":
    main()

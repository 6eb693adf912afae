#!/usr/bin/env python3
"""How long a `true` task takes through the spawn server after the worker was idle for a while.

    .venv/bin/python bench/spawn_after_idle.py [--containment cgroup|subreaper] [--runs 150]

Moving a process into a cgroup waits for an RCU grace period when no move happened for a few
milliseconds, unless cgroup2 is mounted with ``favordynmods``: the first task after a quiet spell
then starts late. Prints the spawn-to-exit time of one task at a time, with 0, 5 and 20 ms of
idleness before each, and the cgroup2 mount's options. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airkafka_app.contract.commands import Command  # noqa: E402
from airkafka_app.worker.runners.containment import slow_migrations  # noqa: E402
from airkafka_app.worker.runners.shell import ShellRunner  # noqa: E402


async def main(containment: str, runs: int) -> None:
    runner = ShellRunner(["true"], containment=containment)
    print(f"contained by {await runner.start()}")
    print(slow_migrations() or "cgroup2 is mounted with favordynmods (or absent)")
    command = Command(id="idle", kind="shell", args={"argv": ["true"]})
    for _ in range(20):
        await runner.run(command)
    for idle_s in (0, 0.005, 0.02):
        took = []
        for _ in range(runs):
            await asyncio.sleep(idle_s)
            began = time.perf_counter()
            await runner.run(command)
            took.append(1000 * (time.perf_counter() - began))
        q = statistics.quantiles(took, n=100)
        print(f"idle {1000 * idle_s:4.0f} ms before each: p50 {q[49]:.2f}, p90 {q[89]:.2f}, p99 {q[98]:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containment", default="auto", choices=("auto", "cgroup", "subreaper"))
    parser.add_argument("--runs", type=int, default=150)
    args = parser.parse_args()
    asyncio.run(main(args.containment, args.runs))

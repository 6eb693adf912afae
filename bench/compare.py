#!/usr/bin/env python3
"""AirKafka beside Celery and beside the machine's spawn limit, in one run: `make bench`.

Each figure is the median of --repeat runs. The ratios are the figures to quote: they hold on
a noisy machine, where absolute times do not. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import ROOT, arguments, cpu_line, percentile, run_airkafka  # noqa: E402
from spawn_limit import spawn_rate  # noqa: E402

CELERY_PYTHON = Path(os.environ.get("AIRKAFKA_CELERY_VENV", ROOT / ".venv-celery")) / "bin" / "python"


def run_celery(tasks: int, sequential: int, repeat: int) -> dict:
    workdir = ROOT / ".cache" / "bench" / f"celery-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [
            str(CELERY_PYTHON),
            str(ROOT / "bench" / "celery_peer.py"),
            "--tasks",
            str(tasks),
            "--sequential",
            str(sequential),
            "--repeat",
            str(repeat),
            "--workdir",
            str(workdir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    peer = json.loads(result.stdout.strip().splitlines()[-1])
    runs = peer["runs"]
    return {
        "version": peer["celery"],
        "throughputs": [run["throughput"] for run in runs],
        "p50s": [percentile(run["latencies"], 50) * 1000 for run in runs],
        "p99s": [percentile(run["latencies"], 99) * 1000 for run in runs],
        "rss_mb": peer["rss_mb"],
    }


def main() -> None:
    args = arguments(__doc__)
    median = statistics.median
    spawn = [asyncio.run(spawn_rate(args.tasks, args.concurrency)) for _ in range(args.repeat)]
    celery = run_celery(args.tasks, args.sequential, args.repeat)
    ours = run_airkafka(args)

    def runs(values: list[float], digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    table = Table(
        title=f"`true` tasks, {args.tasks} at once, {args.sequential} one at a time; medians of {args.repeat}"
    )
    for column in (
        "",
        f"AirKafka (1 worker, concurrency {args.concurrency})",
        f"Celery {celery['version']} + Redis (2 prefork)",
        "spawn limit (asyncio)",
    ):
        table.add_column(column)
    table.add_row(
        "throughput, tasks/s",
        f"{median(ours['throughputs']):.0f} ({runs(ours['throughputs'], 0)})",
        f"{median(celery['throughputs']):.0f} ({runs(celery['throughputs'], 0)})",
        f"{median(spawn):.0f} ({runs(spawn, 0)})",
    )
    for name in ("p50s", "p99s"):
        table.add_row(
            f"latency {name[:-1]}, ms",
            f"{median(ours[name]):.1f} ({runs(ours[name], 1)})",
            f"{median(celery[name]):.1f} ({runs(celery[name], 1)})",
            "",
        )
    table.add_row(
        "peak RSS, MB",
        f"{ours['rss_mb']:.0f} (the worker; its spawn server {ours['server_rss_mb']:.0f})",
        f"{celery['rss_mb']:.0f} (worker and its 2 children)",
        "",
    )
    console = Console()
    console.print(table)
    console.print(f"AirKafka CPU ms per task: {cpu_line(ours['cpu_ms_median'])}")
    console.print(
        f"AirKafka / Celery throughput: {median(ours['throughputs']) / median(celery['throughputs']):.2f}x (target 3x)"
    )
    console.print(f"AirKafka / spawn limit:       {median(ours['throughputs']) / median(spawn):.0%} (target 80%)")
    console.print(
        f"AirKafka / Celery p50:        {median(ours['p50s']) / median(celery['p50s']):.2f} (target <= 1); "
        f"p99: {median(ours['p99s']) / median(celery['p99s']):.2f} (target <= 2)"
    )


if __name__ == "__main__":
    main()

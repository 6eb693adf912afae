#!/usr/bin/env python3
"""AirKafka beside Celery, beside a bare aiokafka loop (bench/bare_loop.py) and beside the
machine's spawn limit, in one run: `make bench`.

Each figure is the median of --repeat runs. The ratios are the figures to quote: they hold on
a noisy machine, where absolute times do not. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
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

from pipeline import ROOT, arguments, cpu_line, percentile, run_pipeline, timeline_lines  # noqa: E402
from spawn_limit import spawn_rate  # noqa: E402

CHART = ROOT / "docs" / "benchmark.png"
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
    bare = run_pipeline(args, bare=True)
    ours = run_pipeline(args)
    two = run_pipeline(argparse.Namespace(**{**vars(args), "workers": 2}))

    def runs(values: list[float], digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    table = Table(
        title=f"`true` tasks, {args.tasks} at once, {args.sequential} one at a time; medians of {args.repeat}"
    )
    for column in (
        "",
        f"AirKafka (1 worker, concurrency {args.concurrency})",
        "AirKafka (2 workers)",
        f"Celery {celery['version']} + Redis (2 prefork)",
        "bare aiokafka loop",
        "spawn limit (asyncio)",
    ):
        table.add_column(column)
    table.add_row(
        "throughput, tasks/s",
        f"{median(ours['throughputs']):.0f} ({runs(ours['throughputs'], 0)})",
        f"{median(two['throughputs']):.0f} ({runs(two['throughputs'], 0)})",
        f"{median(celery['throughputs']):.0f} ({runs(celery['throughputs'], 0)})",
        f"{median(bare['throughputs']):.0f} ({runs(bare['throughputs'], 0)})",
        f"{median(spawn):.0f} ({runs(spawn, 0)})",
    )
    for name in ("p50s", "p99s"):
        table.add_row(
            f"latency {name[:-1]}, ms",
            f"{median(ours[name]):.1f} ({runs(ours[name], 1)})",
            f"{median(two[name]):.1f} ({runs(two[name], 1)})",
            f"{median(celery[name]):.1f} ({runs(celery[name], 1)})",
            f"{median(bare[name]):.1f} ({runs(bare[name], 1)})",
            "",
        )
    table.add_row(
        "peak RSS, MB",
        f"{ours['rss_mb']:.0f} (the worker; its spawn server {ours['server_rss_mb']:.0f})",
        f"{two['rss_mb']:.0f} (each)",
        f"{celery['rss_mb']:.0f} (worker and its 2 children)",
        f"{bare['rss_mb']:.0f}",
        "",
    )
    console = Console(width=200)  # a wide table, also in a log
    console.print(table)
    console.print(f"AirKafka CPU ms per task:  {cpu_line(ours['cpu_ms_median'])}")
    console.print(f"2 workers CPU ms per task: {cpu_line(two['cpu_ms_median'])}")
    console.print(f"bare loop CPU ms per task: {cpu_line(bare['cpu_ms_median'])}")
    for line in ratios(ours, celery, bare, median(spawn)):
        console.print(line)
    for line in timeline_lines(ours["timeline"]):
        console.print(f"AirKafka, {line}" if line.startswith("a task") else line)
    figures = {"AirKafka": ours, "AirKafka, 2 workers": two, f"Celery {celery['version']}": celery}
    draw({**figures, "bare aiokafka loop": bare}, CHART)
    console.print(f"chart: {CHART.relative_to(ROOT)}")


def draw(figures: dict[str, dict], path: Path) -> None:
    """Throughput and latency (p50, p99) side by side, as a PNG for docs/benchmark.md."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot

    median = statistics.median
    names = list(figures)
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    shades = ["#2a6f97", "#61a5c2", "#999999", "#bbbbbb"][: len(names)]
    left.bar(names, [median(f["throughputs"]) for f in figures.values()], color=shades)
    left.set_title("throughput, `true` tasks/s (higher is better)")
    width = 0.38
    for n, (name, shade) in enumerate((("p50s", "#2a6f97"), ("p99s", "#89c2d9"))):
        spots = [i + (n - 0.5) * width for i in range(len(names))]
        right.bar(spots, [median(f[name]) for f in figures.values()], width, label=name[:-1], color=shade)
    right.set_xticks(range(len(names)), names)
    right.set_title("latency, ms, one task at a time (lower is better)")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    pyplot.close(fig)


def ratios(ours: dict, celery: dict, bare: dict, spawn: float) -> list[str]:
    """The figures to quote, each with its goal (issue 23 for the bare loop's)."""
    median = statistics.median
    cpu, bare_cpu = ours["cpu_ms_median"], bare["cpu_ms_median"]
    return [
        f"AirKafka / Celery throughput:    {median(ours['throughputs']) / median(celery['throughputs']):.2f}x",
        f"AirKafka / bare loop throughput: {median(ours['throughputs']) / median(bare['throughputs']):.0%} (goal >= 85%)",
        f"AirKafka / spawn limit:          {median(ours['throughputs']) / spawn:.0%}",
        f"AirKafka / bare loop p50:        {median(ours['p50s']) / median(bare['p50s']):.2f} (goal <= 1.2)",
        f"AirKafka / Celery p50:           {median(ours['p50s']) / median(celery['p50s']):.2f}; "
        f"p99: {median(ours['p99s']) / median(celery['p99s']):.2f} (goal <= 1.5)",
        f"AirKafka / bare loop CPU per task: worker {cpu['worker'] / bare_cpu['worker']:.1f}x, "
        f"broker {cpu['broker'] / bare_cpu['broker']:.1f}x (goals <= 2)",
    ]


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""AirKafka beside Celery, beside a bare aiokafka loop (bench/bare_loop.py), beside the same
loop's work done by a stock Faust app with and without a table (bench/faust_floor.py), and
beside the machine's spawn limit, in one run: `make bench`.

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
import textwrap
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
    floors = {
        f"stock Faust{suffix}": run_pipeline(argparse.Namespace(**{**vars(args), "faust_floor": kind}), bare=True)
        for kind, suffix in (("plain", ""), ("table", " + table"))
    }
    ours = run_pipeline(args)
    two = run_pipeline(argparse.Namespace(**{**vars(args), "workers": 2}))
    columns = {
        f"AirKafka (1 worker, concurrency {args.concurrency})": ours,
        "AirKafka (2 workers)": two,
        f"Celery {celery['version']} + Redis (2 prefork)": celery,
        "bare aiokafka loop": bare,
        **floors,
    }

    def runs(values: list[float], digits: int) -> str:
        return ", ".join(f"{v:.{digits}f}" for v in values)

    table = Table(
        title=f"`true` tasks, {args.tasks} at once, {args.sequential} one at a time; medians of {args.repeat}"
    )
    for column in ("", *columns, "spawn limit (asyncio)"):
        table.add_column(column)
    table.add_row(
        "throughput, tasks/s",
        *(f"{median(c['throughputs']):.0f} ({runs(c['throughputs'], 0)})" for c in columns.values()),
        f"{median(spawn):.0f} ({runs(spawn, 0)})",
    )
    for name in ("p50s", "p99s"):
        table.add_row(
            f"latency {name[:-1]}, ms", *(f"{median(c[name]):.1f} ({runs(c[name], 1)})" for c in columns.values()), ""
        )
    table.add_row(
        "peak RSS, MB",
        f"{ours['rss_mb']:.0f} (the worker; its spawn server {ours['server_rss_mb']:.0f})",
        f"{two['rss_mb']:.0f} (each)",
        f"{celery['rss_mb']:.0f} (worker and its 2 children)",
        *(f"{c['rss_mb']:.0f}" for c in (bare, *floors.values())),
        "",
    )
    console = Console(width=200)  # a wide table, also in a log
    console.print(table)
    console.print(f"AirKafka CPU ms per task:  {cpu_line(ours['cpu_ms_median'])}")
    console.print(f"2 workers CPU ms per task: {cpu_line(two['cpu_ms_median'])}")
    console.print(f"bare loop CPU ms per task: {cpu_line(bare['cpu_ms_median'])}")
    for name, floor in floors.items():
        console.print(f"{name} CPU ms per task: {cpu_line(floor['cpu_ms_median'])}")
    for line in ratios(ours, celery, bare, median(spawn)) + floor_ratios(floors, bare):
        console.print(line)
    for line in timeline_lines(ours["timeline"]):
        console.print(f"AirKafka, {line}" if line.startswith("a task") else line)
    figures = {"AirKafka": ours, "AirKafka, 2 workers": two, f"Celery {celery['version']}": celery}
    draw({**figures, "bare aiokafka loop": bare, **floors}, CHART)
    console.print(f"chart: {CHART.relative_to(ROOT)}")


def draw(figures: dict[str, dict], path: Path) -> None:
    """Throughput and latency (p50, p99) side by side, as a PNG for docs/benchmark.md."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot

    median = statistics.median
    names = list(figures)
    fig, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    shades = ["#2a6f97", "#61a5c2", "#999999", "#bbbbbb", "#d4a373", "#e9c46a"][: len(names)]
    left.bar(names, [median(f["throughputs"]) for f in figures.values()], color=shades)
    left.set_title("throughput, `true` tasks/s (higher is better)")
    width = 0.38
    for n, (name, shade) in enumerate((("p50s", "#2a6f97"), ("p99s", "#89c2d9"))):
        spots = [i + (n - 0.5) * width for i in range(len(names))]
        right.bar(spots, [median(f[name]) for f in figures.values()], width, label=name[:-1], color=shade)
    labels = [textwrap.fill(name, 14) for name in names]  # six names side by side
    left.set_xticks(range(len(names)), labels)
    right.set_xticks(range(len(names)), labels)
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


def floor_ratios(floors: dict[str, dict], bare: dict) -> list[str]:
    """Where a stock Faust app stands against the bare loop: the least AirKafka's design costs."""
    median = statistics.median
    return [
        f"{name} / bare loop: throughput {median(floor['throughputs']) / median(bare['throughputs']):.0%}, "
        f"p50 {median(floor['p50s']) / median(bare['p50s']):.2f}, "
        f"CPU per task: worker {floor['cpu_ms_median']['worker'] / bare['cpu_ms_median']['worker']:.1f}x, "
        f"broker {floor['cpu_ms_median']['broker'] / bare['cpu_ms_median']['broker']:.1f}x"
        for name, floor in floors.items()
    ]


if __name__ == "__main__":
    main()

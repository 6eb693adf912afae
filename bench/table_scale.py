#!/usr/bin/env python3
"""A table of a million records: recovery and index rebuild time, view latency, the event loop's
longest stall, and retention.

    .venv/bin/python bench/table_scale.py [--records 1000000] [--airflow-sized]

It starts a broker and a worker (which creates the topics), stops the worker, writes the records
straight to the tasks changelog (ended tasks, their times spread over the last ten days, so that
a 7-day retention deletes about 30 % of them), and starts the worker again on an empty data
directory. Then it asks the views, and waits for retention's first pass. A benchmark, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.local_deployment import Deployment  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402


def timed_get(url: str) -> tuple[float, dict]:
    began = time.monotonic()
    response = requests.get(url, timeout=60)
    return time.monotonic() - began, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--airflow-sized", action="store_true", help="records with a 3 KB workload, as Airflow's")
    parser.add_argument("--requests", type=int, default=30, help="requests per view")
    args = parser.parse_args()
    console = Console()
    workdir = ROOT / ".cache" / "bench" / f"table-{uuid.uuid4().hex[:8]}"
    broker = start_broker(workdir / "kafka")
    figures: dict[str, str] = {}
    try:
        deployment = Deployment(broker.bootstrap, workdir, partitions=8)
        worker = deployment.worker("keeper")
        worker.start().wait_ready()
        worker.stop()
        began = time.monotonic()
        deployment.write_history(args.records, airflow_sized=args.airflow_sized)
        figures["records written to the changelog"] = f"{args.records:,} in {time.monotonic() - began:.1f}s"
        shutil.rmtree(worker.data_dir)
        started = time.monotonic()
        worker.start().wait_ready(timeout=3600)
        figures["start to ready (recovery, then index)"] = f"{time.monotonic() - started:.1f}s"
        indexed = [line for line in worker.log().splitlines() if "indexed: " in line]
        figures["index rebuild, all partitions"] = (
            f"{sum(float(line.rsplit(' in ', 1)[1].rstrip('s ')) for line in indexed):.1f}s"
        )
        health = worker.get("/health/")[1]
        figures["event loop's longest stall since ready: at ready"] = f"{health['event_loop_max_stall_ms']:.0f} ms"
        latencies: dict[str, list[float]] = {}
        views = {
            "/stats/": "/stats/",
            "/tasks/?state=failed&limit=100": "/tasks/?state=failed&limit=100",
            "/tasks/?limit=500": "/tasks/?limit=500",
            "/tasks/<id>/": "/tasks/old-00000042/",
        }
        for _ in range(args.requests):
            for name, path in views.items():
                took, _ = timed_get(worker.url + path)
                latencies.setdefault(name, []).append(took)
        for name, took in latencies.items():
            figures[f"GET {name}"] = f"median {statistics.median(took) * 1000:.1f} ms, max {max(took) * 1000:.1f} ms"
        figures["〃 after the views"] = f"{worker.get('/health/')[1]['event_loop_max_stall_ms']:.0f} ms"
        figures["records counted"] = f"{sum(worker.get('/stats/')[1]['tasks'].values()):,}"
        deadline = time.monotonic() + 180
        while "ended over" not in worker.log() and time.monotonic() < deadline:
            time.sleep(1)
        deleted = [line for line in worker.log().splitlines() if "ended over" in line]
        figures["retention's first pass (7 days)"] = deleted[-1].split("] ", 2)[-1] if deleted else "not seen"
        figures["records counted after it"] = f"{sum(worker.get('/stats/')[1]['tasks'].values()):,}"
        figures["〃 after retention's pass"] = f"{worker.get('/health/')[1]['event_loop_max_stall_ms']:.0f} ms"
        worker.stop()
    finally:
        broker.stop()
    table = Table(title=f"a table of {args.records:,} records" + (" (Airflow-sized)" if args.airflow_sized else ""))
    table.add_column("what")
    table.add_column("figure", justify="right")
    for name, figure in figures.items():
        table.add_row(name, figure)
    console.print(table)


if __name__ == "__main__":
    main()

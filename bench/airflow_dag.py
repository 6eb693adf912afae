#!/usr/bin/env python3
"""One DAG (start, 50 parallel `true` BashOperator tasks, end) under KafkaExecutor and under
Airflow's LocalExecutor, on a real Airflow 3.3 with SQLite, the same parallelism and
max_active_tasks_per_dag, and the same [workers] min_heartbeat_interval (1 s).

    .venv/bin/python bench/airflow_dag.py --runs 3

Time: trigger -> the DAG run's end, as the API reports it; a warm-up run first, then the median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.local_airflow import LocalAirflow  # noqa: E402
from scripts.local_deployment import Deployment  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

DAG_ID = "fan_out_50"
DAGS = Path(__file__).resolve().parent / "dags"


def limits(parallelism: int) -> dict[str, str]:
    return {"AIRFLOW__CORE__PARALLELISM": str(parallelism), "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism)}


def timed_runs(airflow: LocalAirflow, runs: int) -> list[float]:
    """Seconds per DAG run, after one warm-up run."""
    times = []
    for n in range(runs + 1):
        run_id = f"bench-{n}-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "dag_run_id": run_id})
        run = airflow.wait_for_run(DAG_ID, run_id, timeout=900)
        if run["state"] != "success":
            raise RuntimeError(f"run {run_id} ended {run['state']}; see {airflow.home}")
        if n:
            times.append(time.monotonic() - started)
    return times


def under_kafka_executor(workdir: Path, runs: int, parallelism: int) -> list[float]:
    broker = start_broker(workdir / "kafka")
    deployment = Deployment(broker.bootstrap, workdir, partitions=8)
    airkafka = {k: v for k, v in deployment.env().items() if k.startswith("AIRKAFKA_")}
    airflow = LocalAirflow(workdir / "airflow", DAGS, {**airkafka, **limits(parallelism)})
    worker = deployment.worker(
        "dag-bench", **airflow.worker_env(workdir / "worker-airflow-home"), AIRKAFKA_CONCURRENCY=str(parallelism)
    )
    try:
        airflow.start(DAG_ID)
        worker.start().wait_ready()
        return timed_runs(airflow, runs)
    finally:
        worker.stop()
        airflow.stop()
        broker.stop()


def under_local_executor(workdir: Path, runs: int, parallelism: int) -> list[float]:
    airflow = LocalAirflow(
        workdir / "airflow-local", DAGS, {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", **limits(parallelism)}
    )
    try:
        airflow.start(DAG_ID)
        return timed_runs(airflow, runs)
    finally:
        airflow.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    # 32 stalled Airflow's api-server on SQLite for 30 s here, under both executors.
    parser.add_argument("--parallelism", type=int, default=8)
    args = parser.parse_args()
    workdir = ROOT / ".cache" / "bench" / f"dag-{uuid.uuid4().hex[:8]}"
    kafka = under_kafka_executor(workdir, args.runs, args.parallelism)
    local = under_local_executor(workdir, args.runs, args.parallelism)
    print(
        f"DAG {DAG_ID} (52 tasks), parallelism and max_active_tasks_per_dag {args.parallelism}, "
        f"min_heartbeat_interval 1 s; median of {args.runs} after a warm-up"
    )
    for name, times in (("KafkaExecutor", kafka), ("LocalExecutor", local)):
        print(f"  {name:14s} {statistics.median(times):6.1f} s   (runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"  KafkaExecutor / LocalExecutor: {statistics.median(kafka) / statistics.median(local):.2f} (target <= 1)")


if __name__ == "__main__":
    main()

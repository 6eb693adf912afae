#!/usr/bin/env python3
"""A scheduler killed mid-run, under KafkaExecutor and under Airflow's LocalExecutor: what becomes
of the DAG run's tasks. The same scenario as the test
``test_a_scheduler_killed_mid_run_resets_nothing_and_runs_nothing_twice``: the DAG
``airkafka_crash`` (30 tasks of 3 s, each writing down its try) is triggered, the scheduler is
killed with SIGKILL, its process group with it, once tasks run, and restarted 5 s later.

    .venv/bin/python bench/scheduler_crash.py

Prints, per executor: the task states at the kill, the run's end, how many tasks ended in
each state and on which try, how many ran more than once, and the seconds from the kill to the
run's end. Airflow's defaults otherwise, including [scheduler] task_instance_heartbeat_timeout.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.local_airflow import LocalAirflow  # noqa: E402
from scripts.local_deployment import Deployment  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

DAG_ID = "airkafka_crash"
DAGS = ROOT / "tests" / "integration" / "dags"
TASKS = 30


def crash(airflow: LocalAirflow, marks: Path) -> str:
    run_id = f"crash-{uuid.uuid4().hex[:6]}"
    airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    while not (at_kill := Counter(ti["state"] for ti in airflow.api("GET", path)["task_instances"]))["running"]:
        time.sleep(0.5)
    airflow.kill("scheduler")
    killed = time.monotonic()
    time.sleep(5)
    airflow.restart("scheduler")
    run = airflow.wait_for_run(DAG_ID, run_id, timeout=1800)
    took = time.monotonic() - killed
    ended = Counter((ti["state"], ti["try_number"]) for ti in airflow.api("GET", path)["task_instances"])
    runs = Counter(line.split()[0] for line in (marks / "crash-runs").read_text().splitlines())
    twice = sum(count > 1 for count in runs.values())
    return (
        f"at the kill {dict(at_kill)}; run {run['state']} {took:.0f} s after the kill; "
        f"tasks (state, try): {dict(ended)}; ran more than once: {twice}; never ran: {TASKS - len(runs)}"
    )


def under(executor: str, workdir: Path) -> str:
    marks = workdir / executor
    marks.mkdir(parents=True)
    env = {"DAG_TEST_TMP": str(marks)}
    if executor == "LocalExecutor":
        airflow = LocalAirflow(workdir / "airflow-local", DAGS, {**env, "AIRFLOW__CORE__EXECUTOR": executor})
        try:
            return crash(airflow.start(DAG_ID), marks)
        finally:
            airflow.stop()
    broker = start_broker(workdir / "kafka")
    deployment = Deployment(broker.bootstrap, workdir, partitions=4)
    airkafka = {k: v for k, v in deployment.env().items() if k.startswith("AIRKAFKA_")}
    airflow = LocalAirflow(workdir / "airflow-kafka", DAGS, {**airkafka, **env})
    worker = deployment.worker("crash-bench", **airflow.worker_env(workdir / "worker-home"), **env)
    try:
        airflow.start(DAG_ID)
        worker.start().wait_ready()
        return crash(airflow, marks)
    finally:
        worker.stop()
        airflow.stop()
        broker.stop()


def main() -> None:
    workdir = ROOT / ".cache" / "bench" / f"crash-{uuid.uuid4().hex[:8]}"
    for executor in ("KafkaExecutor", "LocalExecutor"):
        print(f"{executor}: {under(executor, workdir)}", flush=True)


if __name__ == "__main__":
    main()

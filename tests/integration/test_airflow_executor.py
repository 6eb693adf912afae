"""KafkaExecutor on a real Airflow 3.3 with a Faust worker on the real broker: true final states."""
import subprocess
import time
from pathlib import Path

import pytest
import requests

from airkafka_app.airflow_tasks import command_id
from scripts.local_airflow import PYTHON, LocalAirflow
from scripts.local_deployment import Deployment

DAGS = Path(__file__).parent / "dags"
DAG_ID = "airkafka_example"
FAN_OUT = 20


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow")
    deployment = Deployment(broker.bootstrap, root, partitions=4)
    airkafka = {k: v for k, v in deployment.env().items() if k.startswith("AIRKAFKA_")}
    airflow = LocalAirflow(root / "airflow", DAGS, {**airkafka, "AIRKAFKA_TEST_TMP": str(root)})
    worker = deployment.worker("af-worker", **airflow.worker_env(root / "worker-airflow-home"),
                               AIRKAFKA_TEST_TMP=str(root))
    try:
        airflow.start(DAG_ID)
        worker.start().wait_ready()
        yield airflow, worker
    finally:
        worker.stop()
        airflow.stop()


def test_a_dag_runs_with_true_states_in_airflow_and_in_airkafka(stack):
    airflow, worker = stack
    started = time.monotonic()
    airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "dag_run_id": "run-1"})
    run = _wait_for_run(airflow, "run-1")
    print(f"\nDAG {DAG_ID} ({FAN_OUT + 3} tasks) took {time.monotonic() - started:.1f}s end to end")
    assert run["state"] == "failed"  # exit127 fails the run; everything else succeeds

    tis = {ti["task_id"]: ti for ti in airflow.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/run-1/taskInstances", params={"limit": 100})["task_instances"]}
    assert tis["start"]["state"] == "success"
    assert tis["exit127"]["state"] == "failed"
    assert (tis["flaky"]["state"], tis["flaky"]["try_number"]) == ("success", 2)
    assert [tis[f"fan_{i}"]["state"] for i in range(FAN_OUT)] == ["success"] * FAN_OUT

    def record(task_id: str, try_number: int = 1) -> dict:
        status, body = worker.get(f"/tasks/{command_id(DAG_ID, task_id, 'run-1', -1, try_number)}/")
        assert status == 200, (task_id, body)
        return body

    failed = record("exit127")
    assert failed["state"] == "failed" and failed["detail"].startswith("airflow final state failed")
    assert record("flaky", 1)["detail"].startswith("airflow final state up_for_retry")
    assert record("flaky", 2)["state"] == "success"
    assert all(record(f"fan_{i}")["state"] == "success" for i in range(FAN_OUT))


def _wait_for_run(airflow: LocalAirflow, run_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    run = {"state": "unknown"}
    while time.monotonic() < deadline:
        try:
            run = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        except requests.Timeout:
            continue  # SQLite under a busy scheduler can stall the api-server; ask again
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    raise TimeoutError(f"DAG run {run_id} still {run['state']} after {timeout}s")


REVOKE = """
import sys
from airflow.models.taskinstancekey import TaskInstanceKey
from airkafka_app.executor import KafkaExecutor

class TaskInstance:  # revoke_task reads only the key
    key = TaskInstanceKey("revoke_dag", "revoke_task", "run-1", 1, -1)

executor = KafkaExecutor()
executor.start()
executor.running.add(TaskInstance.key)
executor.revoke_task(ti=TaskInstance())
executor.end()
assert TaskInstance.key not in executor.running
"""


def test_revoke_task_cancels_the_try_on_its_worker(stack, broker, tmp_path):
    """The real executor class, in Airflow's interpreter, cancels a running task over Kafka."""
    airflow, worker = stack
    target = command_id("revoke_dag", "revoke_task", "run-1", -1, 1)
    deployment = Deployment(broker.bootstrap, tmp_path, name=worker.env["AIRKAFKA_APP_ID"], partitions=4)
    deployment.send_commands({"id": target, "kind": "shell", "args": {"argv": ["sleep", "60"]}})
    deployment.read(deployment.state_changes, lambda r: any(
        x["value"]["id"] == target and x["value"]["state"] == "running" for x in r))
    subprocess.run([str(PYTHON), "-c", REVOKE], env={**airflow.env}, check=True, timeout=120)
    changes = deployment.state_changes_until_terminal([target])[target]
    assert [c["state"] for c in changes] == ["queued", "running", "cancelled"]
    assert changes[-1]["detail"] == f"cancelled by revoke-{target}"

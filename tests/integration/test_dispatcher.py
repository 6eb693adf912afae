"""Kafka command events -> DAG runs on a real Airflow 3.3, through its REST API with a JWT."""

import json
from datetime import datetime

from airkafka_app.worker.runners.trigger_dag import dag_run_id
from scripts.local_deployment import Deployment
from tests.transitions import published_as

DAG_ID = "airkafka_triggered"


def trigger(task_id: str, dag_id: str = DAG_ID, **args) -> dict:
    return {"id": task_id, "kind": "trigger_dag", "args": {"dag_id": dag_id, **args}}


def deployment_of(worker, broker, tmp_path) -> Deployment:
    return Deployment(broker.bootstrap, tmp_path, name=worker.env["AIRKAFKA_APP_ID"], partitions=4)


def test_a_command_creates_one_dag_run_with_its_conf(airflow_stack, broker, tmp_path):
    airflow, worker = airflow_stack
    deployment = deployment_of(worker, broker, tmp_path)
    command = trigger("order-1", conf={"message": "hello"})
    deployment.send_commands(command, command)  # the second is a duplicate
    changes = deployment.state_changes_until_terminal(["order-1"])["order-1"]
    assert published_as([c["state"] for c in changes], ["queued", "running", "success"])
    run_id = dag_run_id("order-1")
    assert changes[-1]["detail"] == f"triggered dag run {run_id} of {DAG_ID}"
    run = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
    assert run["conf"] == {"message": "hello"}
    runs = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"]
    assert [r["dag_run_id"] for r in runs].count(run_id) == 1


def test_wait_reports_the_end_state_and_a_resubmission_finds_the_same_run(airflow_stack, broker, tmp_path):
    airflow, worker = airflow_stack
    deployment = deployment_of(worker, broker, tmp_path)
    deployment.send_commands(trigger("ok-wait", wait=True), trigger("bad-wait", wait=True, conf={"exit_code": 3}))
    changes = deployment.state_changes_until_terminal(["ok-wait", "bad-wait"], timeout=240)
    assert changes["ok-wait"][-1]["state"] == "success" and changes["ok-wait"][-1]["detail"].endswith("ended success")
    assert changes["bad-wait"][-1]["state"] == "failed" and changes["bad-wait"][-1]["detail"].endswith("ended failed")
    # A failed task sent again runs as its next attempt: Airflow answers 409, and it follows the same run.
    deployment.send_commands(trigger("bad-wait", wait=True, conf={"exit_code": 3}))
    records = deployment.read(
        deployment.state_changes,
        lambda r: [x["value"]["state"] for x in r if x["value"]["id"] == "bad-wait"].count("failed") == 2,
        timeout=240,
    )
    last = [x["value"] for x in records if x["value"]["id"] == "bad-wait"][-1]
    assert last["attempt"] == 2
    assert last["detail"] == f"dag run {dag_run_id('bad-wait')} of {DAG_ID} was already triggered; it ended failed"


def test_unknown_dag_fails_at_once_and_the_dispatcher_event_shape_works(airflow_stack, broker, tmp_path):
    airflow, worker = airflow_stack
    deployment = deployment_of(worker, broker, tmp_path)
    deployment.send_commands(trigger("nowhere", dag_id="no_such_dag"))
    deployment.send(
        [(b"evt-7", json.dumps({"command": f"app.{DAG_ID}", "params": json.dumps({"message": "evt"})}).encode())]
    )
    changes = deployment.state_changes_until_terminal(["nowhere", "evt-7"])
    assert changes["nowhere"][-1]["state"] == "failed"
    assert changes["nowhere"][-1]["detail"] == "DAG 'no_such_dag' not found"
    assert changes["evt-7"][-1]["state"] == "success"
    assert airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{dag_run_id('evt-7')}")["conf"] == {"message": "evt"}
    assert "airkafka-test-password" not in worker.log()


def test_triggers_with_one_serial_key_start_each_dag_run_after_the_previous_one_ended(airflow_stack, broker, tmp_path):
    airflow, worker = airflow_stack
    deployment = deployment_of(worker, broker, tmp_path)
    ids = ["serial-a", "serial-b"]
    deployment.send_commands(*(dict(trigger(i, conf={"message": i}), serial_key="account-1") for i in ids))
    changes = deployment.state_changes_until_terminal(ids, timeout=240)
    for i in ids:
        assert changes[i][-1]["state"] == "success" and changes[i][-1]["detail"].endswith("it ended success")
    first, second = (airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{dag_run_id(i)}") for i in ids)
    assert datetime.fromisoformat(second["queued_at"]) >= datetime.fromisoformat(first["end_date"])

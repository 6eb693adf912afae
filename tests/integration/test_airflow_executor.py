"""KafkaExecutor on a real Airflow 3.3 with a Faust worker on the real broker: true final states."""

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from airkafka_app.contract import airflow_tasks
from airkafka_app.contract.airflow_tasks import command_id
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import TaskRecord
from scripts.local_airflow import PYTHON
from scripts.local_deployment import Deployment, shell
from scripts.local_kafka import start_broker
from tests.transitions import published_as

DAG_ID = "airkafka_example"
FAN_OUT = 20


def test_a_dag_runs_with_true_states_in_airflow_and_in_airkafka(airflow_stack):
    airflow, worker = airflow_stack
    started = time.monotonic()
    airflow.api("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "dag_run_id": "run-1"})
    run = airflow.wait_for_run(DAG_ID, "run-1")
    print(f"\nDAG {DAG_ID} ({FAN_OUT + 4} tasks) took {time.monotonic() - started:.1f}s end to end")
    assert run["state"] == "failed"  # exit127 fails the run; everything else succeeds

    tis = {
        ti["task_id"]: ti
        for ti in airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/run-1/taskInstances", params={"limit": 100})[
            "task_instances"
        ]
    }
    assert tis["start"]["state"] == "success"
    assert tis["exit127"]["state"] == "failed"
    assert (tis["flaky"]["state"], tis["flaky"]["try_number"]) == ("success", 2)
    assert tis["on_queue"]["state"] == "success"
    # The worker ran it with an AIRFLOW_HOME of its own, as on another host: the API server
    # reads the log from the worker's log server.
    log = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/run-1/taskInstances/start/logs/1")
    lines = [str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in log["content"]]
    assert any("airkafka-example-start" in line for line in lines) and not any(
        "Could not read served logs" in line for line in lines
    ), lines[-20:]

    # Airflow learns the final state from the supervisor before its process exits; AirKafka
    # records it once the process has ended. Wait for those records, then compare.
    deployment = Deployment(
        worker.env["AIRKAFKA_BROKER"].removeprefix("kafka://"),
        worker.workdir,
        name=worker.env["AIRKAFKA_APP_ID"],
        partitions=4,
    )
    tries = [
        ("start", 1),
        ("exit127", 1),
        ("flaky", 1),
        ("flaky", 2),
        ("on_queue", 1),
        *((f"fan_{i}", 1) for i in range(FAN_OUT)),
    ]
    deployment.state_changes_until_terminal([command_id(DAG_ID, t, "run-1", -1, n) for t, n in tries])

    def record(task_id: str, try_number: int = 1, queue: str = "default") -> dict:
        status, body = worker.get(f"/tasks/{command_id(DAG_ID, task_id, 'run-1', -1, try_number)}/?queue={queue}")
        assert status == 200, (task_id, body)
        return body

    not_success = {
        f"fan_{i}": (tis[f"fan_{i}"], record(f"fan_{i}"))
        for i in range(FAN_OUT)
        if tis[f"fan_{i}"]["state"] != "success"
    }
    assert not not_success, not_success  # Airflow's task instance and AirKafka's record, to tell why
    failed = record("exit127")
    assert failed["state"] == "failed" and failed["detail"].startswith("airflow final state failed")
    assert failed["exit_code"] is None  # the supervisor's 0 is not the task's
    assert failed["airflow"] == {
        "dag_id": DAG_ID,
        "task_id": "exit127",
        "run_id": "run-1",
        "map_index": -1,
        "try_number": 1,
    }
    flaky = worker.get(f"/tasks/?dag_id={DAG_ID}&task_id=flaky&limit=5")[1]["tasks"]
    assert sorted(t["airflow"]["try_number"] for t in flaky) == [1, 2]
    assert record("flaky", 1)["detail"].startswith("airflow final state up_for_retry")
    assert record("flaky", 2)["state"] == "success"
    assert all(record(f"fan_{i}")["state"] == "success" for i in range(FAN_OUT))
    # The task's queue picked its topic, and so its table.
    assert record("on_queue", queue="extra")["state"] == "success"
    assert worker.get(f"/tasks/{command_id(DAG_ID, 'on_queue', 'run-1', -1, 1)}/")[0] == 404


def wait_for_dag(airflow, dag_id: str) -> None:
    deadline = time.monotonic() + 120
    while True:  # the DAG processor parses the DAGs folder again every few seconds
        try:
            airflow.api("GET", f"/dags/{dag_id}")
            return
        except requests.RequestException:
            assert time.monotonic() < deadline, f"{dag_id} never parsed"
            time.sleep(1)


def test_a_scheduler_killed_mid_run_resets_nothing_and_runs_nothing_twice(airflow_stack):
    """CeleryExecutor's users report tasks reset, or run twice, after a scheduler crash. Here the
    scheduler is killed with SIGKILL while tries are queued and running, and restarted 5 s later:
    the new one adopts every try, and each task runs once, its first try, to success."""
    airflow, worker = airflow_stack
    runs = Path(worker.env["DAG_TEST_TMP"]) / "crash-runs"
    wait_for_dag(airflow, "airkafka_crash")
    airflow.api("POST", "/dags/airkafka_crash/dagRuns", json={"dag_run_id": "crash-1", "logical_date": None})
    deadline = time.monotonic() + 120
    while True:
        tis = airflow.api("GET", "/dags/airkafka_crash/dagRuns/crash-1/taskInstances")["task_instances"]
        at_kill = Counter(ti["state"] for ti in tis)
        if at_kill["running"] and at_kill["success"] < 10:
            break
        assert time.monotonic() < deadline and at_kill["success"] < 10, at_kill
        time.sleep(0.5)
    airflow.kill("scheduler")
    killed = time.monotonic()
    time.sleep(5)
    airflow.restart("scheduler")
    assert airflow.wait_for_run("airkafka_crash", "crash-1")["state"] == "success"
    took = time.monotonic() - killed
    tis = airflow.api("GET", "/dags/airkafka_crash/dagRuns/crash-1/taskInstances")["task_instances"]
    assert {(ti["state"], ti["try_number"]) for ti in tis} == {("success", 1)}, tis
    ran = Counter(runs.read_text().split("\n")[:-1])
    assert ran == Counter(f"t{n} 1" for n in range(30)), ran
    print(f"\nscheduler killed with {dict(at_kill)}: all 30 ran once, first try, run over {took:.0f}s after the kill")


def test_a_missed_deadline_runs_its_callback_on_a_worker_and_the_scheduler_goes_on(airflow_stack, broker, tmp_path):
    """A deadline alert made the scheduler hand the executor an ExecuteCallback, which raised
    NotImplementedError and stopped the scheduler. Now a worker runs the callback."""
    airflow, worker = airflow_stack
    marker = Path(worker.env["DAG_TEST_TMP"]) / "deadline-callback"
    wait_for_dag(airflow, "airkafka_deadline")
    airflow.api("POST", "/dags/airkafka_deadline/dagRuns", json={"dag_run_id": "late-1", "logical_date": None})
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline, (airflow.home / "scheduler.log").read_text()[-3000:]
        assert all(p.poll() is None for p in airflow.processes), "an Airflow component exited"
        time.sleep(1)
    note, pid = marker.read_text().split()
    assert note == "missed" and int(pid) != os.getpid()
    deployment = Deployment(broker.bootstrap, tmp_path, name=worker.env["AIRKAFKA_APP_ID"], partitions=4)
    ended = deployment.read(
        deployment.state_changes,
        lambda r: any(x["value"]["id"].startswith("af-cb-") and x["value"]["state"] == "success" for x in r),
    )
    callback = next(
        x["value"] for x in ended if x["value"]["id"].startswith("af-cb-") and x["value"]["state"] == "success"
    )
    assert callback["kind"] == "airflow" and callback["detail"].startswith("airflow ExecuteCallback: exit code 0")
    assert airflow.wait_for_run("airkafka_deadline", "late-1")["state"] == "success"
    assert all(p.poll() is None for p in airflow.processes), "an Airflow component exited"


def test_a_connection_test_from_the_api_is_answered_by_a_worker(airflow_stack, broker, tmp_path):
    """Airflow 3.3 hands a connection test to the executor as a TestConnection workload; a worker
    runs it and Airflow's API reports its result, a pass and a fail."""
    airflow, worker = airflow_stack
    results = {}
    for name, path in (("airkafka_fs_ok", str(tmp_path)), ("airkafka_fs_missing", str(tmp_path / "missing"))):
        queued = airflow.api(
            "POST",
            "/connections/enqueue-test",
            json={"connection_id": name, "conn_type": "fs", "extra": json.dumps({"path": path})},
        )
        deadline = time.monotonic() + 120
        while (
            result := airflow.api(
                "GET", "/connections/enqueue-test", headers={"Airflow-Connection-Test-Token": queued["token"]}
            )
        )["state"] not in ("success", "failed"):
            assert time.monotonic() < deadline, (result, (airflow.home / "scheduler.log").read_text()[-3000:])
            time.sleep(1)
        results[name] = result
    assert results["airkafka_fs_ok"]["state"] == "success", results
    assert results["airkafka_fs_ok"]["result_message"] == f"Path {tmp_path} is existing.", results
    assert results["airkafka_fs_missing"]["state"] == "failed", results
    assert "does not exist" in results["airkafka_fs_missing"]["result_message"], results
    deployment = Deployment(broker.bootstrap, tmp_path, name=worker.env["AIRKAFKA_APP_ID"], partitions=4)
    tests = deployment.read(
        deployment.state_changes,
        lambda r: (
            sum(x["value"]["id"].startswith("af-ct-") and x["value"]["state"] in ("success", "failed") for x in r) >= 2
        ),
    )
    ran = {x["value"]["worker"] for x in tests if x["value"]["id"].startswith("af-ct-")}
    assert ran == {worker.env["AIRKAFKA_WORKER_NAME"]}, ran


def test_a_tries_log_outlives_its_worker(airflow_stack, broker, tmp_path):
    """The worker publishes each try's log to Kafka as it runs; with AirKafka's remote log handler,
    the API server reads it there once the worker and its log files are gone."""
    airflow, stack_worker = airflow_stack
    deployment = Deployment(broker.bootstrap, tmp_path, name=stack_worker.env["AIRKAFKA_APP_ID"], partitions=4)
    home = tmp_path / "gone-worker-home"
    worker = deployment.worker("short-lived", **airflow.worker_env(home), AIRKAFKA_QUEUES="durable_logs")
    worker.start().wait_ready()
    try:
        wait_for_dag(airflow, "airkafka_durable_log")
        airflow.api("POST", "/dags/airkafka_durable_log/dagRuns", json={"dag_run_id": "log-1", "logical_date": None})
        assert airflow.wait_for_run("airkafka_durable_log", "log-1")["state"] == "success"
    finally:
        worker.stop()
    shutil.rmtree(home)  # its log files, as a host that is gone
    airflow.kill("api-server")
    airflow.restart(
        "api-server", AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS="airkafka_app.airflow.log_handler.LOGGING_CONFIG"
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                log = airflow.api("GET", "/dags/airkafka_durable_log/dagRuns/log-1/taskInstances/speak/logs/1")
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, (airflow.home / "api-server.log").read_text()[-3000:]
                time.sleep(1)
        lines = [str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in log["content"]]
        assert any("airkafka-durable-line-2" in line for line in lines), lines
        assert any(line.startswith("Kafka topic ") for line in lines), lines
    finally:
        airflow.kill("api-server")
        airflow.restart("api-server")
        wait_for_dag(airflow, "airkafka_durable_log")


REVOKE = """
import sys
from airflow.models.taskinstancekey import TaskInstanceKey
from airkafka_app.airflow.executor import KafkaExecutor

class TaskInstance:  # revoke_task reads only the key and the queue
    key = TaskInstanceKey("revoke_dag", "revoke_task", "run-1", 1, -1)
    queue = "default"

executor = KafkaExecutor()
executor.start()
executor.running.add(TaskInstance.key)
executor.revoke_task(ti=TaskInstance())
executor.end()
assert TaskInstance.key not in executor.running
"""


def airflow_command(dag_id: str, task_id: str, run_id: str, executor_id: str) -> dict:
    """The command the executor sends for a try, with a workload that names it and nothing more."""
    ti = {"dag_id": dag_id, "task_id": task_id, "run_id": run_id, "map_index": -1, "try_number": 1}
    workload = json.dumps({"token": "x", "ti": ti, "dag_rel_path": f"{dag_id}.py", "log_path": f"{task_id}.log"})
    command_id_ = command_id(dag_id, task_id, run_id, -1, 1)
    return airflow_tasks.workload_command(command_id_, workload, executor_id).to_json()


def revoke_through_the_executor(deployment: Deployment, executor_env: dict[str, str], **worker_env: str) -> None:
    """The real executor class, in Airflow's interpreter, cancels over Kafka a try its worker
    holds: one waiting for the worker's only slot, which a shell task holds."""
    worker = deployment.worker(
        "revoker", AIRKAFKA_CONCURRENCY="1", AIRKAFKA_AIRFLOW_PYTHON=str(PYTHON), **worker_env
    ).start()
    try:
        worker.wait_ready()
        target = airflow_command("revoke_dag", "revoke_task", "run-1", "revoke-eid")
        deployment.send_commands(shell("slot-holder", "sleep", "60"))
        deployment.read(deployment.state_changes, lambda r: any(x["value"]["id"] == "slot-holder" for x in r))
        deployment.send_commands(target)
        deployment.read(deployment.state_changes, lambda r: any(x["value"]["id"] == target["id"] for x in r))
        subprocess.run([str(PYTHON), "-c", REVOKE], env=executor_env, check=True, timeout=120)
        changes = deployment.state_changes_until_terminal([target["id"]])[target["id"]]
        assert published_as([c["state"] for c in changes], ["queued", "cancelled"]), changes
        assert changes[-1]["detail"] == f"cancelled by revoke-{target['id']}"
    finally:
        worker.stop()


def test_revoke_task_cancels_the_try_on_its_worker(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    executor_env = {**deployment.env(), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    revoke_through_the_executor(deployment, {**executor_env, "AIRKAFKA_EXECUTOR_GROUP": f"revoke-{tmp_path.name}"})


SYNC = """
import json, sys, time
from airflow.models.taskinstancekey import TaskInstanceKey
from airkafka_app.airflow.executor import KafkaExecutor

run_id, reader = sys.argv[1:]

class TaskInstance:  # what adoption reads of a try the scheduler queued
    def __init__(self, name):
        self.key = TaskInstanceKey("sync_dag", name, run_id, 1, -1)
        self.external_executor_id = f"eid-{name}-{run_id}"

executor = KafkaExecutor()
executor.start()
assert executor.try_adopt_task_instances([TaskInstance(n) for n in ("ok", "bad", "dup", "forged")]) == []
read = {"sync": executor.sync, "slots_available": lambda: executor.slots_available}[reader]
for _ in range(60):
    read()
    if [k.task_id for k in executor.running] == ["forged"]:
        break
    time.sleep(1)
events = {key.task_id: state for key, (state, _) in executor.get_event_buffer().items()}
executor.end()
print(json.dumps({"events": events, "running": sorted(k.task_id for k in executor.running)}))
"""


def publish_ends(
    deployment: Deployment, dag_id: str, run_id: str, ends: dict[str, str], executor_id: Callable[[str], str]
) -> None:
    """Each try's end (task id -> state) on the state-changes topic, as the worker that ran the
    executor's command for it publishes it."""
    changes = []
    for name, state in ends.items():
        record = TaskRecord.new_attempt(airflow_command(dag_id, name, run_id, executor_id(name)), None, "w")
        change = record.to(State.RUNNING).to(State(state), exit_code=None).state_change("default")
        changes.append((record.id.encode(), json.dumps(change).encode()))
    deployment.send_to(deployment.state_changes, changes)


def sync_through_the_executor(deployment: Deployment, executor_env: dict[str, str], reader: str = "sync") -> None:
    """The real executor's sync() reports success and failure, never fails a cancelled try, and
    takes no end that does not prove its try's external_executor_id.

    The ends are published as a worker publishes them (the DAG runs above prove that a worker
    does). ``reader`` is what the executor is asked: sync(), or the free slots the scheduler counts
    before it calls sync(), which must count the ends already published."""
    run_id = f"run-{reader}"
    ends = {"ok": "success", "bad": "failed", "dup": "cancelled", "forged": "success"}
    publish_ends(
        deployment, "sync_dag", run_id, ends, lambda name: f"eid-{name}-{run_id}" if name != "forged" else "a-guess"
    )
    result = subprocess.run(
        [str(PYTHON), "-c", SYNC, run_id, reader],
        env=executor_env,
        check=True,
        timeout=180,
        capture_output=True,
        text=True,
    )
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"events": {"ok": "success", "bad": "failed"}, "running": ["forged"]}


@pytest.mark.parametrize("reader", ["sync", "slots_available"])
def test_sync_reports_success_and_failure_and_never_fails_a_cancelled_try(broker, tmp_path, reader):
    deployment = Deployment(broker.bootstrap, tmp_path)
    executor_env = {**deployment.env(), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    sync_through_the_executor(deployment, {**executor_env, "AIRKAFKA_EXECUTOR_GROUP": f"sync-{tmp_path.name}"}, reader)


PLACE_KEYS = """
import sys
from confluent_kafka import Producer
from airkafka_app.contract.kafka_connection import confluent_producer_options
from airkafka_app.contract.settings import Settings

producer = Producer(confluent_producer_options(Settings()))
for n in range(200):
    producer.produce(sys.argv[1], key=f"task-{n}".encode(), value=b"{}")
assert producer.flush(30) == 0
"""


def test_the_executors_producer_places_each_key_on_the_partition_faust_owns_it_by(broker, tmp_path):
    """librdkafka's default partitioner (CRC32) would put commands where no table record is."""
    topic = f"keys-{tmp_path.name}"

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 8, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    env = {**os.environ, "AIRKAFKA_BROKER": f"kafka://{broker.bootstrap}"}
    subprocess.run([str(PYTHON), "-c", PLACE_KEYS, topic], env=env, check=True, timeout=120)
    placed = {
        r["key"].decode(): r["partition"]
        for r in Deployment(broker.bootstrap, tmp_path).read(topic, lambda records: len(records) >= 200)
    }
    partitions = list(range(8))
    expected = {key: DefaultPartitioner()(key.encode(), partitions, partitions) for key in placed}
    assert len(placed) == 200 and placed == expected


# The executor in Airflow's interpreter, driven a step at a time from the test over stdin.
WORKLOAD = """
import json, sys, time, uuid
from airflow.executors.workloads import BundleInfo, ExecuteTask
from airflow.executors.workloads.task import TaskInstanceDTO
from airflow.models.taskinstancekey import TaskInstanceKey
from airkafka_app.airflow.executor import KafkaExecutor

def workload(task_id, queue="default"):
    ti = TaskInstanceDTO.model_construct(id=uuid.uuid4(), dag_id="ops_dag", task_id=task_id, run_id="run-1",
                                         try_number=1, map_index=-1, queue=queue, pool_slots=1, priority_weight=1,
                                         external_executor_id=None)
    return ExecuteTask.model_construct(token="t", ti=ti, dag_rel_path="ops_dag.py",
                                       bundle_info=BundleInfo(name="dags-folder"), log_path=None)

def until_reported(executor, keys, seconds=60):
    for _ in range(int(seconds * 4)):
        executor.sync()
        if not set(keys) & executor.running:
            break
        time.sleep(0.25)
    return {k.task_id: [str(state), info] for k, (state, info) in executor.get_event_buffer().items()}

executor = KafkaExecutor()
executor.start()
print("@@", json.dumps("started"), flush=True)
"""


def reply(driver: subprocess.Popen):
    """The driver's next reply; Airflow's log lines come on the same output."""
    while line := driver.stdout.readline():
        if line.startswith("@@ "):
            return json.loads(line[3:])
    raise AssertionError(f"the driver ended with {driver.wait()}")


BROKER_STOPPED = (
    WORKLOAD
    + """
sys.stdin.readline()  # the broker has stopped
began = time.monotonic()
sent = workload("lost")
executor._process_workloads([sent])
took = time.monotonic() - began
print("@@", json.dumps({"took": took, "events": until_reported(executor, [sent.ti.key])}), flush=True)
"""
)


def test_a_command_the_broker_does_not_take_fails_its_try_without_holding_the_scheduler(airflow_stack, tmp_path):
    airflow, _ = airflow_stack
    own = start_broker(tmp_path / "kafka")
    try:
        env = {
            **airflow.env,
            "AIRKAFKA_BROKER": f"kafka://{own.bootstrap}",
            "AIRKAFKA_EXECUTOR_DELIVERY_TIMEOUT_S": "5",
        }
        driver = subprocess.Popen(
            [str(PYTHON), "-c", BROKER_STOPPED], env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert reply(driver) == "started"
        own.stop()
        driver.stdin.write("go\n")
        driver.stdin.flush()
        outcome = reply(driver)
        driver.kill()
    finally:
        own.stop()
    assert outcome["took"] < 1.0
    state, info = outcome["events"]["lost"]
    assert state == "failed" and info.startswith("command not delivered to Kafka"), outcome
    print(
        f"\nbroker stopped: _process_workloads returned in {outcome['took'] * 1000:.0f} ms; the try failed "
        f"once the delivery timeout (5 s) passed"
    )


ADOPT = (
    WORKLOAD
    + """
for _ in range(12):  # read what ended while no scheduler ran; none of it is tracked yet
    executor.sync()
    time.sleep(0.25)

class TaskInstance:
    def __init__(self, name):
        self.key = TaskInstanceKey("ops_dag", name, "run-1", 1, -1)
        self.external_executor_id = "sent-before-the-restart"

tis = [TaskInstance(name) for name in ("ok", "bad", "later")]
assert executor.try_adopt_task_instances(tis) == []
print("@@", json.dumps(until_reported(executor, [ti.key for ti in tis[:2]], 30)), flush=True)
sys.stdin.readline()  # "later" has ended now
print("@@", json.dumps(until_reported(executor, [tis[2].key], 60)), flush=True)
"""
)


def test_a_restarted_scheduler_reports_tries_that_ended_while_it_was_away(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)

    def sent(name: str) -> str:  # the id the scheduler gave each try before it restarted
        return "sent-before-the-restart"

    publish_ends(deployment, "ops_dag", "run-1", {"ok": "success", "bad": "failed"}, sent)
    # Poison on the topic it reads: garbage, a tombstone, a record of another shape.
    deployment.send_to(deployment.state_changes, [(b"x", b"{not json"), (b"y", None), (b"z", b'{"id": 3}')])
    env = {
        **deployment.env(),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRKAFKA_EXECUTOR_GROUP": f"adopt-{tmp_path.name}",
    }
    driver = subprocess.Popen(
        [str(PYTHON), "-c", ADOPT], env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert reply(driver) == "started"
        first = reply(driver)
        publish_ends(deployment, "ops_dag", "run-1", {"later": "success"}, sent)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        second = reply(driver)
    finally:
        driver.kill()
    assert {name: state for name, (state, _) in first.items()} == {"ok": "success", "bad": "failed"}
    assert second["later"][0] == "success"


REFUSED = (
    WORKLOAD
    + """
forged = TaskInstanceKey("ops_dag", "forged", "run-1", 1, -1)
executor.running.add(forged)  # as if sent: only its own command may end it
refused = workload("refused")
refused.log_path = "/etc/passwd"  # a worker refuses a path outside Airflow's logs folder
executor._process_workloads([refused, workload("elsewhere", queue="fresh")])
print("@@", json.dumps("sent"), flush=True)
sys.stdin.readline()  # the forged command has been refused
print("@@", json.dumps(until_reported(executor, [refused.ti.key, forged], 30)), flush=True)
"""
)


def test_a_refused_command_fails_its_try_at_once_and_a_new_queue_gets_its_topic(airflow_stack, broker, tmp_path):
    airflow, worker = airflow_stack
    deployment = Deployment(broker.bootstrap, tmp_path, name=worker.env["AIRKAFKA_APP_ID"], partitions=4)
    env = {**airflow.env, "AIRKAFKA_EXECUTOR_GROUP": f"refused-{tmp_path.name}"}
    driver = subprocess.Popen(
        [str(PYTHON), "-c", REFUSED], env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert reply(driver) == "started"
        assert reply(driver) == "sent"
        forged = command_id("ops_dag", "forged", "run-1", -1, 1)
        # A producer's command under the try's id, refused: the try is not its to fail.
        deployment.send_commands({"id": forged, "kind": "airflow", "args": {"workload": 5}})
        deployment.read(deployment.dead_letters, lambda r: any(x["value"]["key"] == forged for x in r))
        driver.stdin.write("\n")
        driver.stdin.flush()
        events = reply(driver)
    finally:
        driver.kill()
    state, info = events["refused"]
    assert state == "failed" and info.startswith("refused by AirKafka: airflow workload 'log_path' must be"), events
    assert "forged" not in events, events
    # The executor created the queue's topic as the workers would, not the broker with its default.
    assert asyncio.run(partitions_of(broker.bootstrap, deployment.commands_of("fresh"))) == 4


async def partitions_of(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (found,) = await admin.describe_topics([topic])
        return len(found["partitions"])
    finally:
        await admin.close()

"""Kafka security on the real broker, through a SASL_PLAINTEXT listener: the worker (Faust and its
aiokafka clients), replay and the executor (confluent-kafka, in Airflow's interpreter) all
authenticate from the same AIRKAFKA_* variables. The tests' own clients use the plain listener."""

import os
import subprocess

import pytest

from scripts.local_airflow import PYTHON
from scripts.local_deployment import FAUST, Deployment, shell
from scripts.local_kafka import start_broker
from tests.integration.test_airflow_executor import revoke_through_the_executor, sync_through_the_executor
from tests.integration.test_replay import replay

PASSWORD = "alice-Secret-4711"


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    broker = start_broker(tmp_path_factory.mktemp("sasl-kafka"), sasl_users={"alice": PASSWORD})
    yield broker
    broker.stop()


def sasl_env(broker, mechanism: str, password: str = PASSWORD) -> dict[str, str]:
    return {
        "AIRKAFKA_BROKER": f"kafka://{broker.sasl_bootstrap}",
        "AIRKAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AIRKAFKA_SASL_MECHANISM": mechanism,
        "AIRKAFKA_SASL_USERNAME": "alice",
        "AIRKAFKA_SASL_PASSWORD": password,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_the_worker_replay_and_the_executor_authenticate(sasl_broker, tmp_path, mechanism):
    deployment = Deployment(sasl_broker.bootstrap, tmp_path)
    env = sasl_env(sasl_broker, mechanism)
    worker = deployment.worker("secure", **env).start().wait_ready()
    try:
        ids = [f"s{i}" for i in range(20)]
        deployment.send_commands(*(shell(i, "true") for i in ids))
        changes = deployment.state_changes_until_terminal(ids)
        assert {c[-1]["state"] for c in changes.values()} == {"success"}

        assert "already successful" in replay(deployment, worker, "--dry-run", **env)

        assert PASSWORD not in worker.log()
    finally:
        worker.stop()
    # The executor's part, on a deployment of its own: its revoke needs a worker of one slot.
    airflow_side = Deployment(sasl_broker.bootstrap, tmp_path / "airflow-side")
    executor_env = {
        **airflow_side.env(**env),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRKAFKA_EXECUTOR_GROUP": f"executor-{tmp_path.name}",
    }
    # The executor's producer sends the revoke; its admin client and consumer, on the same options,
    # take part in sync() under both mechanisms.
    if mechanism == "PLAIN":
        revoke_through_the_executor(airflow_side, executor_env, **env)
    sync_through_the_executor(airflow_side, executor_env)


EXECUTOR_START = "from airkafka_app.airflow.executor import KafkaExecutor; KafkaExecutor().start()"


def test_wrong_credentials_stop_each_client_with_one_clear_error(sasl_broker, tmp_path):
    deployment = Deployment(sasl_broker.bootstrap, tmp_path)
    env = sasl_env(sasl_broker, "SCRAM-SHA-512", password="not-the-password")
    refused = "refused the connection over SASL_PLAINTEXT as 'alice' with SCRAM-SHA-512: SaslAuthenticationFailed"

    worker = deployment.worker("intruder", **env).start()
    try:
        assert worker.process.wait(timeout=60) == os.EX_CONFIG  # exits, and asks not to be restarted
    finally:
        worker.stop()
    log = worker.log()
    assert log.count(refused) == 1 and "Traceback" not in log and "not-the-password" not in log

    replayed = subprocess.run(
        [str(FAUST), "-A", "airkafka_app", "replay", "--dry-run"],
        env=deployment.env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert replayed.returncode == 1 and f"replay: Kafka at {sasl_broker.sasl_bootstrap} {refused}" in replayed.stderr

    started = subprocess.run(
        [str(PYTHON), "-c", EXECUTOR_START],
        capture_output=True,
        text=True,
        timeout=60,
        env={**deployment.env(**env), "AIRFLOW_HOME": str(tmp_path / "airflow")},
    )
    assert started.returncode == 1
    assert "KafkaExecutor cannot use Kafka" in started.stderr and "SASL authentication error" in started.stderr

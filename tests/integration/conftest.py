from pathlib import Path

import pytest

from scripts.local_airflow import LocalAirflow
from scripts.local_deployment import Deployment
from scripts.local_kafka import start_broker

DAGS = Path(__file__).parent / "dags"
# The slowest files first (most seconds first, as --durations shows them): pytest-xdist hands each
# file to the next free process in collection order, and a long file handed out last would leave
# the other processes idle at the end.
SLOWEST_FIRST = (
    "test_operations.py",
    "test_airflow_executor.py",
    "test_faults.py",
    "test_dispatcher.py",
    "test_kafka_security.py",
    "test_airflow_teams.py",
    "test_restart_and_scale.py",
    "test_quickstart.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(scope="session", autouse=True)
def short_shutdown_grace():
    """Every test stops its workers at its end, most with tasks still running: they are handed back
    after 2 s rather than the default 20. A test of draining sets its own grace."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRKAFKA_SHUTDOWN_GRACE_S", "2")
        yield


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def deployment(broker, tmp_path_factory):
    return Deployment(broker.bootstrap, tmp_path_factory.mktemp("deployment"))


@pytest.fixture(scope="session")
def airflow_stack(broker, tmp_path_factory):
    """A real Airflow using KafkaExecutor, and one AirKafka worker that runs and triggers its DAGs."""
    root = tmp_path_factory.mktemp("airflow")
    deployment = Deployment(broker.bootstrap, root, partitions=4)
    airkafka = {k: v for k, v in deployment.env().items() if k.startswith("AIRKAFKA_")}
    airflow = LocalAirflow(root / "airflow", DAGS, {**airkafka, "DAG_TEST_TMP": str(root)})
    worker = deployment.worker(
        "af-worker",
        **airflow.worker_env(root / "worker-airflow-home"),
        DAG_TEST_TMP=str(root),
        AIRKAFKA_TRIGGER_POLL_S="0.5",
        AIRKAFKA_QUEUES="default,extra",
    )
    try:
        airflow.start("airkafka_example")
        worker.start().wait_ready()
        yield airflow, worker
    finally:
        worker.stop()
        airflow.stop()

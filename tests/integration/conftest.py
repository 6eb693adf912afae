import pytest

from scripts.local_kafka import start_broker
from scripts.local_deployment import Deployment


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def deployment(broker, tmp_path_factory):
    return Deployment(broker.bootstrap, tmp_path_factory.mktemp("deployment"))

"""The Kafka ACLs docs/operations.md gives each principal, on a broker that enforces them (KRaft's
StandardAuthorizer): a worker and the Airflow executor run with their own, and a producer of
commands can write commands and nothing the workers write."""

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from scripts.local_deployment import Deployment, shell
from scripts.local_kafka import start_broker
from tests.integration.test_airflow_executor import revoke_through_the_executor, sync_through_the_executor

USERS = {"worker": "worker-secret", "producer": "producer-secret", "executor": "executor-secret"}
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # The plain listener's principal: the controller, the broker itself, and this test's admin.
    "super.users": "User:ANONYMOUS",
}
ALL, TOPIC, GROUP = AclOperation.ALL, ResourceType.TOPIC, ResourceType.GROUP


def allow(user: str, kind: ResourceType, name: str, operation: AclOperation, prefixed: bool = True) -> AclBinding:
    pattern = ResourcePatternType.PREFIXED if prefixed else ResourcePatternType.LITERAL
    return AclBinding(kind, name, pattern, f"User:{user}", "*", operation, AclPermissionType.ALLOW)


def documented_acls(d: Deployment) -> list[AclBinding]:
    """What docs/operations.md grants, for a deployment whose app id is ``d.name``."""
    return [
        # Workers: everything under the app id (internal, control, heartbeats, changelogs, their group).
        allow("worker", TOPIC, f"{d.name}-", ALL),
        allow("worker", GROUP, d.name, ALL),
        # Workers: read the commands, write state changes and dead letters, create them all.
        allow("worker", TOPIC, d.commands, ALL),
        allow("worker", TOPIC, d.state_changes, ALL, prefixed=False),
        allow("worker", TOPIC, d.dead_letters, ALL, prefixed=False),
        # Producers of commands: write them, nothing else.
        allow("producer", TOPIC, d.commands, AclOperation.WRITE),
        allow("producer", TOPIC, d.commands, AclOperation.DESCRIBE),
        # The Airflow executor: send tries and revokes, create a queue's topic, read the ends.
        *(
            allow("executor", TOPIC, d.commands, op)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE)
        ),
        *(
            allow("executor", TOPIC, topic, op, prefixed=False)
            for topic in (d.state_changes, d.dead_letters)
            for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ),
        allow("executor", GROUP, f"{d.name}-executor-", AclOperation.READ),
    ]


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    broker = start_broker(tmp_path_factory.mktemp("acl-kafka"), sasl_users=USERS, config=AUTHORIZER)
    yield broker
    broker.stop()


def sasl(broker, user: str) -> dict[str, str]:
    return {
        "AIRKAFKA_BROKER": f"kafka://{broker.sasl_bootstrap}",
        "AIRKAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "AIRKAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "AIRKAFKA_SASL_USERNAME": user,
        "AIRKAFKA_SASL_PASSWORD": USERS[user],
    }


async def produce(broker, user: str, topic: str) -> str:
    """What writing one record to ``topic`` as ``user`` gives: "written", or the error's name."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username=user,
        sasl_plain_password=USERS[user],
        request_timeout_ms=10_000,
    )
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b'{"forged": true}', key=b"k"), 15)
        return "written"
    except TopicAuthorizationFailedError:
        return "refused"
    except (KafkaError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        await producer.stop()


def test_a_worker_runs_on_its_acls_and_a_producer_writes_only_commands(acl_broker, tmp_path):
    deployment = Deployment(acl_broker.bootstrap, tmp_path)
    admin = AdminClient({"bootstrap.servers": acl_broker.bootstrap})
    for future in admin.create_acls(documented_acls(deployment)).values():
        future.result(30)
    worker = deployment.worker("acl", **sasl(acl_broker, "worker")).start().wait_ready(timeout=90)
    try:
        # The producer's command runs: its ACLs suffice, and the worker's too.
        assert asyncio.run(produce(acl_broker, "producer", deployment.commands)) == "written"
        deployment.send_commands(shell("allowed", "true"))
        assert deployment.state_changes_until_terminal(["allowed"])["allowed"][-1]["state"] == "success"
        written = {
            topic: asyncio.run(produce(acl_broker, "producer", topic))
            for topic in (
                deployment.heartbeats,
                deployment.internal,
                f"{deployment.name}-control",
                f"{deployment.name}-tasks-changelog",
                deployment.state_changes,
                deployment.dead_letters,
            )
        }
        assert set(written.values()) == {"refused"}, written
        print(f"\na producer may write {deployment.commands} only; refused: {', '.join(written)}")
    finally:
        worker.stop()
    # The executor, in Airflow's interpreter, on its own ACLs: it revokes a try and reads ends.
    executor_env = {
        **deployment.env(**sasl(acl_broker, "executor")),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRKAFKA_EXECUTOR_GROUP": f"{deployment.name}-executor-acl",
    }
    revoke_through_the_executor(deployment, executor_env, **sasl(acl_broker, "worker"))
    sync_through_the_executor(deployment, executor_env)

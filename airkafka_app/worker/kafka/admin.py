"""Questions to the Kafka cluster that Faust has no public API for, via aiokafka's admin client."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from airkafka_app.contract.kafka_connection import aiokafka_options, describe
from airkafka_app.contract.settings import Settings


class KafkaUnreachable(RuntimeError):
    """No bootstrap server answered: the cluster may be back later."""


class KafkaRefused(RuntimeError):
    """A broker answered and refused this client: its credentials or TLS setup are wrong."""


REFUSALS = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError, ssl.SSLError)


async def check_connection(settings: Settings) -> None:
    """Connect to the bootstrap servers once, so that a start that cannot work fails with one clear line."""
    options = {name: value for name, value in aiokafka_options(settings).items() if name != "bootstrap_servers"}
    errors = []
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            connection = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
        except REFUSALS as exc:
            raise KafkaRefused(f"Kafka at {server} refused the connection {describe(settings)}: {exc!r}") from None
        except (TimeoutError, OSError, KafkaError) as exc:
            errors.append(f"{server}: {exc!r}")
            continue
        connection.close()
        return
    raise KafkaUnreachable(f"no Kafka bootstrap server answered {describe(settings)}: {'; '.join(errors)}")


class TopicLayoutError(RuntimeError):
    """A topic exists with a partition count that breaks co-partitioning."""


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    # Its partition numbers must mean what the commands topic's mean: a task's command and its
    # records share a partition number.
    copartitioned: bool = True


TOPIC_ALREADY_EXISTS = 36
CREATED_WAIT_S = 30.0


async def _existing(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts of those of ``topics`` that exist. Listed before they are described: a
    metadata request that names a missing topic has the broker auto-create it, with its default
    partition count."""
    present = set(topics) & set(await admin.list_topics())
    if not present:
        return {}
    return {
        found["topic"]: len(found["partitions"])
        for found in await admin.describe_topics(sorted(present))
        if found["error_code"] == 0
    }


async def partition_count(settings: Settings, topic: str) -> int | None:
    """The topic's partition count, or None when it does not exist."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        return (await _existing(admin, [topic])).get(topic)
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, wanted: Mapping[str, TopicSpec]) -> None:
    """Create the missing topics, and check the partition counts of the co-partitioned ones.

    Whoever starts first creates them, workers or executor, so that no client's metadata request
    has the broker auto-create one with its default partition count.
    """
    admin = AIOKafkaAdminClient(**aiokafka_options(settings))
    await admin.start()
    try:
        found = await _existing(admin, wanted)
        missing = [
            NewTopic(name, spec.partitions, settings.replication, topic_configs=dict(spec.config))
            for name, spec in wanted.items()
            if name not in found
        ]
        if missing:
            response = await admin.create_topics(missing)
            for name, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {name!r}: error {code} {rest[0] if rest else ''}")
            deadline = asyncio.get_running_loop().time() + CREATED_WAIT_S
            while len(found := await _existing(admin, wanted)) < len(wanted):
                if asyncio.get_running_loop().time() > deadline:
                    raise KafkaError(
                        f"topics {sorted(set(wanted) - set(found))} not visible "
                        f"{CREATED_WAIT_S:g}s after their creation"
                    )
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    for name, spec in wanted.items():
        if spec.copartitioned and found[name] != spec.partitions:
            raise TopicLayoutError(
                f"topic {name!r} has {found[name]} partitions but AIRKAFKA_PARTITIONS is {spec.partitions}; "
                f"recreate the topic or set AIRKAFKA_PARTITIONS={found[name]}"
            )

"""Questions to the Kafka cluster that Faust has no public API for, via aiokafka's admin client."""
from __future__ import annotations

import asyncio
import ssl

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError, KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError,
)

from airkafka_app.kafka_connection import aiokafka_options, describe
from airkafka_app.settings import settings


class KafkaUnreachable(RuntimeError):
    """No bootstrap server answered: the cluster may be back later."""


class KafkaRefused(RuntimeError):
    """A broker answered and refused this client: its credentials or TLS setup are wrong."""


REFUSALS = (SaslAuthenticationFailed, AuthenticationFailedError, UnsupportedSaslMechanismError, ssl.SSLError)


async def check_connection() -> None:
    """Connect to the bootstrap servers once, so that a start that cannot work fails with one clear line."""
    options = {name: value for name, value in aiokafka_options().items() if name != "bootstrap_servers"}
    errors = []
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            connection = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
        except REFUSALS as exc:
            raise KafkaRefused(f"Kafka at {server} refused the connection {describe()}: {exc!r}") from None
        except (OSError, KafkaError, asyncio.TimeoutError) as exc:
            errors.append(f"{server}: {exc!r}")
            continue
        connection.close()
        return
    raise KafkaUnreachable(f"no Kafka bootstrap server answered {describe()}: {'; '.join(errors)}")


async def partition_count(topic: str) -> int | None:
    """The topic's partition count, or None when it does not exist."""
    admin = AIOKafkaAdminClient(**aiokafka_options())
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(description["partitions"]) if description["error_code"] == 0 else None

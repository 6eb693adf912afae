"""The Faust application: broker, RocksDB store, partitions and web server, from settings.

``create_app`` builds it; the assembly (``assembly.py``) then adds the worker's parts to it."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import faust
from aiokafka.errors import KafkaError
from faust.types import TP, ProducerT

from airkafka_app.contract.kafka_connection import ssl_context, uses_sasl
from airkafka_app.contract.printable import install_printable_logs
from airkafka_app.contract.settings import Settings
from airkafka_app.worker.kafka.admin import (
    KafkaRefused,
    KafkaUnreachable,
    TopicLayoutError,
    TopicSpec,
    check_connection,
    ensure_topics,
)
from airkafka_app.worker.kafka.transport import Transport
from airkafka_app.worker.runners import shell_runner
from airkafka_app.worker.runners.environment import scrub

if TYPE_CHECKING:
    from airkafka_app.worker.parts import Parts

log = logging.getLogger(__name__)


def _credentials(settings: Settings) -> faust.auth.Credentials | None:
    if uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism,
            ssl_context=ssl_context(settings),
        )
    context = ssl_context(settings)
    return faust.SSLCredentials(context) if context else None


class App(faust.App):
    # The worker's parts, as the assembly wired them; views, commands and the worker class reach
    # them here, as Faust's own reach ``app.tables``.
    parts: Parts

    def __init__(self, settings: Settings, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        install_printable_logs()
        self._producer_starting = asyncio.Lock()
        self._actives: tuple[int, frozenset[TP]] = (-1, frozenset())

    def assigned_actives(self) -> frozenset[TP]:
        """The active partitions of the group's current generation, built once per generation:
        Faust builds the set anew on each call. A generation's assignment is set before its id is
        known, so ask only out of a rebalance."""
        generation = self.consumer_generation_id
        if self._actives[0] != generation:
            self._actives = (generation, frozenset(self.assignor.assigned_actives()))
        return self._actives[1]

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def maybe_start_producer(self) -> ProducerT:
        """Faust's, without mode's ``stampede`` around it, whose wrapper yields to the loop three
        times per call; Faust calls it for each message it sends. The producer's sender woke
        between the messages of one batch and sent them one request, and one round trip, apiece."""
        async with self._producer_starting:
            await self.producer.maybe_start()
        return self.producer

    async def on_first_start(self) -> None:
        """Stop at once, in one line, when Kafka cannot be used, rather than deep in Faust's start.

        Exit 78 (EX_CONFIG) when a broker refused the credentials or TLS setup: restarting cannot
        help, so a supervisor should not restart on it. Exit 69 (EX_UNAVAILABLE) when none answered.
        """
        settings = self.settings
        try:
            await check_connection(settings)
            await ensure_topics(settings, self._topics_needed())
        except (KafkaRefused, TopicLayoutError, KafkaError) as exc:
            log.error("%s", exc)
            raise SystemExit(os.EX_CONFIG) from None
        except KafkaUnreachable as exc:
            log.error("%s", exc)
            raise SystemExit(os.EX_UNAVAILABLE) from None
        if removed := scrub(settings.task_env_deny):
            log.info("tasks will not inherit these variables of the worker's environment: %s", ", ".join(removed))
        for kind, runner in sorted(self.parts.runners.items()):
            if runner.disabled is not None:
                log.warning("%s runner disabled: %s; %s commands will be dead-lettered", kind, runner.disabled, kind)
        shell = shell_runner(self.parts.runners)
        try:
            log.info("tasks are contained by %s", await shell.start())
        except OSError as exc:
            log.error("tasks cannot be contained: %s", exc)
            raise SystemExit(os.EX_CONFIG) from None
        if not settings.cluster_key:
            log.warning(
                "AIRKAFKA_CLUSTER_KEY is empty: reports, recovery requests, control orders and heartbeats "
                "are not authenticated, and whoever may write their topics speaks for the workers"
            )
        for warning in shell.start_up_warnings() if shell.disabled is None else ():
            log.warning("%s", warning)
        await super().on_first_start()

    def _topics_needed(self) -> dict[str, TopicSpec]:
        """Every topic the worker reads or writes, created before any client asks for its metadata.
        Faust would create the changelogs only after subscribing, and its first assignment then
        left out the ones the consumer had not seen yet."""
        # Kafka's default message size, set on the topic, so that a broker with a smaller one
        # still takes any record (task_record.MAX_RECORD_BYTES).
        settings = self.settings
        size = {"max.message.bytes": "1048588"}
        ours = TopicSpec(settings.partitions, size)
        shared = TopicSpec(settings.partitions, size, copartitioned=False)
        changelog = TopicSpec(settings.partitions, {**size, "cleanup.policy": "compact"})
        return {
            **{settings.commands_topic_for(queue): ours for queue in settings.queues},
            **{settings.internal_topic_for(queue): ours for queue in settings.queues},
            **{table.changelog_topic_name: changelog for table in self.tables.values()},
            # Its writers and readers pick a record's partition by the partition count given here.
            settings.logs_topic: TopicSpec(
                settings.partitions, {**size, "retention.ms": str(int(settings.log_retention_s * 1000))}
            ),
            **{
                name: shared
                for name in (
                    settings.state_changes_topic,
                    settings.dead_letters_topic,
                    settings.heartbeats_topic,
                    settings.control_topic,
                )
            },
        }


def create_app(settings: Settings) -> App:
    """The Faust app of a worker with these settings, without its parts."""
    return App(
        settings,
        settings.app_id,
        broker=settings.broker,
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        origin="airkafka_app",
        # Faust's own pages would show every table's raw records, commands with their env and
        # Airflow tokens included; the app's views show them redacted.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        # For Faust's own sends (dead letters, heartbeats, reports): the table publisher's batches
        # are closed when handed over, and go out at once.
        producer_linger=settings.producer_linger_s,
        # A table publisher's batch under load holds thousands of records; at Faust's 16 KiB per
        # partition the producer waits a round trip for every few dozen of them.
        producer_max_batch_size=256 * 1024,
        # Faust checks co-partitioning against the consumer's metadata, which may have seen a
        # just-created changelog topic as having 0 partitions; refresh it within seconds, not minutes.
        consumer_metadata_max_age_ms=5000,
        # A killed worker's partitions move after the session timeout; Faust's 60 s default would
        # make finding its tasks slower than the minute we promise.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        broker_max_poll_interval=settings.max_poll_interval_s,
    )

"""Orders from one worker to another, by name, on ``<app id>-control``, read by every worker.

After a rebalance a task may run on a worker that no longer owns its partition: the run stays
where it started, and its records travel to the owner as reports. A cancel reaches the owner,
which sends it on here to the worker its record names; that worker kills the run, whose end
then reaches the owner as a report. Only workers may write this topic (docs/contract.md), and
each order is signed with the cluster key.
"""

from __future__ import annotations

import json
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from airkafka_app import topics
from airkafka_app.application import app
from airkafka_app.contract import signing
from airkafka_app.contract.commands import json_object
from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.settings import settings
from airkafka_app.kafka.admin import partition_count
from airkafka_app.kafka.signed import signed
from airkafka_app.worker_pool import pool

log = logging.getLogger(__name__)


async def send_cancel(worker: str, target: str, reason: str) -> None:
    order = json.dumps({"to": worker, "cancel": target, "reason": reason}).encode()
    await topics.control.send(**signed(topics.control, worker.encode(), order))


def parse_order(value: bytes | None) -> tuple[str, str, str] | None:
    """(to, cancel, reason) of an order, or None for anything else."""
    if (order := json_object(value)) is None:
        return None
    fields = (order.get("to"), order.get("cancel"), order.get("reason"))
    return fields if all(isinstance(field, str) and 0 < len(field) <= 1024 for field in fields) else None


class Control(Service):
    """Reads the control topic without a group, from its end when the worker starts: an order
    sent before then is for a run this worker cannot hold."""

    @Service.task
    async def _read(self) -> None:
        consumer = AIOKafkaConsumer(**aiokafka_options(), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [
                TopicPartition(settings.control_topic, p)
                for p in range(await partition_count(settings.control_topic) or 0)
            ]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            while not self.should_stop:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    for message in messages:
                        self._obey(message)
        finally:
            await consumer.stop()

    def _obey(self, message) -> None:
        if not signing.verified(settings.cluster_key, message.topic, message.key, message.value, message.headers):
            log.warning("control %d@%d skipped: not signed with the cluster key", message.partition, message.offset)
            return
        if (order := parse_order(message.value)) is None:
            log.warning('control %d@%d skipped: not {"to", "cancel", "reason"}', message.partition, message.offset)
            return
        to, target, reason = order
        if to == settings.worker_name and pool.cancel(target, reason):
            log.info("task %s cancelled here at its owner's request: %s", target, reason)


control = Control()


@app.task
async def start_control() -> None:
    await app.add_runtime_dependency(control)

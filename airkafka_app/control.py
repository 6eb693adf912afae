"""Orders from one worker or operator to the workers, on ``<app id>-control``, read by every
worker (``contract/orders.py``): a cancel sent on to the worker that runs the task, and the live
changes an operator makes through any worker's ``POST /control/`` (maintenance, pausing a queue,
concurrency). While a worker is in maintenance or a queue is paused, intake records the new
tasks ``queued``, saying why, without running them; once the order is lifted, the sweep of
liveness.py has them run, as it does with a lost worker's. Only workers may write the topic (docs/operations.md), and each order is signed
with the cluster key.

After a rebalance a task may run on a worker that no longer owns its partition: the run stays
where it started, and its records travel to the owner as reports. A cancel reaches the owner,
which sends it on here to the worker its record names; that worker kills the run, whose end
then reaches the owner as a report.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from airkafka_app import topics
from airkafka_app.application import app
from airkafka_app.contract import signing
from airkafka_app.contract.kafka_connection import aiokafka_options
from airkafka_app.contract.orders import Cancel, Mode, Order, apply, encode_order, order_key, parse_order
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import settings
from airkafka_app.kafka.admin import partition_count
from airkafka_app.kafka.signed import signed
from airkafka_app.kafka.transport import seek_to_start
from airkafka_app.worker_pool import pool

log = logging.getLogger(__name__)


async def send_order(order: Order) -> None:
    await topics.control.send(**signed(topics.control, order_key(order), encode_order(order)))


async def send_cancel(worker: str, target: str, reason: str) -> None:
    await send_order(Cancel(worker, target, reason))


class Control(Service):
    """Reads the control topic without a group, from its start as the worker starts: the live
    changes made before then still hold; the cancels sent before then are for runs this worker
    cannot hold, and are skipped."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = Mode(concurrency=settings.concurrency)
        # Set once the orders sent before the worker started have been read: a maintenance or a
        # pause then holds from the first command on.
        self.caught_up = asyncio.Event()

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
            ends = await consumer.end_offsets(tps)
            await seek_to_start(consumer, tps)
            while not self.should_stop:
                if not self.caught_up.is_set() and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                    self.caught_up.set()
                for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                    for message in messages:
                        self._obey(message, new=message.offset >= ends[tp])
        finally:
            await consumer.stop()

    def _obey(self, message, new: bool) -> None:
        if not signing.verified(settings.cluster_key, message.topic, message.key, message.value, message.headers):
            log.warning("control %d@%d skipped: not signed with the cluster key", message.partition, message.offset)
            return
        if (order := parse_order(message.value)) is None:
            log.warning("control %d@%d skipped: not an order (contract/orders.py)", message.partition, message.offset)
            return
        if isinstance(order, Cancel):
            if new and order.to == settings.worker_name and pool.cancel(order.target, order.reason):
                log.info("task %s cancelled here at its owner's request: %s", order.target, order.reason)
            return
        if (changed := apply(self.mode, order, settings.worker_name)) != self.mode:
            self._become(changed)

    def _become(self, mode: Mode) -> None:
        if mode.concurrency != self.mode.concurrency:
            pool.resize(mode.concurrency)
        self.mode = mode
        log.info(
            "now: concurrency %d; %s; queues paused: %s",
            mode.concurrency,
            f"in maintenance: {printable(mode.maintenance)}" if mode.maintenance is not None else "not in maintenance",
            ", ".join(sorted(mode.paused)) or "none",
        )


control = Control()


@app.task
async def start_control() -> None:
    await app.add_runtime_dependency(control)

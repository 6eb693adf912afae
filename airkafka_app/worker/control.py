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

import faust
from aiokafka import TopicPartition
from mode import Service

from airkafka_app.contract import signing
from airkafka_app.contract.orders import Cancel, Mode, Order, apply, encode_order, order_key, parse_order
from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import Settings
from airkafka_app.worker.kafka.admin import partition_count
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.kafka.signed import signed
from airkafka_app.worker.kafka.transport import seek_to_start
from airkafka_app.worker.pool import WorkerPool

log = logging.getLogger(__name__)


class Control(Service):
    """Reads the control topic without a group, from its start as the worker starts: the live
    changes made before then still hold; the cancels sent before then are for runs this worker
    cannot hold, and are skipped. Sends orders on it too."""

    def __init__(self, settings: Settings, topic: faust.TopicT, pool: WorkerPool, **kwargs) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._topic = topic
        self._pool = pool
        self.mode = Mode(concurrency=settings.concurrency)
        # Set once the orders sent before the worker started have been read: a maintenance or a
        # pause then holds from the first command on.
        self.caught_up = asyncio.Event()

    async def send(self, order: Order) -> None:
        await self._topic.send(**signed(self._settings.cluster_key, self._topic, order_key(order), encode_order(order)))

    async def send_cancel(self, worker: str, target: str, reason: str) -> None:
        await self.send(Cancel(worker, target, reason))

    @Service.task
    async def _read(self) -> None:
        settings = self._settings
        consumer = group_less_consumer(settings)
        await consumer.start()
        try:
            tps = [
                TopicPartition(settings.control_topic, p)
                for p in range(await partition_count(settings, settings.control_topic) or 0)
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
        settings = self._settings
        if not signing.verified(settings.cluster_key, message.topic, message.key, message.value, message.headers):
            log.warning("control %d@%d skipped: not signed with the cluster key", message.partition, message.offset)
            return
        if (order := parse_order(message.value)) is None:
            log.warning("control %d@%d skipped: not an order (contract/orders.py)", message.partition, message.offset)
            return
        if isinstance(order, Cancel):
            if new and order.to == settings.worker_name and self._pool.cancel(order.target, order.reason):
                log.info("task %s cancelled here at its owner's request: %s", order.target, order.reason)
            return
        if (changed := apply(self.mode, order, settings.worker_name)) != self.mode:
            self._become(changed)

    def _become(self, mode: Mode) -> None:
        if mode.concurrency != self.mode.concurrency:
            self._pool.resize(mode.concurrency)
        self.mode = mode
        log.info(
            "now: concurrency %d; %s; queues paused: %s",
            mode.concurrency,
            f"in maintenance: {printable(mode.maintenance)}" if mode.maintenance is not None else "not in maintenance",
            ", ".join(sorted(mode.paused)) or "none",
        )

"""Cancels read ahead of intake while intake waits for admission.

Intake reads each queue's commands in order, and stops when the admission bound is full
(pool.py), so that the backlog stays in Kafka rather than in memory. A cancel behind that
backlog would wait until a run ends, which may take a task's whole timeout. So while intake
waits, the lookout reads on, from the offsets last committed, without a group, and acts on each
cancel as intake would have in order:

- a run held here for a command that comes before the cancel ends ``cancelled`` at once;
- a task whose command intake has not read yet is noted (``early_cancels.py``): when intake reads
  that command before the cancel, it records the task ``cancelled`` without running it.

Anything else (a malformed or mis-keyed cancel, a task of another worker) waits for intake,
which reads every cancel again in order; acting twice on one cancel changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from mode import Service

from airkafka_app.contract.commands import CANCEL, InvalidCommand, decode_command
from airkafka_app.contract.settings import Settings
from airkafka_app.worker.core.early_cancels import EarlyCancels
from airkafka_app.worker.core.task_rules import reserved_header
from airkafka_app.worker.kafka.clients import group_less_consumer
from airkafka_app.worker.kafka.transport import committed_offset, seek_to_start
from airkafka_app.worker.pool import WorkerPool

if TYPE_CHECKING:
    from airkafka_app.worker.queues import Queue

log = logging.getLogger(__name__)

# How long intake waits for admission before the lookout reads ahead: a burst's brief waits cost
# the broker no second read.
LOOK_AFTER_S = 0.5


class CancelLookout(Service):
    def __init__(
        self, settings: Settings, app: faust.App, queues: Mapping[str, Queue], pool: WorkerPool, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._app = app
        self._pool = pool
        self.early = EarlyCancels()
        self._topics = {queue.topic_name for queue in queues.values()}

    @Service.task
    async def _look(self) -> None:
        pool = self._pool
        consumer = group_less_consumer(self._settings)
        await consumer.start()
        try:
            while not self.should_stop:
                await pool.admission_full.wait()
                await asyncio.sleep(LOOK_AFTER_S)
                if pool.admission_full.is_set():
                    await self._read_ahead(consumer)
        finally:
            await consumer.stop()

    async def _read_ahead(self, consumer: AIOKafkaConsumer) -> None:
        """While intake waits: the cancels of this worker's partitions, from their committed offsets."""
        assigned: set[TopicPartition] = set()
        app = self._app
        try:
            while self._pool.admission_full.is_set() and not self.should_stop:
                now = {TopicPartition(tp.topic, tp.partition) for tp in app.consumer.assignment()}
                now = {tp for tp in now if tp.topic in self._topics}
                if now != assigned:
                    consumer.assign(list(now))
                    for tp in now - assigned:
                        if (offset := committed_offset(app.consumer, tp)) is None:
                            await seek_to_start(consumer, [tp])
                        else:
                            consumer.seek(tp, offset)
                    assigned = now
                if not assigned:
                    return
                for messages in (await consumer.getmany(timeout_ms=200)).values():
                    for message in messages:
                        self._read(message)
        finally:
            consumer.unsubscribe()

    def _read(self, message: ConsumerRecord) -> None:
        # Most commands are not cancels: they are not decoded.
        if message.value is None or b'"cancel"' not in message.value:
            return
        try:
            command = decode_command(message.key, message.value)
        except InvalidCommand:
            return
        if (
            command.kind != CANCEL
            or message.key != command.routing_key.encode()
            or reserved_header([name for name, _ in message.headers or ()])
        ):
            return
        target, reason = command.args["target"], f"cancelled by {command.id}"
        if self._pool.cancel_ahead(target, reason, message.topic, message.partition, message.offset):
            log.info("cancel %s read ahead of intake: task %s ended", command.id, target)
        elif self.early.note(target, message.partition, message.offset, reason):
            log.debug("cancel %s read ahead of intake: task %s not read yet", command.id, target)

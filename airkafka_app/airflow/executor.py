"""KafkaExecutor: Airflow's tasks run by AirKafka workers, over Kafka.

    [core] executor = airkafka_app.executor.KafkaExecutor

Runs in Airflow's interpreter and never imports Faust. It publishes each workload (a task's
try, a callback, a connection test) as an ``airflow`` command and mirrors the workers' terminal
state changes, and the dead letters of its own commands, back to Airflow. Command ids are derived from task-instance keys, so it keeps no
state of its own that a restart could lose.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

from airflow.executors.base_executor import BaseExecutor
from airflow.utils.state import TaskInstanceState
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from airkafka_app.airflow import ends
from airkafka_app.contract import airflow_tasks
from airkafka_app.contract.commands import CANCEL, MAX_POOL_SLOTS, MAX_PRIORITY, Command
from airkafka_app.contract.kafka_connection import confluent_options, confluent_producer_options, describe
from airkafka_app.contract.settings import DEFAULT_QUEUE, Settings, for_team
from airkafka_app.contract.states import State

FLUSH_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# Ends of tries this executor does not track (yet): a scheduler that restarts adopts its tries
# after reading some of them. Kept for an hour, and the last 10,000 at most.
UNCLAIMED_TTL_S = 3600.0
UNCLAIMED_MAX = 10_000


def _command_id(key: Any) -> str:
    return airflow_tasks.command_id(key.dag_id, key.task_id, key.run_id, key.map_index, key.try_number)


class _Sent(NamedTuple):
    """A workload this executor sent, by its command id: what its end changes in Airflow."""

    key: Any  # a TaskInstanceKey, CallbackKey or ConnectionTestKey
    proof: str | None  # of the command's external_executor_id (airflow_tasks.PROOF)
    success: Any  # the workload's success_state
    failure: Any  # and its failure_state
    is_try: bool  # a task's try, which a cancel does not fail


class KafkaExecutor(BaseExecutor):
    pre_assigns_external_executor_id = True
    # Every workload Airflow 3.3 sends runs on a worker, as LocalExecutor runs it: a task's try,
    # a callback (a missed deadline's, say) and a connection test.
    supports_callbacks = True
    supports_connection_test = True
    # One executor per team, each with its team's topics, cluster and queues (docs/airflow.md).
    supports_multi_team = True

    def start(self) -> None:
        # A team's executor reads its team's [airkafka] options only; the global one, the settings.
        self.settings: Settings = (
            for_team(lambda key: self.conf.get("airkafka", key, fallback=None)) if self.team_name else Settings()
        )
        self._last_error: KafkaError | None = None
        # Command id -> (state, detail, when read, proof) of ends read for tries not tracked yet.
        self._unclaimed: OrderedDict[str, tuple[str, str, float, str | None]] = OrderedDict()
        # Command id -> each workload in flight; only an end that carries its proof is its end.
        self._sent: dict[str, _Sent] = {}
        self._topics: set[str] = set()
        # Delivery is confirmed: a command the broker does not take within the timeout fails
        # its try at once. No topic is created by a send: a queue's topic comes from
        # _ensure_topic, with the workers' partition count.
        self.producer = Producer(
            {
                **confluent_producer_options(self.settings),
                "linger.ms": 5,
                "error_cb": self._remember_error,
                "message.timeout.ms": int(self.settings.executor_delivery_timeout_s * 1000),
                "allow.auto.create.topics": False,
            }
        )
        self._check_connection()
        self.admin = AdminClient(confluent_options(self.settings))
        for topic in (self.settings.state_changes_topic, self.settings.dead_letters_topic):
            self._ensure_topic(topic, copartitioned=False)
        for queue in self.settings.queues:  # others as their first task comes
            self._ensure_topic(self.settings.commands_topic_for(queue))
        # A group per scheduler: a restarted scheduler resumes where it stopped, and a second
        # scheduler does not take half the partitions, and so half the results, from the first.
        self.consumer = Consumer(
            {
                **confluent_options(self.settings),
                "group.id": self.settings.executor_consumer_group,
                "enable.auto.commit": True,
            }
        )
        self.consumer.subscribe(
            [self.settings.state_changes_topic, self.settings.dead_letters_topic],
            on_assign=self._from_committed_or_lookback,
        )

    def _remember_error(self, error: KafkaError) -> None:
        self._last_error = error

    def _check_connection(self) -> None:
        """Refuse to start, with the broker's reason, rather than fail every task later."""
        try:
            self.producer.list_topics(timeout=CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            self.producer.poll(0)  # serves error_cb, which holds the reason, such as a SASL authentication error
            reason = self._last_error.str() if self._last_error else str(exc)
            raise KafkaException(
                f"KafkaExecutor cannot use Kafka at {self.settings.broker} {describe(self.settings)}: {reason}"
            ) from None

    def _from_committed_or_lookback(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A partition this group has not read yet is read from AIRKAFKA_EXECUTOR_LOOKBACK_S ago,
        not from the topic's start: a new scheduler host needs the ends of tries it adopts."""
        try:
            committed = consumer.committed(partitions, timeout=CONNECT_TIMEOUT_S)
            since = int((time.time() - self.settings.executor_lookback_s) * 1000)
            fresh = [TopicPartition(p.topic, p.partition, since) for p in committed if p.offset < 0]
            found = {
                (p.topic, p.partition): p.offset
                for p in (consumer.offsets_for_times(fresh, timeout=CONNECT_TIMEOUT_S) if fresh else [])
            }
        except KafkaException as exc:
            # An assignment that arrives while end() closes the consumer, or a broker that did not
            # answer: confluent-kafka then assigns the partitions at their committed offsets.
            if exc.args[0].code() != KafkaError._DESTROY:
                self.log.warning("partitions assigned without the lookback: %s", exc.args[0].str())
            return
        consumer.assign(
            [TopicPartition(p.topic, p.partition, found.get((p.topic, p.partition), p.offset)) for p in committed]
        )

    def _ensure_topic(self, topic: str, copartitioned: bool = True) -> None:
        """Create the topic if it is missing, with the workers' partition count; ValueError when a
        commands topic has another, which no worker would serve."""
        if topic in self._topics:
            return
        new = NewTopic(
            topic,
            num_partitions=self.settings.partitions,
            replication_factor=self.settings.replication,
            config={"max.message.bytes": "1048588"},
        )
        refused = None
        try:
            self.admin.create_topics([new], request_timeout=CONNECT_TIMEOUT_S)[topic].result(CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                refused = exc  # an executor may lack the right to create it: the workers have made it
            elif exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while not (found := len(self.admin.list_topics(topic, timeout=CONNECT_TIMEOUT_S).topics[topic].partitions)):
            if time.monotonic() > deadline:  # a new topic's metadata has not reached this broker yet
                raise refused or KafkaException(
                    f"topic {topic!r} not visible {CONNECT_TIMEOUT_S:g}s after its creation"
                )
            time.sleep(0.05)
        if copartitioned and found != self.settings.partitions:
            raise ValueError(
                f"topic {topic!r} has {found} partitions but AIRKAFKA_PARTITIONS is {self.settings.partitions}"
            )
        self._topics.add(topic)

    def _topic(self, queue: str | None) -> str:
        """The commands topic of the queue, served by the workers listing it in AIRKAFKA_QUEUES."""
        topic = self.settings.commands_topic_for(queue or DEFAULT_QUEUE)
        self._ensure_topic(topic)
        return topic

    def _process_workloads(self, workloads: Sequence[Any]) -> None:
        """Send each workload and count it running at once: the scheduler never waits for the
        broker here. A command that is not delivered fails its workload when sync() learns of it."""
        for workload in workloads:
            key = workload.key
            for queued in (self.queued_tasks, self.queued_callbacks, self.queued_connection_tests):
                queued.pop(key, None)
            try:
                self._send(workload)
            except (KafkaException, BufferError, ValueError) as exc:
                self.change_state(key, workload.failure_state, info=f"command not sent to Kafka: {exc}")
                continue
            self.running.add(key)
        self.producer.poll(0)

    def _send(self, workload: Any) -> None:
        payload = workload.model_dump_json()
        command_id = airflow_tasks.workload_id(payload)
        if command_id is None:
            raise ValueError(f"{type(workload).__name__} is no workload a worker runs")
        ti = getattr(workload, "ti", None)
        # Airflow 3.3's scheduler gives each queued try an id; other workloads get one here.
        executor_id = (ti.external_executor_id if ti is not None else None) or str(uuid.uuid4())
        command = airflow_tasks.workload_command(
            command_id,
            payload,
            executor_id,
            # Clamped: Airflow allows any priority, and a pool's slots beyond a worker's count.
            max(-MAX_PRIORITY, min(MAX_PRIORITY, getattr(ti, "priority_weight", 0) or 0)),
            max(1, min(MAX_POOL_SLOTS, getattr(ti, "pool_slots", 1) or 1)),
        )
        queue = ti.queue if ti is not None else getattr(workload, "queue", None)
        self._sent[command_id] = _Sent(
            workload.key,
            airflow_tasks.proof(executor_id),
            workload.success_state,
            workload.failure_state,
            ti is not None,
        )
        try:
            self.producer.produce(
                self._topic(queue),
                key=command.id.encode(),
                value=command.encode(),
                on_delivery=partial(self._delivered, command_id),
            )
        except BaseException:
            del self._sent[command_id]
            raise

    def _delivered(self, command_id: str, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            sent = self._sent.pop(command_id, None)
            self.log.error("command %s not delivered: %s", command_id, error.str())
            if sent is not None and sent.key in self.running:
                self.change_state(sent.key, sent.failure, info=f"command not delivered to Kafka: {error.str()}")

    # The scheduler counts free slots at the start of its pass and calls sync() at its end, in
    # heartbeat(); a pass that only reads task ends counts as idle and sleeps
    # [scheduler] scheduler_idle_sleep_time. Reading the ends first lets the pass that frees a
    # slot also fill it.
    @property
    def slots_available(self) -> int:
        self.sync()
        return super().slots_available

    @property
    def slots_occupied(self) -> int:
        self.sync()
        return super().slots_occupied

    def sync(self) -> None:
        """Mirror the ends of the tries this executor runs: terminal state changes, dead letters of
        its commands, and commands the broker did not take."""
        self.producer.poll(0)  # delivery reports
        while messages := self.consumer.consume(num_messages=1000, timeout=0):
            for message in messages:
                if message.error():
                    self.log.warning("read error: %s", message.error())
                elif message.topic() == self.settings.dead_letters_topic:
                    self._dead_letter(message)
                else:
                    self._state_change(message)

    def _in_flight(self, command_id: str) -> _Sent | None:
        sent = self._sent.get(command_id)
        return sent if sent is not None and sent.key in self.running else None

    def _state_change(self, message: Message) -> None:
        try:
            end = ends.end_of(message.value())
        except (TypeError, ValueError, KeyError) as exc:  # a tombstone, or anything but a state change
            self.log.warning("state change %d@%d skipped: %r", message.partition(), message.offset(), exc)
            return
        if end is None:
            return
        if (sent := self._in_flight(end.command_id)) is not None:
            if not ends.proved(end.proof, sent.proof):
                self.log.warning("state change %s of %s skipped: not from the command sent for it", end.state, sent.key)
                return
            self._report(end.command_id, end.state, end.detail)
        elif end.command_id.startswith(airflow_tasks.PREFIX):
            self._unclaimed[end.command_id] = (end.state.value, end.detail, time.monotonic(), end.proof)
            self._unclaimed.move_to_end(end.command_id)
            while len(self._unclaimed) > UNCLAIMED_MAX or (
                self._unclaimed and next(iter(self._unclaimed.values()))[2] < time.monotonic() - UNCLAIMED_TTL_S
            ):
                self._unclaimed.popitem(last=False)

    def _dead_letter(self, message: Message) -> None:
        """A command of this executor refused by a worker fails its workload at once, with the reason."""
        command_id = (message.key() or b"").decode(errors="replace")
        if (sent := self._in_flight(command_id)) is None:
            return
        try:
            refusal = ends.refusal_of(message.value())
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            self.log.warning("dead letter %d@%d skipped: %r", message.partition(), message.offset(), exc)
            return
        if refusal.cut:
            self.log.warning(
                "dead letter %d@%d for %s skipped: its value was cut", message.partition(), message.offset(), sent.key
            )
        elif ends.proved(refusal.proof, sent.proof):
            del self._sent[command_id]
            self.change_state(sent.key, sent.failure, info=f"refused by AirKafka: {refusal.error}")

    def _report(self, command_id: str, state: State, detail: str) -> None:
        sent = self._sent.pop(command_id)
        match ends.verdict(state, sent.is_try):
            case ends.Verdict.SUCCESS:
                self.change_state(sent.key, sent.success, info=detail)
            case ends.Verdict.FAILURE:
                self.change_state(sent.key, sent.failure, info=detail)
            case ends.Verdict.RELEASE:
                self.running.discard(sent.key)

    def revoke_task(self, *, ti: Any) -> None:
        """Cancel the try on its worker, waiting or running. Never raises, as the scheduler expects."""
        target = _command_id(ti.key)
        cancel = Command(f"revoke-{target}", CANCEL, {"target": target})
        try:
            self.producer.produce(
                self._topic(ti.queue),
                key=target.encode(),
                value=cancel.encode(),
                on_delivery=partial(self._cancel_delivered, ti.key),
            )
            self.producer.poll(0)
        except (KafkaException, BufferError, ValueError):
            self.log.exception("cancel for %s not sent", ti.key)
        self.queued_tasks.pop(ti.key, None)
        self.running.discard(ti.key)
        self._sent.pop(target, None)

    def _cancel_delivered(self, key: Any, error: KafkaError | None, _: Message) -> None:
        if error is not None:
            self.log.error("cancel for %s not delivered: %s", key, error.str())

    def try_adopt_task_instances(self, tis: Sequence[Any]) -> Sequence[Any]:
        """Adopt every task that was sent to Kafka; report at once those whose end was read already."""
        not_adopted = []
        for ti in tis:
            if not ti.external_executor_id:
                not_adopted.append(ti)
                continue
            command_id = _command_id(ti.key)
            proof = airflow_tasks.proof(ti.external_executor_id)
            self._sent[command_id] = _Sent(ti.key, proof, TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, True)
            self.running.add(ti.key)
            ended = self._unclaimed.pop(command_id, None)
            if ended is not None and ends.proved(ended[3], proof):
                self._report(command_id, State(ended[0]), ended[1])
        return not_adopted

    def end(self) -> None:
        if left := self.producer.flush(FLUSH_TIMEOUT_S):
            self.log.error("%d commands not delivered within %ss", left, FLUSH_TIMEOUT_S)
        self.consumer.close()

    def terminate(self) -> None:
        self.end()

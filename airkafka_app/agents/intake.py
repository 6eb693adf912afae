"""The intake agents, one per queue: each command message becomes a task, or a dead letter saying why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from faust.types import EventT, StreamT
from mode import CrashingSupervisor

from airkafka_app import task_metrics, topics
from airkafka_app.application import app
from airkafka_app.cancel_lookout import lookout
from airkafka_app.contract import airflow_tasks, signing
from airkafka_app.contract.commands import (
    CANCEL,
    FORCE,
    REPLAY_HEADER,
    Command,
    InvalidCommand,
    decode_command,
    shown,
)
from airkafka_app.contract.dead_letters import MAX_ERROR_CHARS, MAX_KEY_BYTES, dead_letter, encode_dead_letter
from airkafka_app.contract.internal import Recover, Report, decode_internal
from airkafka_app.contract.settings import settings
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import MAX_RECORD_BYTES, TaskRecord
from airkafka_app.control import control, send_cancel
from airkafka_app.liveness import is_orphan
from airkafka_app.queues import Queue, queues
from airkafka_app.runners import Runner, registry, runner_for
from airkafka_app.tables.counters import DEAD_LETTERS, DUPLICATES
from airkafka_app.task_rules import is_stale, recovery, reserved_header, why_not_run, with_worker_limits
from airkafka_app.worker_pool import Run, pool

log = logging.getLogger(__name__)

runners = registry()


async def _reject(queue: Queue, event: EventT, reason: str, unexpected: bool = False) -> None:
    message = event.message
    letter = dead_letter(reason, message.topic, message.partition, message.offset, message.key, message.value)
    # Keyed by a prefix of the message's key: the whole key may be as large as the message.
    await topics.dead_letters.send(key=(message.key or b"")[:MAX_KEY_BYTES] or None, value=encode_dead_letter(letter))
    queue.counters.increment(DEAD_LETTERS, message.partition)
    internal = message.topic == queue.internal_topic_name
    task_metrics.DEAD_LETTERS.labels(queue.name, task_metrics.dead_letter_class(reason, internal, unexpected)).inc()
    log.warning("dead letter %s:%d@%d: %s", message.topic, message.partition, message.offset, reason[:MAX_ERROR_CHARS])


async def _cancel(queue: Queue, command: Command, event: EventT) -> None:
    """Cancel the target, which this partition owns: its run here; or its run on the worker its
    record names, where it stayed after a rebalance; or else its record."""
    target = command.args["target"]
    current = queue.tasks.load(target)
    if current is None or current.state.is_terminal:
        log.info(
            "cancel %s: task %s is %s, nothing to cancel",
            command.id,
            target,
            current.state.value if current else "unknown",
        )
        return
    lookout.early.reached(target)
    reason = f"cancelled by {command.id}"
    if pool.cancel(target, reason):
        return
    waits_in_table = current.state is State.UP_FOR_RETRY and current.retry_at is not None
    if current.worker not in (None, settings.worker_name) and not waits_in_table and not is_orphan(current, queue.name):
        # That worker ends the run, and its end comes back as a report. Should the run be
        # recovered instead, the mark makes the recovery end it.
        queue.tasks.store(replace(current, cancel_requested_by=command.id), event)
        await send_cancel(current.worker, target, reason)
        log.info("cancel %s: task %s runs on %s, which is asked to end it", command.id, target, current.worker)
        return
    queue.tasks.transition(target, State.CANCELLED, event, exit_code=None, detail=reason)


def _topics_without_metadata(queue: Queue) -> list[str]:
    names = (
        queue.topic_name,
        queue.internal_topic_name,
        queue.tasks.table.changelog_topic_name,
        queue.counters.table.changelog_topic_name,
    )
    return [name for name in names if app.consumer.topic_partitions(name) == 0]


async def _await_topic_metadata(queue: Queue) -> None:
    """Wait out metadata that still shows a new topic with 0 partitions.

    Faust would take it for a co-partitioning mismatch and stop the worker. It happens right
    after start-up, before the consumer's next metadata refresh.
    """
    while missing := _topics_without_metadata(queue):
        log.info("waiting for metadata of %s", ", ".join(missing))
        await asyncio.sleep(0.5)


async def accept(queue: Queue, event: EventT) -> None:
    """Handle one message. Whatever it holds and whatever its handling raises, it ends as a task,
    a change to one, or a dead letter with the reason, and the worker goes on."""
    await _await_topic_metadata(queue)
    try:
        if event.message.topic == queue.internal_topic_name:
            message = event.message
            if not signing.verified(settings.cluster_key, message.topic, message.key, message.value, message.headers):
                raise InvalidCommand("internal message not signed with the cluster key (AIRKAFKA_CLUSTER_KEY)")
            await _internal(queue, decode_internal(message.value), event)
        else:
            await _command(queue, event)
    except InvalidCommand as exc:
        await _reject(queue, event, str(exc))
    except Exception as exc:
        log.debug(
            "message %s:%d@%d failed", event.message.topic, event.message.partition, event.message.offset, exc_info=True
        )
        await _reject(queue, event, f"{type(exc).__name__}: {exc}", unexpected=True)


async def _command(queue: Queue, event: EventT) -> None:
    """A message on the commands topic: its class is decided before any runner is asked, so that
    a cancel or a re-key never depends on this worker's runners."""
    message = event.message
    headers = dict(message.headers or [])
    if reserved := reserved_header(list(headers)):
        raise InvalidCommand(f"header {shown(str(reserved))} is reserved to AirKafka's workers")
    command = decode_command(message.key, message.value)
    airflow_tasks.check_id(command)
    if message.key != (routing_key := command.routing_key.encode()):
        # Without its routing key (keyless, or a cancel keyed otherwise), the command sits in a
        # partition that does not own its task's record.
        await queue.commands.send(key=routing_key, value=message.value)
        log.info("task %s re-keyed by %s", command.id, command.routing_key)
        return
    if command.kind == CANCEL:
        await _cancel(queue, command, event)
        return
    command = with_worker_limits(command, settings)
    runner = runner_for(runners, command)
    previous = queue.tasks.load(command.id)
    if previous is not None and is_orphan(previous, queue.name) and not pool.holds(command.id):
        await _recover(queue, command, runner, previous, event)
        return
    source = f"{message.partition}:{message.offset}"
    if why := why_not_run(previous, pool.holds(command.id), headers.get(REPLAY_HEADER) == FORCE, source):
        queue.counters.increment(DUPLICATES, message.partition)
        task_metrics.DUPLICATES.labels(queue.name, task_metrics.duplicate_class(why)).inc()
        log.info("task %s duplicate ignored: %s", command.id, why)
        return
    record = TaskRecord.new_attempt(command.to_json(), previous, settings.worker_name, source)
    if not record.leaves_room(len(message.value)):
        raise InvalidCommand(f"its record would not fit a changelog message of {MAX_RECORD_BYTES} bytes")
    if lookout.early and (reason := lookout.early.take(command.id, message.partition, message.offset)):
        queue.tasks.save(record.to(State.CANCELLED, exit_code=None, detail=reason), event)
        log.info("task %s %s before it was read", command.id, reason)
        return
    if (why := control.mode.why_waiting(queue.name)) is not None:
        # Nobody holds it: the partition's owner runs it once it runs the queue's tasks again.
        queue.tasks.save(replace(record, worker=None, detail=f"waiting: {why}"), event)
        log.info("task %s waits: %s", command.id, why)
        return
    await pool.submit(Run(command, runner, queue.tasks, queue.tasks.save(record, event), event))


async def _internal(queue: Queue, message: Report | Recover, event: EventT) -> None:
    if isinstance(message, Report):
        _apply_report(queue, message.record, event)
        return
    command = message.command
    previous = queue.tasks.load(command.id)
    if previous is None or not is_orphan(previous, queue.name) or pool.holds(command.id):
        return  # recovered already, or its worker is back
    try:
        runner = runner_for(runners, command)
    except InvalidCommand as exc:
        # Its lost worker could run it; this one, which owns it now, cannot.
        queue.tasks.save(
            previous.to(State.FAILED, exit_code=None, detail=f"{_lost(previous)}; cannot be recovered here: {exc}"),
            event,
        )
        return
    await _recover(queue, command, runner, previous, event)


def _apply_report(queue: Queue, report: TaskRecord, event: EventT) -> None:
    """Store the record of a transition made by a worker that had lost this partition, unless it is
    stale. Its state change was published by that worker."""
    if is_stale(report, queue.tasks.load(report.id)):
        log.info("task %s stale report of attempt %d %s ignored", report.id, report.attempt, report.state.value)
        return
    queue.tasks.store(report, event)


def _lost(record: TaskRecord) -> str:
    return f"worker {record.worker} lost: no heartbeat for {settings.worker_lost_after_s:g}s"


async def _recover(queue: Queue, command: Command, runner: Runner, record: TaskRecord, event: EventT) -> None:
    """Run again a task whose worker is gone: its lost attempt failed, unless it never started,
    or it was to be cancelled; or a retry that has come due."""
    lost = _lost(record)
    state = recovery(record, command.retries)
    if state is State.CANCELLED:
        queue.tasks.save(record.to(state, exit_code=None, detail=f"cancelled by {record.cancel_requested_by}"), event)
        return
    if state is State.FAILED:
        queue.tasks.save(record.to(state, exit_code=None, detail=f"{lost}; no retries left"), event)
        return
    if state is State.UP_FOR_RETRY:
        record = queue.tasks.save(record.to(state, exit_code=None, detail=lost), event)
    if record.worker is None:
        log.info("task %s attempt %d waited, and runs now", record.id, record.attempt)
    elif record.retry_at is None:
        log.warning("task %s attempt %d recovered: %s", record.id, record.attempt, lost)
    await pool.submit(Run(command, runner, queue.tasks, record, event))


def _intake(queue: Queue) -> Callable[[StreamT], Awaitable[None]]:
    async def intake(stream: StreamT) -> None:
        async for event in stream.events():
            if pool.draining:
                # The worker is stopping (shutdown.py): this message stays unacknowledged, for
                # the partition's next owner.
                await asyncio.Future()
            if not control.caught_up.is_set():
                await control.caught_up.wait()  # so that a maintenance or a pause holds from the start
            await accept(queue, event)

    return intake


for _queue in queues.values():
    # A crash here is a broken setup or a bug: stop the worker and say why, rather than
    # restart the agent in a loop that looks alive.
    app.agent(topics.intake(_queue.name), name=f"intake.{_queue.name}", supervisor_strategy=CrashingSupervisor)(
        _intake(_queue)
    )

"""The intake agent: turns each command message into a task, or into a dead letter saying why."""
from __future__ import annotations

import asyncio
import json
import logging

from faust.types import EventT, StreamT
from mode import CrashingSupervisor

from airkafka_app import topics
from airkafka_app.application import app
from airkafka_app.commands import CANCEL, FORCE, REPLAY_HEADER, Command, InvalidCommand, decode_command
from airkafka_app.dead_letters import dead_letter
from airkafka_app.kafka_admin import partition_count
from airkafka_app.runners import build_registry, runner_for
from airkafka_app.settings import settings
from airkafka_app.states import NOT_RERUN, State
from airkafka_app.tables import counters, tasks
from airkafka_app.task_record import TaskRecord
from airkafka_app.worker_pool import WorkerPool

log = logging.getLogger(__name__)

runners = build_registry()
pool = WorkerPool(concurrency=settings.concurrency)


class TopicLayoutError(RuntimeError):
    pass


async def _prepare() -> None:
    for topic in (topics.commands, topics.state_changes, topics.dead_letters):
        await topic.maybe_declare()
    found = await partition_count(settings.commands_topic)
    if found != settings.partitions:
        # Co-partitioning is what puts a task's command and its table entry on one worker.
        raise TopicLayoutError(
            f"topic {settings.commands_topic!r} has {found} partitions but AIRKAFKA_PARTITIONS is "
            f"{settings.partitions}; recreate the topic or set AIRKAFKA_PARTITIONS={found}"
        )
    await app.add_runtime_dependency(pool)


async def _reject(event: EventT, reason: str) -> None:
    message = event.message
    letter = dead_letter(reason, message.topic, message.partition, message.offset, message.key, message.value)
    await topics.dead_letters.send(key=message.key, value=json.dumps(letter).encode())
    counters.increment(counters.DEAD_LETTERS, message.partition)
    log.warning("dead letter %s:%d@%d: %s", message.topic, message.partition, message.offset, reason)


def _cancel(command: Command) -> None:
    """Cancel the target, which this partition owns: its run here, or its record if none runs."""
    target = command.args["target"]
    current = tasks.load(target)
    if current is None or current.state.is_terminal:
        log.info("cancel %s: task %s is %s, nothing to cancel", command.id, target,
                 current.state.value if current else "unknown")
        return
    reason = f"cancelled by {command.id}"
    if not pool.cancel(target, reason):
        tasks.transition(target, State.CANCELLED, exit_code=None, detail=reason)


def _topics_without_metadata() -> list[str]:
    names = (settings.commands_topic, tasks.table.changelog_topic_name, counters.table.changelog_topic_name)
    return [name for name in names if app.consumer.topic_partitions(name) == 0]


async def _await_topic_metadata() -> None:
    """Wait out metadata that still shows a new topic with 0 partitions.

    Faust would take it for a co-partitioning mismatch and stop the worker: a race seen
    once in CI, right after start-up, before the consumer's next metadata refresh.
    """
    while missing := _topics_without_metadata():
        log.info("waiting for metadata of %s", ", ".join(missing))
        await asyncio.sleep(0.5)


async def accept(event: EventT) -> None:
    await _await_topic_metadata()
    try:
        command = decode_command(event.message.key, event.message.value)
        runner = None if command.kind == CANCEL else runner_for(runners, command)
    except InvalidCommand as exc:
        await _reject(event, str(exc))
        return
    if event.message.key is None:
        # Without its key, the command sits in a partition that does not own its table entry.
        await topics.commands.send(key=command.routing_key.encode(), value=event.message.value)
        log.info("task %s re-keyed by %s", command.id, command.routing_key)
        return
    if runner is None:
        _cancel(command)
        return
    previous = tasks.load(command.id)
    forced = dict(event.message.headers or []).get(REPLAY_HEADER) == FORCE
    if previous is not None and previous.state in NOT_RERUN and not (forced and previous.state is State.SUCCESS):
        counters.increment(counters.DUPLICATES, event.message.partition)
        log.info("task %s duplicate ignored: already %s", command.id, previous.state.value)
        return
    tasks.save(TaskRecord.new_attempt(command.to_json(), previous, settings.worker_name))
    await pool.submit(command, runner, event)


# A crash here is a broken setup or a bug: stop the worker and say why, rather than
# restart the agent in a loop that looks alive.
@app.agent(topics.commands, supervisor_strategy=CrashingSupervisor)
async def intake(stream: StreamT) -> None:
    await _prepare()
    async for event in stream.events():
        await accept(event)

"""The rules intake and the pool apply to one task, as plain functions of its records: whether a
command starts a run, whether a report is stale, what a lost worker's task records before it
runs again, when a failed attempt runs again, and what a replay does. Faust-free, and
unit-tested without a broker."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airkafka_app.contract.airflow_tasks import KIND as AIRFLOW_KIND
from airkafka_app.contract.commands import (
    MAX_RETRY_DELAY_S,
    REPLAY_HEADER,
    RESERVED_HEADER_PREFIX,
    Command,
    InvalidCommand,
)
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.states import IN_FLIGHT, NOT_RERUN, State
from airkafka_app.contract.task_record import TaskRecord


def reserved_header(names: list[str]) -> str | None:
    """The first header a producer may not set: AirKafka's own, but for the replay header."""
    reserved = sorted(name for name in names if str(name).startswith(RESERVED_HEADER_PREFIX) and name != REPLAY_HEADER)
    return reserved[0] if reserved else None


def why_not_run(previous: TaskRecord | None, held: bool, forced: bool, source: str) -> str | None:
    """Why a command must not start a run, if it must not. Faust delivers messages again after a
    rebalance: the run may be admitted here before the table knows of it, or the message may be
    the one that started the last attempt, whatever that attempt's end."""
    if held:
        return "already admitted on this worker"
    if previous is None:
        return None
    if previous.source == source:
        return f"message {source} delivered again; its attempt {previous.attempt} is {previous.state.value}"
    if previous.state in NOT_RERUN and not (forced and previous.state is State.SUCCESS):
        return f"already {previous.state.value}"
    return None


def read_before(message: Any, topic: str, partition: int, offset: int) -> bool:
    """Whether ``message`` (a run's command) comes before ``offset`` of ``topic``'s ``partition``:
    a cancel read there ahead of intake applies to its run, as it would in order."""
    return message.topic == topic and message.partition == partition and message.offset < offset


def is_stale(report: TaskRecord, current: TaskRecord | None) -> bool:
    """A report older than the table's record: an earlier attempt, or an earlier change of this one.
    An equal one is not stale: a stalled worker's record may be in its RocksDB only."""
    return current is not None and (report.attempt, report.updated_at) < (current.attempt, current.updated_at)


def recovery(record: TaskRecord, retries: int) -> State | None:
    """What a lost worker's task records before it runs again, if anything: ``cancelled`` when a
    cancel was sent on to that worker, ``failed`` when its attempt ran and no retry is left,
    ``up_for_retry`` when it ran; nothing when it never started."""
    if record.cancel_requested_by is not None:
        return State.CANCELLED
    if record.state is State.RUNNING:
        return State.FAILED if record.retries_used >= retries else State.UP_FOR_RETRY
    return None


def retries_done(record: TaskRecord) -> int:
    """The retries a run starts from: a recovered task resumes where its retries stood."""
    return record.retries_used + (record.state is State.UP_FOR_RETRY)


def backoff(retry: int, retry_delay_s: float | None, default_delay_s: float) -> float:
    """The wait before retry number ``retry``: doubling from the first delay, at most MAX_RETRY_DELAY_S."""
    base = retry_delay_s if retry_delay_s is not None else default_delay_s
    return min(base * 2.0 ** min(retry - 1, 64), MAX_RETRY_DELAY_S)


AIRFLOW_REPLAY = "skipped: an Airflow task: clear it in Airflow, which owns its state and sends it again"


def replay_decision(
    state: str | None, *, only_failed: bool, force: bool, refused: bool = False, kind: str | None = None
) -> str:
    """What a replay does with a task in ``state`` (None: not in the table), whose message a
    worker may have ``refused`` (dead-lettered): a replay never sends such a message again,
    unless the operator named its task. An ``airflow`` command is never replayed: its try's state
    is Airflow's, and a try run again behind Airflow's back would leave the two disagreeing."""
    if refused:
        return "skipped: refused (dead letter)"
    if kind == AIRFLOW_KIND:
        return AIRFLOW_REPLAY
    if state in IN_FLIGHT:
        return "skipped: in progress"
    if state == "success" and not force:
        return "skipped: already successful"
    if only_failed and state not in ("failed", "cancelled"):
        return "skipped: not failed"
    return "replayed"


def with_worker_limits(command: Command, s: Settings) -> Command:
    """The command with the worker's defaults for the timeout and limits it does not give, and
    its maximum where neither does; InvalidCommand when it asks for more than a maximum, or for
    more run slots than the worker has. So every task has a timeout, unless the operator turned
    the default off, and a hung task ends."""
    timeout = command.timeout_s if command.timeout_s is not None else (s.task_timeout_s or None)
    if s.task_timeout_max_s and timeout is not None and timeout > s.task_timeout_max_s:
        raise InvalidCommand(f"'timeout_s' {timeout:g} is over this worker's maximum, {s.task_timeout_max_s:g}")
    if command.pool_slots > s.concurrency:
        raise InvalidCommand(
            f"'pool_slots' {command.pool_slots} is more than this worker's run slots (AIRKAFKA_CONCURRENCY {s.concurrency})"
        )
    limits = dict(command.limits or {})
    for name, default, maximum in (
        ("memory_mb", s.task_memory_mb, s.task_memory_max_mb),
        ("pids", s.task_pids, s.task_pids_max),
        ("cpu_weight", s.task_cpu_weight, s.task_cpu_weight_max),
    ):
        value = limits.get(name) or default or maximum
        if maximum and value > maximum:
            raise InvalidCommand(f"'limits.{name}' {value} is over this worker's maximum, {maximum}")
        if value:
            limits[name] = value
    return replace(command, timeout_s=timeout, limits=limits or None)

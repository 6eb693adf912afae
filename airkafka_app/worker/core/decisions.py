"""What the worker does with each input about one task, decided as plain code: a function of the
task's current record and of what the worker knows of it, returning the effects to carry out.

Intake (``worker/intake.py``) reads the facts, calls these, and performs the effects in order; the
pool does the same with an attempt's end (``after_attempt``, ``handed_back``). Faust-free and
unit-tested without a broker (``tests/unit/test_decisions.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import MAX_RECORD_BYTES, TaskRecord
from airkafka_app.worker.core.task_rules import backoff, is_stale, recovery, why_not_run


@dataclass(frozen=True)
class Known:
    """What the worker knows of a task as an input about it arrives."""

    record: TaskRecord | None  # the table's
    # The pool holds it: admitted, waiting for a slot or behind its serial key, or a retry's timer.
    held: bool = False
    # Of those, a run the pool itself ends on a cancel: all but a retry's timer.
    runs_here: bool = False
    # In flight, and nobody runs it (liveness.is_orphan).
    orphan: bool = False


@dataclass(frozen=True)
class Save:
    """Record a transition: the table (or a report to the partition's owner) and its state change."""

    record: TaskRecord


@dataclass(frozen=True)
class Store:
    """Write the record, without a state change: a mark, or another worker's report."""

    record: TaskRecord


@dataclass(frozen=True)
class Run:
    """Hand the task to the pool, from this record, which is the table's; ``recovered``: a run
    again of a task nobody ran."""

    record: TaskRecord
    recovered: bool = False


@dataclass(frozen=True)
class EndRun:
    """The pool ends the task's run here ``cancelled``, or drops its retry's timer."""

    reason: str


@dataclass(frozen=True)
class Forward:
    """Ask ``worker``, which runs the task since a rebalance, to end its run."""

    worker: str
    reason: str


@dataclass(frozen=True)
class Duplicate:
    why: str


@dataclass(frozen=True)
class Skip:
    """Nothing to do, and why."""

    why: str


Effect = Save | Store | Run | EndRun | Forward | Duplicate | Skip


def command(
    command: Command,
    known: Known,
    *,
    worker: str,
    source: str,
    forced: bool,
    size: int,
    lost: str,
    cancelled_early: str | None = None,
    waiting: str | None = None,
) -> list[Effect]:
    """A command for the task, read at ``source`` (``partition:offset``), ``size`` bytes long.
    ``cancelled_early``: the reason of a cancel read ahead of it (cancel_lookout.py);
    ``waiting``: why this worker takes no new task of its queue now (control.py)."""
    if known.record is not None and known.orphan and not known.held:
        return recover(command, known.record, lost)
    if why := why_not_run(known.record, known.held, forced, source):
        return [Duplicate(why)]
    record = TaskRecord.new_attempt(command.to_json(), known.record, worker, source)
    if not record.leaves_room(size):
        raise InvalidCommand(f"its record would not fit a changelog message of {MAX_RECORD_BYTES} bytes")
    if cancelled_early is not None:
        return [Save(record.to(State.CANCELLED, exit_code=None, detail=cancelled_early))]
    if waiting is not None:
        # Nobody holds it: the partition's owner runs it once it runs the queue's tasks again.
        return [Save(replace(record, worker=None, detail=f"waiting: {waiting}"))]
    return [Save(record), Run(record)]


def cancel(cancel_id: str, known: Known, *, worker: str) -> list[Effect]:
    """A cancel of the task, which this partition owns: its run here; or its run on the worker its
    record names, where it stayed after a rebalance; or else its record."""
    current = known.record
    if current is None or current.state.is_terminal:
        return [Skip(f"{current.state.value if current else 'unknown'}, nothing to cancel")]
    reason = f"cancelled by {cancel_id}"
    if known.runs_here:
        return [EndRun(reason)]
    effects: list[Effect] = [EndRun(reason)] if known.held else []  # its retry's timer
    waits_in_table = current.state is State.UP_FOR_RETRY and current.retry_at is not None
    if current.worker not in (None, worker) and not waits_in_table and not known.orphan:
        # That worker ends the run, and its end comes back as a report. Should the run be
        # recovered instead, the mark makes the recovery end it.
        return [*effects, Store(replace(current, cancel_requested_by=cancel_id)), Forward(current.worker, reason)]
    return [*effects, Save(current.to(State.CANCELLED, exit_code=None, detail=reason))]


def report(report: TaskRecord, current: TaskRecord | None) -> list[Effect]:
    """The record of a transition made by a worker that had lost this partition: stored unless
    stale. Its state change was published by that worker."""
    if is_stale(report, current):
        return [Skip(f"stale report of attempt {report.attempt} {report.state.value}")]
    return [Store(report)]


def recovery_request(command: Command, known: Known, *, lost: str, cannot_run: str | None) -> list[Effect]:
    """A request to run again a task whose worker is gone (or whose retry is due), which this
    worker may not be able to run (``cannot_run``: why not)."""
    if known.record is None or not known.orphan or known.held:
        return [Skip("recovered already, or its worker is back")]
    if cannot_run is not None:
        # Its lost worker could run it; this one, which owns it now, cannot.
        detail = f"{lost}; cannot be recovered here: {cannot_run}"
        return [Save(known.record.to(State.FAILED, exit_code=None, detail=detail))]
    return recover(command, known.record, lost)


def recover(command: Command, record: TaskRecord, lost: str) -> list[Effect]:
    """Run again a task whose worker is gone: its lost attempt failed, unless it never started,
    or it was to be cancelled; or a retry that has come due."""
    state = recovery(record, command.retries)
    if state is State.CANCELLED:
        return [Save(record.to(state, exit_code=None, detail=f"cancelled by {record.cancel_requested_by}"))]
    if state is State.FAILED:
        return [Save(record.to(state, exit_code=None, detail=f"{lost}; no retries left"))]
    if state is State.UP_FOR_RETRY:
        record = record.to(state, exit_code=None, detail=lost)
        return [Save(record), Run(record, recovered=True)]
    return [Run(record, recovered=True)]


def started(record: TaskRecord, worker: str) -> TaskRecord:
    """The record of an attempt that starts on ``worker``: a retry's is the next attempt."""
    return record.to(State.RUNNING, worker=worker)


def after_attempt(
    record: TaskRecord,
    command: Command,
    outcome: tuple[State, int | None, str],
    retry: int,
    default_retry_delay_s: float,
    now: float | None = None,
) -> TaskRecord:
    """The record an attempt's end leaves, ``retry`` retries done before it: its outcome, or, for a
    failure with retries left, ``up_for_retry`` until its backoff is over."""
    state, exit_code, detail = outcome
    if not (state is State.FAILED and retry < command.retries):
        return record.to(state, exit_code=exit_code, detail=detail)
    delay = backoff(retry + 1, command.retry_delay_s, default_retry_delay_s)
    at = time.time() if now is None else now
    return record.to(State.UP_FOR_RETRY, exit_code=exit_code, detail=detail, retry_at=at + delay)


def handed_back(record: TaskRecord, worker: str) -> TaskRecord | None:
    """The record of a run the stopping ``worker`` hands back, if it changes: a running attempt
    ends ``up_for_retry``, and its next run, on the partition's next owner, is not counted as a
    retry. A waiting task stays as it is."""
    if record.state is not State.RUNNING:
        return None
    first = (record.first_attempt or record.attempt) + 1
    return record.to(
        State.UP_FOR_RETRY,
        exit_code=None,
        first_attempt=first,
        detail=f"interrupted: worker {worker} stopped; it runs again, not as a retry",
    )

"""The worker's decisions about one task (worker/core/decisions.py), without Faust or a broker:
every transition of contract/states.py, every input class, and the races the integration suite
found, played against an in-memory table."""

import time
from dataclasses import replace

import pytest

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.states import ALLOWED, State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.core import decisions
from airkafka_app.worker.core.decisions import (
    Duplicate,
    EndRun,
    Forward,
    Known,
    Run,
    Save,
    Skip,
    Store,
)

ME, OTHER = "me:1", "other:2"
LOST = "worker other:2 lost: no heartbeat for 30s"


def shell(task_id: str = "t1", retries: int = 0) -> Command:
    return Command(id=task_id, kind="shell", args={"argv": ["true"]}, retries=retries)


def queued(command: Command | None = None, worker: str | None = ME, source: str = "0:1") -> TaskRecord:
    command = command or shell()
    return replace(TaskRecord.new_attempt(command.to_json(), None, ME, source), worker=worker)


def running(command: Command | None = None, worker: str = ME) -> TaskRecord:
    return decisions.started(queued(command), worker)


def ended(state: State, command: Command | None = None) -> TaskRecord:
    return running(command).to(state, exit_code=0 if state is State.SUCCESS else 1)


def waiting_retry(command: Command | None = None, worker: str = ME, due_in: float = 600.0) -> TaskRecord:
    command = command or shell(retries=2)
    return running(command, worker).to(State.UP_FOR_RETRY, exit_code=1, detail="boom", retry_at=time.time() + due_in)


def on_command(command: Command, known: Known, **facts) -> list:
    args = {"worker": ME, "source": "0:9", "forced": False, "size": 100, "lost": LOST, **facts}
    return decisions.command(command, known, **args)


class Table:
    """The records as the effects leave them: what the Faust table would hold."""

    def __init__(self, *records: TaskRecord) -> None:
        self.records = {record.id: record for record in records}
        self.changes: list[tuple[str, State]] = []  # the state changes published
        self.runs: list[TaskRecord] = []
        self.forwarded: list[tuple[str, str]] = []

    def apply(self, effects: list) -> list:
        for effect in effects:
            match effect:
                case Save(record=record):
                    self.records[record.id] = record
                    self.changes.append((record.id, record.state))
                case Store(record=record):
                    self.records[record.id] = record
                case Run(record=record):
                    assert self.records[record.id] == record, "a run starts from the table's record"
                    self.runs.append(record)
                case Forward(worker=worker, reason=reason):
                    self.forwarded.append((worker, reason))
        return effects


def saved(effects: list) -> list[TaskRecord]:
    return [effect.record for effect in effects if isinstance(effect, Save)]


# Each transition the states allow, with an input of the worker's that makes it: (the record
# before, the effects or record after).
def _new():
    return None, on_command(shell(), Known(None))


def _start():
    before = queued()
    return before, decisions.started(before, ME)


def _queued_cannot_be_recovered():
    before = queued(worker=OTHER)
    effects = decisions.recovery_request(shell(), Known(before, orphan=True), lost=LOST, cannot_run="no shell here")
    return before, effects


def _queued_cancelled():
    before = queued()
    return before, decisions.cancel("c1", Known(before), worker=ME)


def _success():
    before = running()
    return before, decisions.after_attempt(before, shell(), (State.SUCCESS, 0, ""), 0, 1.0)


def _failed():
    before = running()
    return before, decisions.after_attempt(before, shell(), (State.FAILED, 3, "exit 3"), 0, 1.0)


def _retry():
    command = shell(retries=1)
    before = running(command)
    return before, decisions.after_attempt(before, command, (State.FAILED, 3, "exit 3"), 0, 1.0)


def _running_cancelled():
    before = running(worker=OTHER)
    return before, decisions.cancel("c1", Known(before, orphan=True), worker=ME)


def _retry_starts():
    before = waiting_retry(due_in=0)
    return before, decisions.started(before, ME)


def _retry_cannot_be_recovered():
    before = waiting_retry(due_in=0)
    effects = decisions.recovery_request(shell(retries=2), Known(before, orphan=True), lost=LOST, cannot_run="x")
    return before, effects


def _retry_cancelled():
    before = waiting_retry()
    return before, decisions.cancel("c1", Known(before, held=True), worker=ME)


def _again(state: State, forced: bool = False):
    def scenario():
        before = ended(state)
        return before, on_command(shell(), Known(before), forced=forced)

    return scenario


SCENARIOS = {
    (None, State.QUEUED): _new,
    (State.QUEUED, State.RUNNING): _start,
    (State.QUEUED, State.FAILED): _queued_cannot_be_recovered,
    (State.QUEUED, State.CANCELLED): _queued_cancelled,
    (State.RUNNING, State.SUCCESS): _success,
    (State.RUNNING, State.FAILED): _failed,
    (State.RUNNING, State.UP_FOR_RETRY): _retry,
    (State.RUNNING, State.CANCELLED): _running_cancelled,
    (State.UP_FOR_RETRY, State.RUNNING): _retry_starts,
    (State.UP_FOR_RETRY, State.FAILED): _retry_cannot_be_recovered,
    (State.UP_FOR_RETRY, State.CANCELLED): _retry_cancelled,
    (State.FAILED, State.QUEUED): _again(State.FAILED),
    (State.CANCELLED, State.QUEUED): _again(State.CANCELLED),
    (State.SUCCESS, State.QUEUED): _again(State.SUCCESS, forced=True),
}


def test_every_allowed_transition_has_a_scenario():
    assert set(SCENARIOS) == {(before, after) for before, afters in ALLOWED.items() for after in afters}


@pytest.mark.parametrize("transition", list(SCENARIOS), ids=lambda t: f"{t[0] and t[0].value}->{t[1].value}")
def test_each_transition_is_decided_by_its_input(transition):
    before_state, after_state = transition
    before, after = SCENARIOS[transition]()
    assert (before.state if before else None) is before_state
    records = [after] if isinstance(after, TaskRecord) else saved(after)
    assert [record.state for record in records] == [after_state]
    assert records[0].updated_at >= (before.updated_at if before else 0)


# Commands.


def test_a_new_command_is_recorded_queued_and_run_from_that_record():
    table = Table()
    table.apply(on_command(shell(), Known(None)))
    assert table.changes == [("t1", State.QUEUED)]
    assert table.runs == [table.records["t1"]] and table.records["t1"].worker == ME


@pytest.mark.parametrize(
    "known, facts, why",
    [
        (Known(queued(), held=True), {}, "already admitted on this worker"),
        (Known(queued(source="0:9")), {}, "message 0:9 delivered again"),
        (Known(running()), {}, "already running"),
        (Known(ended(State.SUCCESS)), {}, "already success"),
    ],
)
def test_a_command_for_a_task_in_hand_or_done_is_a_duplicate(known, facts, why):
    [effect] = on_command(shell(), known, **facts)
    assert isinstance(effect, Duplicate) and effect.why.startswith(why)


def test_a_command_too_large_for_its_record_is_refused():
    # Each control character grows sixfold in the record's JSON.
    big = Command(id="t1", kind="shell", args={"argv": ["echo", "\x01" * 200_000]})
    with pytest.raises(InvalidCommand, match="would not fit"):
        on_command(big, Known(None), size=200_100)


def test_a_command_cancelled_before_it_was_read_never_runs():
    table = Table()
    table.apply(on_command(shell(), Known(None), cancelled_early="cancelled by c1 before it was read"))
    assert table.changes == [("t1", State.CANCELLED)] and table.runs == []


def test_a_command_while_its_queue_is_paused_waits_in_the_table_held_by_nobody():
    table = Table()
    table.apply(on_command(shell(), Known(None), waiting="queue default paused"))
    record = table.records["t1"]
    assert (record.state, record.worker, record.detail) == (State.QUEUED, None, "waiting: queue default paused")
    assert table.runs == []


def test_a_command_for_an_orphan_recovers_it_rather_than_duplicate_it():
    before = running(worker=OTHER)
    table = Table(before)
    table.apply(on_command(shell(retries=1), Known(before, orphan=True)))
    assert table.changes == [("t1", State.UP_FOR_RETRY)]
    assert table.runs[0].detail == LOST and table.runs[0].attempt == 1


# Cancels.


@pytest.mark.parametrize("record", [None, ended(State.SUCCESS), ended(State.CANCELLED)])
def test_a_cancel_of_an_unknown_or_ended_task_changes_nothing(record):
    [effect] = decisions.cancel("c1", Known(record), worker=ME)
    assert isinstance(effect, Skip)


def test_a_cancel_of_a_run_here_is_the_pools_to_carry_out():
    assert decisions.cancel("c1", Known(running(), held=True, runs_here=True), worker=ME) == [EndRun("cancelled by c1")]


def test_a_cancel_of_a_run_on_another_worker_is_forwarded_and_marked():
    before = running(worker=OTHER)
    table = Table(before)
    table.apply(decisions.cancel("c1", Known(before), worker=ME))
    assert table.forwarded == [(OTHER, "cancelled by c1")]
    assert table.records["t1"].cancel_requested_by == "c1" and table.changes == []


def test_a_cancel_of_a_retry_waiting_in_the_table_of_another_worker_ends_it_here():
    before = waiting_retry(worker=OTHER)
    table = Table(before)
    table.apply(decisions.cancel("c1", Known(before), worker=ME))
    assert table.changes == [("t1", State.CANCELLED)] and table.forwarded == []


# Reports and recovery requests.


def test_a_report_is_stored_unless_the_table_holds_a_newer_record():
    older, newer = running(), None
    newer = older.to(State.SUCCESS, exit_code=0)
    assert decisions.report(newer, older) == [Store(newer)]
    [effect] = decisions.report(older, newer)
    assert isinstance(effect, Skip) and "stale" in effect.why
    assert decisions.report(newer, None) == [Store(newer)]


@pytest.mark.parametrize(
    "known", [Known(None), Known(running(worker=OTHER)), Known(running(worker=OTHER), orphan=True, held=True)]
)
def test_a_recovery_request_for_a_task_someone_runs_changes_nothing(known):
    [effect] = decisions.recovery_request(shell(), known, lost=LOST, cannot_run=None)
    assert isinstance(effect, Skip)


def test_a_lost_run_without_retries_left_fails_and_one_that_never_started_just_runs():
    lost_run = running(worker=OTHER)
    [effect] = decisions.recovery_request(shell(), Known(lost_run, orphan=True), lost=LOST, cannot_run=None)
    assert effect.record.state is State.FAILED and effect.record.detail == f"{LOST}; no retries left"
    never_started = queued(worker=OTHER)
    assert decisions.recovery_request(shell(), Known(never_started, orphan=True), lost=LOST, cannot_run=None) == [
        Run(never_started, recovered=True)
    ]


# The pool's attempts.


def test_a_failed_attempt_with_retries_left_waits_its_backoff_in_the_table():
    command = Command(id="t1", kind="shell", args={"argv": ["false"]}, retries=3, retry_delay_s=2.0)
    record = decisions.after_attempt(running(command), command, (State.FAILED, 1, "exit 1"), 1, 10.0, now=100.0)
    assert (record.state, record.retry_at, record.exit_code) == (State.UP_FOR_RETRY, 104.0, 1)
    last = decisions.after_attempt(running(command), command, (State.FAILED, 1, "exit 1"), 3, 10.0)
    assert last.state is State.FAILED


def test_a_retry_starts_as_the_next_attempt():
    record = decisions.started(waiting_retry(due_in=0), ME)
    assert (record.state, record.attempt, record.earlier[-1]["state"]) == (State.RUNNING, 2, "up_for_retry")


def test_a_handed_back_run_runs_again_not_as_a_retry_and_a_waiting_one_stays():
    record = decisions.handed_back(running(), ME)
    assert record.state is State.UP_FOR_RETRY and record.retries_used == -1
    assert decisions.started(record, OTHER).retries_used == 0
    assert decisions.handed_back(queued(), ME) is None


# The races the integration suite found.


def test_a_cancel_forwarded_to_a_worker_that_is_then_lost_ends_the_task_cancelled():
    """The cancel reached the owner while the run was on another worker; that worker died before it
    ended the run. The recovery must not run it again."""
    table = Table(running(worker=OTHER))
    table.apply(decisions.cancel("c1", Known(table.records["t1"]), worker=ME))
    table.apply(
        decisions.recovery_request(
            shell(retries=3), Known(table.records["t1"], orphan=True), lost=LOST, cannot_run=None
        )
    )
    assert table.changes == [("t1", State.CANCELLED)] and table.runs == []
    assert table.records["t1"].detail == "cancelled by c1"


def test_a_run_that_ended_while_its_partition_moved_is_not_taken_back_by_an_older_report():
    """The old owner's run ended and its end travelled as a report; the start of the same run,
    reported earlier, arrives after it. The table keeps the end."""
    table = Table(queued(worker=OTHER))
    start = decisions.started(table.records["t1"], OTHER)
    end = start.to(State.SUCCESS, exit_code=0)
    table.apply(decisions.report(end, table.records["t1"]))
    table.apply(decisions.report(start, table.records["t1"]))
    assert table.records["t1"].state is State.SUCCESS


def test_a_redelivered_command_of_a_recovered_task_does_not_run_it_twice():
    """After a rebalance, Faust delivers the command that started the attempt again."""
    before = queued(source="3:7")
    [effect] = on_command(shell(), Known(before, held=True), source="3:7")
    assert isinstance(effect, Duplicate)

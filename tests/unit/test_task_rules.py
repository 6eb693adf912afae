import dataclasses
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airkafka_app.contract.commands import MAX_RETRY_DELAY_S, Command, InvalidCommand
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.core.task_rules import (
    backoff,
    is_stale,
    recovery,
    reserved_header,
    retries_done,
    why_not_run,
    with_worker_limits,
)

COMMAND = {"id": "t1", "kind": "shell", "args": {"argv": ["true"]}, "retries": 2}


def queued(source: str = "0:5") -> TaskRecord:
    return TaskRecord.new_attempt(COMMAND, None, "w1", source)


def test_a_producer_may_set_only_the_replay_header_of_ours():
    assert reserved_header(["trace-id", "airkafka-replay"]) is None
    assert reserved_header(["airkafka-report", "airkafka-replay", "airkafka-a"]) == "airkafka-a"


@pytest.mark.parametrize(
    ("previous", "held", "forced", "why"),
    [
        (None, False, False, None),
        (None, True, False, "already admitted on this worker"),
        ("same message", False, False, "message 0:5 delivered again; its attempt 1 is queued"),
        (State.SUCCESS, False, False, "already success"),
        (State.SUCCESS, False, True, None),
        (State.FAILED, False, False, None),
        (State.CANCELLED, False, False, None),
        (State.RUNNING, False, True, "already running"),
        (State.UP_FOR_RETRY, False, False, "already up_for_retry"),
    ],
)
def test_why_a_command_does_not_start_a_run(previous, held, forced, why):
    record = None
    if previous == "same message":
        record = queued("0:5")
    elif previous is not None:
        record = replace(queued("0:1"), state=previous)
    assert why_not_run(record, held, forced, "0:5") == why


def test_a_report_is_stale_only_when_older_than_the_record():
    current = queued()
    assert not is_stale(current, None)
    assert not is_stale(current, current)  # equal: stored again
    assert is_stale(replace(current, updated_at=current.updated_at - 1), current)
    assert is_stale(replace(current, attempt=0, updated_at=current.updated_at + 5), current)
    assert not is_stale(replace(current, attempt=2, updated_at=current.updated_at - 5), current)


def test_what_a_lost_worker_s_task_records_before_it_runs_again():
    record = queued()
    assert recovery(record, 2) is None  # never started: runs as it is
    running = record.to(State.RUNNING)
    assert recovery(running, 2) is State.UP_FOR_RETRY
    assert recovery(running, 0) is State.FAILED
    assert recovery(replace(running, cancel_requested_by="c1"), 2) is State.CANCELLED
    assert recovery(running.to(State.UP_FOR_RETRY, exit_code=1), 2) is None


def test_a_recovered_task_resumes_where_its_retries_stood():
    record = queued()
    assert retries_done(record) == 0
    waiting = record.to(State.RUNNING).to(State.UP_FOR_RETRY, exit_code=1)
    assert retries_done(waiting) == 1
    assert retries_done(waiting.to(State.RUNNING)) == 1


def test_backoff_doubles_from_the_command_s_delay_or_the_default():
    assert [backoff(n, 0.5, 9.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert backoff(2, None, 1.5) == 3.0
    assert backoff(1, 0.0, 1.0) == 0.0


@given(st.integers(min_value=1, max_value=10**6), st.floats(min_value=0, max_value=MAX_RETRY_DELAY_S))
def test_backoff_never_exceeds_the_cap(retry, delay):
    assert 0 <= backoff(retry, delay, 1.0) <= MAX_RETRY_DELAY_S


def limits_settings(**overrides) -> Settings:
    values = {"task_timeout_s": 60.0, "task_timeout_max_s": 600.0, "task_memory_mb": 0, "task_memory_max_mb": 0}
    return dataclasses.replace(Settings(), **{**values, **overrides})


@pytest.mark.parametrize(
    "fields, overrides, timeout_s, limits",
    [
        ({}, {}, 60.0, None),  # the default timeout: a hung task ends
        ({"timeout_s": 5.0}, {}, 5.0, None),
        ({}, {"task_timeout_s": 0.0}, None, None),  # the operator turned it off
        ({}, {"task_memory_mb": 256, "task_pids": 50}, 60.0, {"memory_mb": 256, "pids": 50}),
        ({"limits": {"memory_mb": 64}}, {"task_memory_mb": 256}, 60.0, {"memory_mb": 64}),
        ({}, {"task_memory_max_mb": 512}, 60.0, {"memory_mb": 512}),  # no default: the maximum
    ],
)
def test_the_worker_fills_the_timeout_and_limits_a_command_does_not_give(fields, overrides, timeout_s, limits):
    command = with_worker_limits(Command("t", "shell", {"argv": ["true"]}, **fields), limits_settings(**overrides))
    assert (command.timeout_s, command.limits) == (timeout_s, limits)


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"timeout_s": 601.0}, "'timeout_s' 601 is over this worker's maximum, 600"),
        ({"limits": {"memory_mb": 1024}}, "'limits.memory_mb' 1024 is over this worker's maximum, 512"),
        ({"limits": {"pids": 11}}, "'limits.pids' 11 is over this worker's maximum, 10"),
        ({"pool_slots": 5}, "'pool_slots' 5 is more than this worker's run slots (AIRKAFKA_CONCURRENCY 4)"),
    ],
)
def test_a_command_over_a_maximum_is_refused_with_the_reason(fields, reason):
    s = limits_settings(task_memory_max_mb=512, task_pids_max=10, concurrency=4)
    with pytest.raises(InvalidCommand, match=re.escape(reason)):
        with_worker_limits(Command("t", "shell", {"argv": ["true"]}, **fields), s)

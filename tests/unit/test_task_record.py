import json

import pytest

from airkafka_app.contract.states import IllegalTransition, State
from airkafka_app.contract.task_record import TaskRecord

COMMAND = {"id": "t1", "kind": "shell", "args": {"argv": ["true"]}, "retries": 0}


def test_a_task_moves_queued_running_success():
    record = TaskRecord.new_attempt(COMMAND, None, "w1")
    assert (record.state, record.attempt) == (State.QUEUED, 1)
    running = record.to(State.RUNNING)
    done = running.to(State.SUCCESS, exit_code=0)
    assert running.started_at is not None and done.ended_at is not None
    assert done.state_change() == {
        "id": "t1",
        "state": "success",
        "attempt": 1,
        "at": done.updated_at,
        "worker": "w1",
        "exit_code": 0,
        "detail": "",
        "kind": "shell",
    }


def test_a_retry_is_a_new_attempt():
    record = TaskRecord.new_attempt(COMMAND, None, "w1").to(State.RUNNING).to(State.UP_FOR_RETRY, exit_code=1)
    assert record.to(State.RUNNING).attempt == 2


def test_resubmitting_a_failed_task_starts_the_next_attempt():
    failed = TaskRecord.new_attempt(COMMAND, None, "w1").to(State.RUNNING).to(State.FAILED, exit_code=1)
    assert TaskRecord.new_attempt(COMMAND, failed, "w1").attempt == 2


@pytest.mark.parametrize(
    "path",
    [
        [State.SUCCESS],
        [State.RUNNING, State.SUCCESS, State.RUNNING],
        [State.RUNNING, State.SUCCESS, State.FAILED],
        [State.UP_FOR_RETRY],
    ],
)
def test_illegal_moves_are_refused(path):
    record = TaskRecord.new_attempt(COMMAND, None, "w1")
    with pytest.raises(IllegalTransition):
        for state in path:
            record = record.to(state)


def test_json_round_trip():
    record = TaskRecord.new_attempt(COMMAND, None, "w1").to(State.RUNNING)
    assert TaskRecord.from_json(record.to_json()) == record


def test_an_airflow_task_carries_the_task_instance_it_runs():
    ti = {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 2, "pool_slots": 1}
    command = {"id": "af-1", "kind": "airflow", "args": {"workload": json.dumps({"ti": ti, "token": "x"})}}
    change = TaskRecord.new_attempt(command, None, "w1").state_change()
    assert change["kind"] == "airflow"
    assert change["airflow"] == {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 2}


@pytest.mark.parametrize(
    "workload",
    [
        "{",
        "[]",
        '{"ti": 3}',
        '{"ti": {"dag_id": "d"}}',
        json.dumps({"ti": {"dag_id": 1, "task_id": "t", "run_id": "r", "map_index": -1, "try_number": True}}),
    ],
)
def test_a_workload_without_a_task_instance_names_none(workload):
    command = {"id": "af-1", "kind": "airflow", "args": {"workload": workload}}
    assert "airflow" not in TaskRecord.new_attempt(command, None, "w1").state_change()

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


def test_a_record_keeps_its_earlier_attempts_newest_last_and_bounded():
    record = TaskRecord.new_attempt({**COMMAND, "retries": 20}, None, "w1").to(State.RUNNING)
    for n in range(12):
        record = record.to(State.UP_FOR_RETRY, exit_code=n, detail=f"try {n} " + "x" * 500).to(State.RUNNING)
    assert record.attempt == 13 and len(record.earlier) == 10
    assert [(e["attempt"], e["state"], e["exit_code"]) for e in record.earlier[-2:]] == [
        (11, "up_for_retry", 10),
        (12, "up_for_retry", 11),
    ]
    assert record.earlier[-1]["detail"].startswith("try 11 ") and len(record.earlier[-1]["detail"]) == 200
    again = TaskRecord.new_attempt(COMMAND, record.to(State.FAILED, exit_code=1, detail="gave up"), "w2")
    assert (again.attempt, again.earlier[-1]["state"], again.earlier[-1]["detail"]) == (14, "failed", "gave up")
    assert TaskRecord.from_json(json.loads(json.dumps(again.to_json()))).earlier == [dict(e) for e in again.earlier]


def test_a_record_from_a_newer_version_reads_without_its_new_fields():
    data = {**TaskRecord.new_attempt(COMMAND, None, "w1").to_json(), "added_later": {"x": 1}}
    assert TaskRecord.from_json(data).id == "t1"


def test_a_report_keeps_the_earlier_attempts_and_drops_a_newer_version_s_fields():
    from airkafka_app.contract.commands import InvalidCommand
    from airkafka_app.contract.internal import decode_internal, encode_report

    record = TaskRecord.new_attempt({**COMMAND, "retries": 1}, None, "w1").to(State.RUNNING)
    record = record.to(State.UP_FOR_RETRY, exit_code=2, detail="first").to(State.RUNNING)
    report = decode_internal(encode_report(record)).record
    assert report.attempt == 2 and report.earlier == [dict(e) for e in record.earlier]
    data = json.loads(encode_report(record))
    data["report"]["added_later"] = 1
    assert decode_internal(json.dumps(data).encode()).record.attempt == 2
    data["report"]["earlier"] = "not a list"
    with pytest.raises(InvalidCommand, match="'earlier' must be a list"):
        decode_internal(json.dumps(data).encode())


def test_a_retry_is_due_at_its_retry_at_and_other_transitions_clear_it():
    record = TaskRecord.new_attempt({"id": "t", "kind": "shell", "args": {}}, None, "w").to(State.RUNNING)
    waiting = record.to(State.UP_FOR_RETRY, retry_at=1000.0)
    assert (waiting.due_in(990.0), waiting.due_in(1000.0)) == (10.0, 0.0)
    assert waiting.to(State.RUNNING).retry_at is None
    assert record.to(State.UP_FOR_RETRY).due_in(5.0) == 0.0  # a hand-back: due at once
    assert record.due_in(5.0) == 0.0

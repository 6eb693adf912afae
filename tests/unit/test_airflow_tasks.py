"""Airflow's ids and proofs: only the executor's own command can speak for an Airflow try."""

import json

import pytest

from airkafka_app.contract.airflow_tasks import PROOF, check_id, command_id, proof, workload_command, workload_id
from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.runners.airflow import AirflowRunner

TI = {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 1}
ID = command_id("d", "t", "r", -1, 1)


def workload(**fields) -> str:
    return json.dumps({"token": "x", "ti": TI, "dag_rel_path": "d.py", "log_path": "d/t.log", **fields})


def test_the_executors_command_passes():
    check_id(workload_command(ID, workload(), "uuid-1"))


@pytest.mark.parametrize(
    "command, reason",
    [
        (Command(ID, "shell", {"argv": ["true"]}), "reserved to the Airflow executor's airflow commands"),
        (Command(ID, "cancel", {"target": "x"}), "reserved to the Airflow executor"),
        (workload_command("af-" + "0" * 40, workload(), "u"), "is not the id of the workload it carries"),
        (workload_command("mine", workload(), "u"), "is not the id of the workload it carries"),
        (Command(ID, "airflow", {"workload": "{}"}), "names no task instance, callback or connection test"),
    ],
)
def test_anything_else_under_an_executor_id_or_an_airflow_command_under_another_id_is_refused(command, reason):
    with pytest.raises(InvalidCommand, match=reason):
        check_id(command)


def test_other_ids_and_kinds_are_not_the_executors_concern():
    check_id(Command("revoke-" + ID, "cancel", {"target": ID}))
    check_id(Command("job-1", "shell", {"argv": ["true"]}))


def test_a_state_change_carries_the_proof_of_its_tries_executor_id_not_the_id():
    record = TaskRecord.new_attempt(workload_command(ID, workload(), "secret-uuid").to_json(), None, "w")
    change = record.state_change()
    assert change["airflow"][PROOF] == proof("secret-uuid") and "secret-uuid" not in json.dumps(change)
    assert record.airflow == TI  # the record and the views name the try only


@pytest.mark.parametrize("field", ["dag_rel_path", "log_path"])
@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "d/../../x", ""])
def test_a_workload_path_outside_its_folder_is_refused(field, path):
    with pytest.raises(InvalidCommand, match=f"airflow workload '{field}' must be a relative path"):
        AirflowRunner("/usr/bin/python3").check(workload_command(ID, workload(**{field: path}), "u"))


def test_callbacks_and_connection_tests_have_executor_ids_of_their_own():
    callback = json.dumps({"type": "ExecuteCallback", "token": "x", "callback": {"id": "c-1"}, "dag_rel_path": "d.py"})
    test = json.dumps({"type": "TestConnection", "token": "x", "connection_test_id": "t-1", "connection_id": "pg"})
    callback_id, test_id = workload_id(callback), workload_id(test)
    assert callback_id.startswith("af-cb-") and test_id.startswith("af-ct-") and callback_id != test_id
    check_id(workload_command(callback_id, callback, "u"))
    check_id(workload_command(test_id, test, "u"))
    with pytest.raises(InvalidCommand, match="is not the id of the workload it carries"):
        check_id(workload_command(callback_id, test, "u"))
    for unknown in ('{"type": "RunTrigger"}', '{"type": "ExecuteCallback", "callback": {}}', "[]", "nope"):
        assert workload_id(unknown) is None


def test_a_workload_command_carries_its_tasks_priority_and_slots():
    command = workload_command("af-x", "{}", "executor-id", priority_weight=7, pool_slots=2)
    assert command.to_json()["priority_weight"] == 7 and command.to_json()["pool_slots"] == 2
    plain = workload_command("af-x", "{}", "executor-id")
    assert "priority_weight" not in plain.to_json() and "pool_slots" not in plain.to_json()

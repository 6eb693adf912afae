"""What the executor reads back (airflow/ends.py), without Airflow or Kafka: the records are made
as the workers make them, so the two sides of the contract are held together."""

import json

import pytest

from airkafka_app.airflow import ends
from airkafka_app.airflow.ends import Verdict
from airkafka_app.contract import airflow_tasks
from airkafka_app.contract.commands import CANCEL, Command
from airkafka_app.contract.dead_letters import dead_letter, encode_dead_letter
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import TaskRecord

EXECUTOR_ID = "0f9a5c1e-7f4b-4c55-9d7e-6d8f4c2e1a10"
PROOF = airflow_tasks.proof(EXECUTOR_ID)
WORKLOAD = json.dumps({"ti": {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 1}})


def command(executor_id: str | None = EXECUTOR_ID) -> Command:
    return airflow_tasks.workload_command("af-" + "0" * 40, WORKLOAD, executor_id)


def state_change(state: State, cmd: Command | None = None) -> bytes:
    record = TaskRecord.new_attempt((cmd or command()).to_json(), None, "w1").to(State.RUNNING, worker="w1")
    if state is not State.RUNNING:
        record = record.to(state, exit_code=0 if state is State.SUCCESS else 1, detail=f"it {state.value}")
    return json.dumps(record.state_change("default")).encode()


@pytest.mark.parametrize("state", [State.SUCCESS, State.FAILED, State.CANCELLED])
def test_the_end_of_a_try_carries_the_proof_of_the_command_sent(state):
    end = ends.end_of(state_change(state))
    assert (end.command_id, end.state, end.detail) == ("af-" + "0" * 40, state, f"it {state.value}")
    assert ends.proved(end.proof, PROOF)


def test_a_change_that_is_no_end_or_of_another_kind_tells_nothing():
    assert ends.end_of(state_change(State.RUNNING)) is None
    shell = Command("s1", "shell", {"argv": ["true"]})
    record = TaskRecord.new_attempt(shell.to_json(), None, "w1").to(State.RUNNING).to(State.SUCCESS, exit_code=0)
    assert ends.end_of(json.dumps(record.state_change("default")).encode()) is None


@pytest.mark.parametrize("value", [None, b"", b"[]", b"{}", b'{"id": "x", "state": "nope"}', b"\xff"])
def test_anything_but_a_state_change_is_an_error_the_executor_logs(value):
    with pytest.raises((TypeError, ValueError, KeyError)):
        ends.end_of(value)


def test_an_end_without_the_proof_or_with_another_is_not_the_trys():
    forged = ends.end_of(state_change(State.SUCCESS, command("someone-else")))
    assert not ends.proved(forged.proof, PROOF)
    assert not ends.proved(None, PROOF) and not ends.proved(None, None)


def test_a_refused_command_is_known_by_its_proof_and_a_refused_cancel_is_not_the_try():
    refused = command()
    letter = dead_letter("runner is disabled", "cmds", 0, 7, refused.id.encode(), refused.encode())
    said = ends.refusal_of(encode_dead_letter(letter))
    assert said.error == "runner is disabled" and ends.proved(said.proof, PROOF) and not said.cut
    cancel = Command("revoke-x", CANCEL, {"target": refused.id})
    letter = dead_letter("bad", "cmds", 0, 8, refused.id.encode(), cancel.encode())
    assert ends.refusal_of(encode_dead_letter(letter)).proof is None


def test_a_dead_letter_cut_short_cannot_be_told_to_be_the_trys():
    huge = command().encode() + b" " * 100_000
    letter = dead_letter("too large", "cmds", 0, 9, b"k", huge)
    assert ends.refusal_of(encode_dead_letter(letter)).cut


@pytest.mark.parametrize(
    "state, is_try, told",
    [
        (State.SUCCESS, True, Verdict.SUCCESS),
        (State.FAILED, True, Verdict.FAILURE),
        (State.CANCELLED, True, Verdict.RELEASE),  # a revoke, or a try that runs elsewhere already
        (State.SUCCESS, False, Verdict.SUCCESS),
        (State.FAILED, False, Verdict.FAILURE),
        (State.CANCELLED, False, Verdict.FAILURE),  # a callback or a connection test did not succeed
    ],
)
def test_what_airflow_is_told(state, is_try, told):
    assert ends.verdict(state, is_try) is told

"""What the executor reads back, as plain code: the end of a command it sent, told by a state
change or a dead letter, whether it comes from the command sent for the try, and what Airflow is
told of it. Free of Airflow and of Kafka (``tests/unit/test_executor_ends.py``); the executor
(``executor.py``) reads the topics and tells Airflow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from airkafka_app.contract.airflow_tasks import KIND, PROOF, proof
from airkafka_app.contract.states import State


@dataclass(frozen=True)
class End:
    """The terminal state change of an ``airflow`` command."""

    command_id: str
    state: State
    detail: str
    # What the try's command carried to prove it was the executor's (contract/airflow_tasks.py).
    proof: str | None


@dataclass(frozen=True)
class Refusal:
    """A worker's dead letter of a command."""

    error: str
    # The refused command's proof; None when it was no ``airflow`` command (a cancel of one, say).
    proof: str | None
    # Only the start of the refused value was kept: which command it was cannot be told.
    cut: bool = False


class Verdict(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    # Left to Airflow: a cancelled try is a revoke, or a redelivered try that already runs
    # elsewhere (TaskAlreadyRunningError). Failing it would fail a live try; if the try really
    # died, Airflow's task heartbeat check fails it.
    RELEASE = "release"


def end_of(value: bytes | None) -> End | None:
    """The end a state change tells of an ``airflow`` command; None for any other state change.
    ValueError, TypeError or KeyError for anything but a state change (a tombstone among them)."""
    change = json.loads(value or b"null")
    task_id, state, detail = change["id"], State(change["state"]), str(change.get("detail") or "")
    if not state.is_terminal or change.get("kind") != KIND:
        return None
    airflow = change.get("airflow")
    return End(task_id, state, detail, airflow.get(PROOF) if isinstance(airflow, dict) else None)


def refusal_of(value: bytes | None) -> Refusal:
    """What a dead letter says of the refused command. ValueError, TypeError, KeyError or
    AttributeError for anything but a dead letter."""
    letter = json.loads(value or b"null")
    if "value_length" in letter:
        return Refusal(letter["error"], None, cut=True)
    refused = json.loads(letter["value"])
    args = refused.get("args") if refused.get("kind") == KIND else None
    return Refusal(letter["error"], proof(args.get("external_executor_id")) if isinstance(args, dict) else None)


def proved(claimed: str | None, sent: str | None) -> bool:
    """Whether a record's proof is the one of the command sent for the try: no other producer of
    commands or records can end a try of this executor's."""
    return claimed is not None and claimed == sent


def verdict(state: State, is_try: bool) -> Verdict:
    """What Airflow is told of a command's end: a callback or a connection test that did not
    succeed has failed; a try only when it failed."""
    if state is State.SUCCESS:
        return Verdict.SUCCESS
    if state is State.FAILED or not is_try:
        return Verdict.FAILURE
    return Verdict.RELEASE

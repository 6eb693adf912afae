"""How an Airflow task instance travels as an AirKafka command (Faust-free: the executor uses it).

The command id is derived from the task-instance key, so a redelivered workload for the
same try is a duplicate, while Airflow's next try gets a new id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airkafka_app.contract.commands import Command, InvalidCommand, shown

PREFIX = "af-"

KIND = "airflow"


def command_id(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    digest = hashlib.sha256("\0".join(map(str, (dag_id, task_id, run_id, map_index, try_number))).encode())
    return f"{PREFIX}{digest.hexdigest()[:40]}"


def workload_command(task_id: str, workload_json: str, external_executor_id: str | None) -> Command:
    """The command for one ``ExecuteTask`` workload (its ``model_dump_json()``)."""
    return Command(task_id, KIND, {"workload": workload_json, "external_executor_id": external_executor_id})


# The fields of a workload's task instance that name it, as Airflow's UI and API do.
IDENTITY = {"dag_id": str, "task_id": str, "run_id": str, "map_index": int, "try_number": int}
# A digest of the try's external_executor_id, a random UUID the scheduler gives each queued try:
# only the executor and the workers read the commands that carry it, so a state change with the
# digest of the try's own id can only have come from the command the executor sent.
PROOF = "executor_id_sha256"


def proof(external_executor_id: Any) -> str | None:
    if not isinstance(external_executor_id, str) or not external_executor_id:
        return None
    return hashlib.sha256(external_executor_id.encode()).hexdigest()


def check_id(command: Command) -> None:
    """``af-`` ids are the executor's: such an id belongs to an ``airflow`` command whose workload
    names the very try the id is made from, and an ``airflow`` command has such an id. Anything
    else under such an id could end or fail an Airflow try: InvalidCommand."""
    if command.kind != KIND and not command.id.startswith(PREFIX):
        return
    found = identity(command.to_json())
    if command.kind != KIND:
        raise InvalidCommand(f"id {shown(command.id)} is reserved to the Airflow executor's airflow commands")
    if found is None:
        raise InvalidCommand("airflow 'args.workload' does not name its task instance (ti: dag_id ... try_number)")
    names = {name: found[name] for name in IDENTITY}
    if command_id(**names) != command.id:
        raise InvalidCommand(f"airflow command id {shown(command.id)} is not the id of the try its workload names")


def identity(command: dict[str, Any]) -> dict[str, Any] | None:
    """The Airflow task instance an ``airflow`` command runs, read from its workload; None for
    another kind or a workload without it (its runner then refuses or fails it, saying why)."""
    if command.get("kind") != KIND or not isinstance(command.get("args"), dict):
        return None
    try:
        ti = json.loads(command["args"]["workload"])["ti"]
        found = {name: ti[name] for name in IDENTITY}
    except (KeyError, TypeError, ValueError, RecursionError):
        return None
    if not all(isinstance(found[name], kind) and not isinstance(found[name], bool) for name, kind in IDENTITY.items()):
        return None
    return found

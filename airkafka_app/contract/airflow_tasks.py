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


# Airflow's other workloads, by their ``type``: the field of theirs that names them, and the
# prefix of their commands' ids, under PREFIX so that those ids are the executor's too.
OTHER_WORKLOADS = {
    "ExecuteCallback": (("callback", "id"), f"{PREFIX}cb-"),
    "TestConnection": (("connection_test_id",), f"{PREFIX}ct-"),
}


def workload_id(workload_json: Any) -> str | None:
    """The command id of the workload a JSON string holds: a task's try (``command_id``), a
    callback or a connection test; None for anything else."""
    try:
        workload = json.loads(workload_json)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(workload, dict):
        return None
    kind = workload.get("type", "ExecuteTask")
    if kind == "ExecuteTask":
        found = identity({"kind": KIND, "args": {"workload": workload_json}})
        return command_id(**{name: found[name] for name in IDENTITY}) if found is not None else None
    if kind not in OTHER_WORKLOADS:
        return None
    path, prefix = OTHER_WORKLOADS[kind]
    name: Any = workload
    for field in path:
        name = name.get(field) if isinstance(name, dict) else None
    if not isinstance(name, str) or not name:
        return None
    return f"{prefix}{hashlib.sha256(name.encode()).hexdigest()[:40]}"


def workload_command(
    task_id: str, workload_json: str, external_executor_id: str | None, priority_weight: int = 0, pool_slots: int = 1
) -> Command:
    """The command for one workload (its ``model_dump_json()``), with its task's priority and slots."""
    args = {"workload": workload_json, "external_executor_id": external_executor_id}
    return Command(task_id, KIND, args, priority_weight=priority_weight, pool_slots=pool_slots)


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
    names the very try, callback or connection test the id is made from, and an ``airflow``
    command has such an id. Anything else under such an id could end or fail an Airflow try:
    InvalidCommand."""
    if command.kind != KIND and not command.id.startswith(PREFIX):
        return
    if command.kind != KIND:
        raise InvalidCommand(f"id {shown(command.id)} is reserved to the Airflow executor's airflow commands")
    expected = workload_id(command.args.get("workload"))
    if expected is None:
        raise InvalidCommand("airflow 'args.workload' names no task instance, callback or connection test")
    if expected != command.id:
        raise InvalidCommand(f"airflow command id {shown(command.id)} is not the id of the workload it carries")


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

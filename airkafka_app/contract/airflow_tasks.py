"""How an Airflow task instance travels as an AirKafka command (Faust-free: the executor uses it).

The command id is derived from the task-instance key, so a redelivered workload for the
same try is a duplicate, while Airflow's next try gets a new id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from airkafka_app.contract.commands import Command

KIND = "airflow"


def command_id(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    digest = hashlib.sha256("\0".join(map(str, (dag_id, task_id, run_id, map_index, try_number))).encode())
    return f"af-{digest.hexdigest()[:40]}"


def workload_command(task_id: str, workload_json: str, external_executor_id: str | None) -> Command:
    """The command for one ``ExecuteTask`` workload (its ``model_dump_json()``)."""
    return Command(task_id, KIND, {"workload": workload_json, "external_executor_id": external_executor_id})


# The fields of a workload's task instance that name it, as Airflow's UI and API do.
IDENTITY = {"dag_id": str, "task_id": str, "run_id": str, "map_index": int, "try_number": int}


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

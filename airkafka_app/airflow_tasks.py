"""How an Airflow task instance travels as an AirKafka command (Faust-free: the executor uses it).

The command id is derived from the task-instance key, so a redelivered workload for the
same try is a duplicate, while Airflow's next try gets a new id.
"""
from __future__ import annotations

import hashlib

from airkafka_app.commands import Command

KIND = "airflow"


def command_id(dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int) -> str:
    digest = hashlib.sha256("\0".join(map(str, (dag_id, task_id, run_id, map_index, try_number))).encode())
    return f"af-{digest.hexdigest()[:40]}"


def workload_command(task_id: str, workload_json: str, external_executor_id: str | None) -> Command:
    """The command for one ``ExecuteTask`` workload (its ``model_dump_json()``)."""
    return Command(task_id, KIND, {"workload": workload_json, "external_executor_id": external_executor_id})

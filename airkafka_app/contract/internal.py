"""Messages the workers of a queue send each other on its internal topic (Faust-free).

Each is keyed by its task's routing key, so it reaches the worker that owns the task's partition:
- a report carries a transition's record from a worker that no longer owned the partition, for
  the owner to store;
- a recovery request asks the owner to recover a task whose worker is lost.

They travel apart from user commands, on ``<app id>-internal`` (``settings.internal_topic_for``),
so that nobody who may only produce commands can forge one. docs/contract.md tells operators to let
only the workers' principal write the ``<app id>-`` topics, which hold the changelogs too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from airkafka_app.contract.airflow_tasks import identity
from airkafka_app.contract.commands import Command, InvalidCommand, decode_command, loads
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import MAX_EARLIER, TaskRecord

RECORD_FIELDS = {f.name for f in fields(TaskRecord)}
OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "worker": str,
    "exit_code": int,
    "detail": str,
    "queued_at": (int, float),
    "started_at": (int, float),
    "ended_at": (int, float),
    "updated_at": (int, float),
    "first_attempt": int,
    "source": str,
    "cancel_requested_by": str,
    "retry_at": (int, float),
}


@dataclass(frozen=True)
class Report:
    record: TaskRecord


@dataclass(frozen=True)
class Recover:
    command: Command


def encode_report(record: TaskRecord) -> bytes:
    # Without "airflow": it is derived from the command, and workers before it refuse the field.
    return json.dumps({"report": {k: v for k, v in record.to_json().items() if k != "airflow"}}).encode()


def encode_recover(command: Command) -> bytes:
    return json.dumps({"recover": command.to_json()}).encode()


def parse_record(data: Any) -> TaskRecord:
    """A record as stored, checked field by field; raises InvalidCommand saying what is wrong."""
    if not isinstance(data, dict) or not {"id", "state", "attempt", "command"} <= data.keys():
        raise InvalidCommand("a record needs id, state, attempt and command")
    # A field this version does not know is dropped: a newer worker's, during a rolling deploy.
    data = {name: value for name, value in data.items() if name in RECORD_FIELDS}
    if data["state"] not in State._value2member_map_:
        raise InvalidCommand("record 'state' is not a task state")
    if not isinstance(data["attempt"], int) or isinstance(data["attempt"], bool) or data["attempt"] < 1:
        raise InvalidCommand("record 'attempt' must be a positive integer")
    for name, kind in OPTIONAL_TYPES.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise InvalidCommand(f"record {name!r} has the wrong type")
    earlier = data.get("earlier", [])
    if not isinstance(earlier, list) or len(earlier) > MAX_EARLIER or not all(isinstance(e, dict) for e in earlier):
        raise InvalidCommand(f"record 'earlier' must be a list of at most {MAX_EARLIER} objects")
    command = decode_command(None, json.dumps(data["command"]).encode())
    if command.id != data["id"]:
        raise InvalidCommand("record 'id' differs from its command's")
    return TaskRecord.from_json({**data, "airflow": identity(data["command"])})


def decode_internal(value: bytes | None) -> Report | Recover:
    """One message of the internal topic, or InvalidCommand saying why it is none."""
    try:
        data = loads((value or b"").decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidCommand("internal message is not UTF-8") from None
    if not isinstance(data, dict) or len(data) != 1:
        raise InvalidCommand('internal message must be {"report": <record>} or {"recover": <command>}')
    ((kind, body),) = data.items()
    if kind == "report":
        return Report(parse_record(body))
    if kind == "recover":
        return Recover(decode_command(None, json.dumps(body).encode()))
    raise InvalidCommand(f"unknown internal message {kind[:80]!r}")

"""The ``tasks`` table: every task's record, the truth about it, and the source of state changes.

Writes need Faust's current event (its partition picks the RocksDB partition and the
changelog partition), so they happen while a command is processed, or in a run that
was started from it and keeps it as its context.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from airkafka_app import topics
from airkafka_app.application import app
from airkafka_app.settings import settings
from airkafka_app.states import State
from airkafka_app.task_record import TaskRecord

log = logging.getLogger(__name__)

# bytes keys: table_route hashes the key as the changelog serializes it, and raw
# bytes hash exactly as the producers' keys do (a JSON str key would carry quotes).
table = app.Table(
    "tasks",
    key_type=bytes,
    partitions=settings.partitions,
    help="Task id -> the task's record.",
)


def load(task_id: str) -> TaskRecord | None:
    data = table.get(task_id.encode())
    return TaskRecord.from_json(data) if data is not None else None


def save(record: TaskRecord) -> TaskRecord:
    """Store the record and publish its state change, in that order."""
    key = record.id.encode()
    table[key] = record.to_json()
    topics.state_changes.send_soon(key=key, value=json.dumps(record.state_change()).encode())
    # Failures, retries and cancels are what an operator acts on; routine transitions
    # stay at DEBUG, since at a thousand tasks a second they would drown the log.
    level = logging.DEBUG if record.state in (State.QUEUED, State.RUNNING, State.SUCCESS) else logging.INFO
    summary = record.detail.partition("\n")[0]
    log.log(level, "task %s attempt %d %s %s", record.id, record.attempt, record.state.value, summary)
    return record


def transition(task_id: str, state: State, **changes: Any) -> TaskRecord:
    """Move a stored task to ``state``, from its current record in the table."""
    current = load(task_id)
    if current is None:
        raise KeyError(task_id)
    return save(current.to(state, **changes))

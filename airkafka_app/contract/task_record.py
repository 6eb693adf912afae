"""A task's record in the table, and the state-change record each transition emits.

Faust-free: both are plain JSON-ready dicts on the wire, read by the executor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from airkafka_app.contract.airflow_tasks import PROOF, identity, proof
from airkafka_app.contract.states import State, check_transition

# A record must fit one Kafka message on its changelog: below Kafka's default limit of
# 1,048,588 bytes, with room for the batch around it.
MAX_RECORD_BYTES = 1_000_000
# The earlier attempts a record keeps, newest last, each with the start of its detail.
MAX_EARLIER = 10
EARLIER_DETAIL_CHARS = 200
# What a record may gain after it is queued: a detail of up to 4 KiB of output, escaped, and the
# earlier attempts, each under 3 KiB escaped.
DETAIL_ROOM = 32 * 1024 + MAX_EARLIER * 3 * 1024


@dataclass(frozen=True)
class TaskRecord:
    id: str
    state: State
    attempt: int
    command: dict[str, Any]
    worker: str | None = None
    exit_code: int | None = None
    detail: str = ""
    queued_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    updated_at: float = field(default_factory=time.time)
    # The attempt this delivery of the command started at: its retries are counted from here.
    first_attempt: int | None = None
    # "partition:offset" of the command message that started it: Kafka may deliver that very
    # message again (after a rebalance), and it must not start a run a second time.
    source: str | None = None
    # The cancel sent on to the worker running the task, elsewhere since a rebalance: should
    # that run be recovered rather than end, it ends cancelled instead of running again.
    cancel_requested_by: str | None = None
    # dag_id, task_id, run_id, map_index and try_number of an ``airflow`` task, from its workload.
    airflow: dict[str, Any] | None = None
    # The task's earlier attempts, as ``summary()`` gives them: what a dashboard shows of its past.
    earlier: Sequence[dict[str, Any]] = ()
    # When an ``up_for_retry`` task's next attempt is due (wall clock); None: at once. The task
    # waits in the table, not in a worker's memory (worker/pool.py).
    retry_at: float | None = None

    @classmethod
    def new_attempt(
        cls, command: dict[str, Any], previous: TaskRecord | None, worker: str, source: str | None = None
    ) -> TaskRecord:
        check_transition(previous.state if previous else None, State.QUEUED)
        now = time.time()
        attempt = previous.attempt + 1 if previous else 1
        return cls(
            id=command["id"],
            state=State.QUEUED,
            attempt=attempt,
            first_attempt=attempt,
            command=command,
            worker=worker,
            queued_at=now,
            updated_at=now,
            source=source,
            airflow=identity(command),
            earlier=previous.with_this_attempt() if previous else (),
        )

    def leaves_room(self, raw_command_bytes: int) -> bool:
        """Whether every later record of this attempt fits the changelog. Checked exactly only for
        a large command: escaping grows a byte of JSON to at most six."""
        if raw_command_bytes * 6 + DETAIL_ROOM <= MAX_RECORD_BYTES:
            return True
        return len(json.dumps(self.to_json())) + DETAIL_ROOM <= MAX_RECORD_BYTES

    def summary(self) -> dict[str, Any]:
        """This attempt, as the records of later ones keep it."""
        return {
            "attempt": self.attempt,
            "state": self.state.value,
            "worker": self.worker,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "ended_at": self.ended_at or self.updated_at,
            "detail": self.detail[:EARLIER_DETAIL_CHARS],
        }

    def with_this_attempt(self) -> tuple[dict[str, Any], ...]:
        """The earlier attempts of the next attempt."""
        return (*self.earlier, self.summary())[-MAX_EARLIER:]

    @property
    def retries_used(self) -> int:
        return self.attempt - (self.first_attempt or self.attempt)

    def to(self, state: State, **changes: Any) -> TaskRecord:
        """The record after a transition; raises IllegalTransition for a wrong move."""
        check_transition(self.state, state)
        now = time.time()
        if state is State.RUNNING:
            if self.state is State.UP_FOR_RETRY:
                changes.setdefault("attempt", self.attempt + 1)
                changes.setdefault("earlier", self.with_this_attempt())
            changes.setdefault("started_at", now)
            changes.setdefault("exit_code", None)
            changes.setdefault("detail", "")
        if state.is_terminal:
            changes.setdefault("ended_at", now)
        changes.setdefault("retry_at", None)
        return replace(self, state=state, updated_at=now, **changes)

    def due_in(self, now: float) -> float:
        """Seconds until this task's next attempt is due; 0 or less: due."""
        return (self.retry_at or now) - now if self.state is State.UP_FOR_RETRY else 0.0

    def to_json(self) -> dict[str, Any]:
        # Shallow, unlike dataclasses.asdict, which deep-copies the command on every transition.
        data = dict(vars(self))
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        # A field a newer version added is left out: during a rolling deploy both versions read
        # each other's records.
        known = {name: value for name, value in data.items() if name in _FIELDS}
        return cls(**{**known, "state": State(data["state"])})

    def state_change(self, queue: str | None = None) -> dict[str, Any]:
        """The value published on the state-changes topic for this transition."""
        change = {
            "id": self.id,
            "state": self.state.value,
            "attempt": self.attempt,
            "at": self.updated_at,
            "worker": self.worker,
            "exit_code": self.exit_code,
            "detail": self.detail,
            "kind": self.command.get("kind"),
        }
        if queue is not None:
            change["queue"] = queue
        if self.airflow is not None:
            digest = proof(self.command["args"].get("external_executor_id"))
            change["airflow"] = self.airflow if digest is None else {**self.airflow, PROOF: digest}
        return change


_FIELDS = frozenset(item.name for item in fields(TaskRecord))

REDACTED = "<redacted>"


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the views show it: the values of its command's ``env``, and the token of
    an Airflow workload, are hidden."""
    command = data.get("command")
    if not isinstance(command, dict) or not isinstance(args := command.get("args"), dict):
        return data
    if isinstance(args.get("env"), dict):
        args = {**args, "env": dict.fromkeys(args["env"], REDACTED)}
    if isinstance(args.get("workload"), str):
        args = {**args, "workload": _workload_without_token(args["workload"])}
    return {**data, "command": {**command, "args": args}}


def _workload_without_token(workload: str) -> str:
    try:
        parsed = json.loads(workload)
    except ValueError:
        return REDACTED
    if not isinstance(parsed, dict):
        return REDACTED
    return json.dumps({**parsed, "token": REDACTED} if "token" in parsed else parsed)

"""The ``airflow`` runner: one Airflow workload (a task's try, a callback such as a missed
deadline's, or a connection test), supervised by the Task SDK as LocalExecutor's workers do.

It runs in Airflow's own interpreter (``AIRKAFKA_AIRFLOW_PYTHON``), which cannot share a
venv with Faust, forked by the worker's Airflow fork server. The supervisor can exit 0 for a
failed task, so a task's real final state is read from the supervisor's ``Workload finished``
log record, never the exit code; a callback's or a connection test's is its exit code.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from pathlib import PurePosixPath

from airkafka_app.contract.commands import Command, InvalidCommand, shown
from airkafka_app.contract.states import State
from airkafka_app.worker.runners import Outcome, Output, airflow_fork_server
from airkafka_app.worker.runners.fork_client import RUN_PATH, ForkServer
from airkafka_app.worker.runners.process import with_tail

ARG_FIELDS = frozenset({"workload", "external_executor_id"})
TASK = "ExecuteTask"
# Paths of a workload that Airflow joins to its DAGs folder and its logs folder.
PATH_FIELDS = ("dag_rel_path", "log_path")


def _is_plain_relative(path: object) -> bool:
    return (
        isinstance(path, str)
        and bool(path)
        and not path.startswith("/")
        and "\0" not in path
        and ".." not in PurePosixPath(path).parts
    )


class FinalState:
    """Picks the ``final_state`` out of the supervisor's JSON log lines."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.already_running = False

    def __call__(self, line: bytes) -> None:
        if b"Workload finished" in line:
            try:
                self.value = json.loads(line).get("final_state")
            except ValueError:
                pass
        elif b"TaskAlreadyRunningError" in line:
            self.already_running = True

    def and_then(self, output: Output | None) -> Output:
        """This, and then ``output``, for each line."""
        if output is None:
            return self

        def both(line: bytes) -> None:
            self(line)
            output(line)

        return both


def token_expiry(workload_json: str) -> float | None:
    """The ``exp`` of the workload's token (valid for ``task_queued_timeout`` after queueing).

    Read without verifying: the API server verifies it; this only says why a run would fail.
    """
    try:
        payload = json.loads(workload_json)["token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (KeyError, IndexError, ValueError, TypeError, binascii.Error):
        return None


class AirflowRunner:
    def __init__(self, python: str, containment: str = "auto") -> None:
        self.python = python
        self.fork_server = ForkServer([python, "-c", RUN_PATH, airflow_fork_server.__file__, containment])

    @property
    def disabled(self) -> str | None:
        return None if self.python else "AIRKAFKA_AIRFLOW_PYTHON is not set"

    def check(self, command: Command) -> None:
        unknown = sorted(set(command.args) - ARG_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown airflow arg(s): {', '.join(unknown)}")
        workload = command.args.get("workload")
        if not isinstance(workload, str) or not workload.startswith("{"):
            raise InvalidCommand("airflow 'args.workload' must be an ExecuteTask workload as a JSON string")
        try:
            parsed = json.loads(workload)
        except (ValueError, RecursionError):
            raise InvalidCommand("airflow 'args.workload' is not valid JSON") from None
        for field in PATH_FIELDS:
            if (path := parsed.get(field)) is not None and not _is_plain_relative(path):
                raise InvalidCommand(
                    f"airflow workload {field!r} must be a relative path without '..': {shown(str(path))}"
                )

    async def run(self, command: Command, output: Output | None = None) -> Outcome:
        expiry = token_expiry(command.args["workload"])
        if expiry is not None and expiry < time.time():
            return Outcome(
                State.FAILED,
                None,
                (
                    f"workload token expired {time.time() - expiry:.0f}s ago: it waited longer than Airflow's "
                    "[scheduler] task_queued_timeout; Airflow will re-queue the task"
                ),
            )
        final = FinalState()
        try:
            finished = await self.fork_server.run(
                command.args["workload"], timeout_s=command.timeout_s, on_line=final.and_then(output)
            )
        except OSError as exc:
            return Outcome(State.FAILED, None, f"cannot run the workload with {self.python!r}: {exc}")
        exit_code, summary = finished.summary(command.timeout_s)
        if (kind := json.loads(command.args["workload"]).get("type", TASK)) != TASK:
            # A callback or a connection test: its supervisor's exit code is its end.
            state = State.SUCCESS if exit_code == 0 else State.FAILED
            return Outcome(state, exit_code, with_tail(f"airflow {kind}: {summary}", finished.tail))
        if final.already_running:
            # A redelivered workload whose task runs elsewhere: not a failure of that task.
            return Outcome(
                State.CANCELLED, exit_code, with_tail("task instance is already running elsewhere", finished.tail)
            )
        if final.value is None:
            return Outcome(
                State.FAILED, exit_code, with_tail(f"{summary}; the supervisor reported no final state", finished.tail)
            )
        if final.value == "success":
            return Outcome(
                State.SUCCESS, exit_code, with_tail(f"airflow final state success; {summary}", finished.tail)
            )
        # The supervisor exits 0 after a task it ran has failed: its exit code says nothing of the task.
        return Outcome(
            State.FAILED,
            exit_code or None,
            with_tail(f"airflow final state {final.value}; supervisor {summary}", finished.tail),
        )

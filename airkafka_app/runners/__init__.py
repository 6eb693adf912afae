"""Runners execute one command kind each; the registry maps ``kind`` to its runner."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.settings import settings
from airkafka_app.contract.states import State

if TYPE_CHECKING:
    from airkafka_app.runners.shell import ShellRunner


# Takes each line of a task's output, as bytes.
Output = Callable[[bytes], None]


class Outcome(NamedTuple):
    state: State
    exit_code: int | None
    detail: str


class Runner(Protocol):
    # Why this worker cannot run the kind at all (its setting is missing), or None.
    disabled: str | None

    def check(self, command: Command) -> None:
        """Raise InvalidCommand when the args cannot run; never executes anything."""

    async def run(self, command: Command, output: Output | None = None) -> Outcome:
        """Run it; ``output``, when given, is handed each line of its output as it comes."""
        ...


@functools.cache
def registry() -> dict[str, Runner]:
    """The runner of each kind, built once, from the settings."""
    from airkafka_app.runners.airflow import AirflowRunner
    from airkafka_app.runners.shell import ShellRunner
    from airkafka_app.runners.trigger_dag import AirflowApi, TriggerDagRunner

    s = settings
    api = AirflowApi(s.airflow_api_url, s.airflow_username, s.airflow_password, s.trigger_attempts)
    return {
        "shell": ShellRunner(s.shell_allow, s.shell_env_allow, s.task_containment, s.task_user, s.task_group),
        "airflow": AirflowRunner(s.airflow_python, s.task_containment),
        "trigger_dag": TriggerDagRunner(api, s.trigger_poll_s, s.trigger_dag_allow),
    }


def shell_runner() -> ShellRunner:
    """The ``shell`` runner, whose spawn server contains every task it starts."""
    from airkafka_app.runners.shell import ShellRunner

    runner = registry()["shell"]
    assert isinstance(runner, ShellRunner)
    return runner


def enabled_kinds() -> list[str]:
    return sorted(kind for kind, runner in registry().items() if runner.disabled is None)


def runner_for(runners: Mapping[str, Runner], command: Command) -> Runner:
    """The command's runner, after it has accepted the args."""
    try:
        runner = runners[command.kind]
    except KeyError:
        raise InvalidCommand(f"unknown kind {command.kind!r} (known: {', '.join(sorted(runners))})") from None
    runner.check(command)
    if runner.disabled is not None:
        raise InvalidCommand(f"{command.kind} runner is disabled on worker {settings.worker_name}: {runner.disabled}")
    return runner

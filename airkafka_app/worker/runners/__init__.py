"""Runners execute one command kind each; the registry maps ``kind`` to its runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.states import State

if TYPE_CHECKING:
    from airkafka_app.worker.runners.shell import ShellRunner


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


def registry(settings: Settings) -> dict[str, Runner]:
    """The runner of each kind, from the settings."""
    from airkafka_app.worker.runners.airflow import AirflowRunner
    from airkafka_app.worker.runners.shell import ShellRunner
    from airkafka_app.worker.runners.trigger_dag import AirflowApi, TriggerDagRunner

    s = settings
    api = AirflowApi(s.airflow_api_url, s.airflow_username, s.airflow_password, s.trigger_attempts)
    return {
        "shell": ShellRunner(s.shell_allow, s.shell_env_allow, s.task_containment, s.task_user, s.task_group),
        "airflow": AirflowRunner(s.airflow_python, s.task_containment),
        "trigger_dag": TriggerDagRunner(api, s.trigger_poll_s, s.trigger_dag_allow),
    }


def shell_runner(runners: Mapping[str, Runner]) -> ShellRunner:
    """The ``shell`` runner, whose spawn server contains every task it starts."""
    from airkafka_app.worker.runners.shell import ShellRunner

    runner = runners["shell"]
    assert isinstance(runner, ShellRunner)
    return runner


def enabled_kinds(runners: Mapping[str, Runner]) -> list[str]:
    return sorted(kind for kind, runner in runners.items() if runner.disabled is None)


def runner_for(runners: Mapping[str, Runner], command: Command, worker: str = "this worker") -> Runner:
    """The command's runner, after it has accepted the args."""
    try:
        runner = runners[command.kind]
    except KeyError:
        raise InvalidCommand(f"unknown kind {command.kind!r} (known: {', '.join(sorted(runners))})") from None
    runner.check(command)
    if runner.disabled is not None:
        raise InvalidCommand(f"{command.kind} runner is disabled on {worker}: {runner.disabled}")
    return runner

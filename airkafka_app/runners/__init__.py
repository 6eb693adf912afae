"""Runners execute one command kind each; the registry maps ``kind`` to its runner."""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from airkafka_app.commands import Command, InvalidCommand
from airkafka_app.states import State


class Outcome(NamedTuple):
    state: State
    exit_code: int | None
    detail: str


class Runner(Protocol):
    def check(self, command: Command) -> None:
        """Raise InvalidCommand when the args cannot run; never executes anything."""

    async def run(self, command: Command) -> Outcome: ...


def build_registry() -> dict[str, Runner]:
    from airkafka_app.runners.airflow import AirflowRunner
    from airkafka_app.runners.shell import ShellRunner
    from airkafka_app.runners.trigger_dag import AirflowApi, TriggerDagRunner
    from airkafka_app.settings import settings as s

    api = AirflowApi(s.airflow_api_url, s.airflow_username, s.airflow_password, s.trigger_attempts)
    return {
        "shell": ShellRunner(allow=s.shell_allow, env_allow=s.shell_env_allow),
        "airflow": AirflowRunner(s.airflow_python),
        "trigger_dag": TriggerDagRunner(api, s.trigger_poll_s),
    }


def runner_for(registry: dict[str, Any], command: Command) -> Runner:
    """The command's runner, after it has accepted the args."""
    try:
        runner = registry[command.kind]
    except KeyError:
        raise InvalidCommand(f"unknown kind {command.kind!r} (known: {', '.join(sorted(registry))})") from None
    runner.check(command)
    return runner

"""The ``shell`` runner: an allowlisted argv, run without a shell, in a container of its own.

The spawn server (``spawn_server.py``) starts each process in its container, so that the
worker's loop never waits on a spawn, and so that no task starts outside a container.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterable

from airkafka_app.contract.commands import Command, InvalidCommand, shown
from airkafka_app.contract.states import State
from airkafka_app.worker.runners import Outcome, Output
from airkafka_app.worker.runners.containment import Cgroups, slow_migrations
from airkafka_app.worker.runners.environment import check_env, check_text
from airkafka_app.worker.runners.fork_client import ForkServer, ForkServerLost
from airkafka_app.worker.runners.process import with_tail

ARG_FIELDS = frozenset({"argv", "env", "cwd"})
# Programs that run a program their arguments name.
RUNS_OTHER_PROGRAMS = frozenset(
    "sh bash dash zsh ksh fish csh tcsh busybox env xargs find timeout nice nohup setsid sudo su chroot "
    "flock stdbuf watch time strace awk gawk mawk make parallel ssh docker kubectl".split()
)
INTERPRETER = re.compile(r"(python|perl|ruby|node|php|lua|tclsh|java|Rscript|osascript)[0-9.]*")
MAX_ARGS = 4096


class ShellRunner:
    """``allow``: the programs ``argv[0]`` may name, as written; ``env_allow``: the names, or
    shell-style patterns of names, that a command's ``env`` may set."""

    def __init__(
        self,
        allow: Iterable[str],
        env_allow: Iterable[str] = (),
        containment: str = "auto",
        user: str = "",
        group: str = "",
    ) -> None:
        self.allow = frozenset(allow)
        self.env_allow = tuple(env_allow)
        self.user = user
        server = [sys.executable, "-m", "airkafka_app.worker.runners.spawn_server", containment, user, group]
        self.spawner = ForkServer(server)
        # Each allowed program as the worker's PATH finds it; the command's env cannot change it.
        self._paths: dict[str, str] = {}
        self.containment: str | None = None  # as the spawn server says, once started

    async def start(self) -> str:
        """Start the spawn server now, so that the worker says as it starts how tasks are contained;
        OSError when they cannot be (``AIRKAFKA_TASK_CONTAINMENT=cgroup`` without cgroups)."""
        self.containment = (await self.spawner.connection()).containment or "unknown"
        return self.containment

    @property
    def disabled(self) -> str | None:
        return None if self.allow else "AIRKAFKA_SHELL_ALLOW is empty"

    def check(self, command: Command) -> None:
        args = command.args
        unknown = sorted(set(args) - ARG_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown shell arg(s): {shown(', '.join(unknown))}")
        argv = args.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise InvalidCommand("shell 'args.argv' must be a non-empty list of strings")
        if len(argv) > MAX_ARGS:
            raise InvalidCommand(f"shell 'args.argv' has over {MAX_ARGS} items")
        for n, arg in enumerate(argv):
            check_text(f"argv[{n}]", arg)
        env = args.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise InvalidCommand("shell 'args.env' must map strings to strings")
        cwd = args.get("cwd", "")
        if not isinstance(cwd, str):
            raise InvalidCommand("shell 'args.cwd' must be a string")
        check_text("cwd", cwd)
        if self.disabled is None and argv[0] not in self.allow:
            raise InvalidCommand(f"shell program {shown(argv[0])} is not on AIRKAFKA_SHELL_ALLOW")
        check_env(env, self.env_allow)
        if self.disabled is None:
            self.path_of(argv[0])

    def path_of(self, program: str) -> str:
        """The absolute path of the file the allowed ``program`` names: itself when it holds a '/',
        else as the worker's own PATH finds it, from the worker's directory either way, so that a
        command's ``cwd`` cannot choose another file. Raises InvalidCommand when there is none."""
        if (path := self._paths.get(program)) is None:
            if "/" not in program:
                if (path := shutil.which(program)) is None:
                    raise InvalidCommand(f"shell program {program!r} is not found on the worker's PATH")
            elif os.access(program, os.X_OK):
                path = program
            else:
                raise InvalidCommand(f"shell program {program!r} is not an executable file")
            self._paths[program] = path = os.path.abspath(path)
        return path

    def start_up_warnings(self) -> list[str]:
        """What an operator should hear of the allowlist as the worker starts: entries that name
        no program here, and programs that run whatever program their arguments name; and of
        cgroups that make a task wait to start."""
        warnings = []
        if (self.containment or "").startswith(Cgroups.mode) and (slow := slow_migrations()) is not None:
            warnings.append(slow)
        if os.geteuid() == 0 and not self.user:
            warnings.append(
                "the worker runs as root and AIRKAFKA_TASK_USER is empty: tasks run as root too, and can read "
                "the worker's memory, data directory and venv"
            )
        for program in sorted(self.allow):
            try:
                path = self.path_of(program)
            except InvalidCommand as exc:
                warnings.append(f"{exc}; its commands will be dead-lettered")
                continue
            if os.path.basename(path) in RUNS_OTHER_PROGRAMS or _is_interpreter(os.path.basename(path)):
                warnings.append(
                    f"shell program {program!r} ({path}) can run any other program: AIRKAFKA_SHELL_ALLOW "
                    "then limits nothing, and only the task's container holds it"
                )
        return warnings

    async def run(self, command: Command, output: Output | None = None) -> Outcome:
        args = command.args
        program = args["argv"][0]
        payload = {
            "argv": args["argv"],
            "executable": self.path_of(program),
            "env": args.get("env") or None,
            "cwd": args.get("cwd") or None,
            "limits": command.limits,
        }
        try:
            finished = await self.spawner.run(payload, timeout_s=command.timeout_s, on_line=output)
        except ForkServerLost as exc:
            return Outcome(State.FAILED, None, f"{program!r} lost: {exc}")
        except (OSError, ValueError, InvalidCommand) as exc:
            return Outcome(State.FAILED, None, f"cannot start {program!r}: {exc}")
        exit_code, summary = finished.summary(command.timeout_s)
        return Outcome(State.SUCCESS if exit_code == 0 else State.FAILED, exit_code, with_tail(summary, finished.tail))


def _is_interpreter(name: str) -> bool:
    return INTERPRETER.fullmatch(name) is not None

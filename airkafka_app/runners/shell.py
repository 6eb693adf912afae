"""The ``shell`` runner: an allowlisted argv, run without a shell, in its own process group.

A spawn holds the worker's event loop until the child has called exec. Alone, a run spawns its
process itself: the loop has nothing else to do, and the spawn server's wake-ups would only
add to the run's latency; the spawn server only watches it, to kill it if the worker ends.
Beside other runs, it hands the spawn to the spawn server (``spawn_server.py``), and the loop
goes on reading commands and publishing states.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable

from airkafka_app.contract.commands import Command, InvalidCommand, shown
from airkafka_app.contract.states import State
from airkafka_app.runners import Outcome
from airkafka_app.runners.environment import check_env, check_text
from airkafka_app.runners.fork_client import ForkServer, ForkServerLost
from airkafka_app.runners.process import Finished, run_process, with_tail

ARG_FIELDS = frozenset({"argv", "env", "cwd"})
MAX_ARGS = 4096


class ShellRunner:
    """``allow``: the programs ``argv[0]`` may name, as written; ``env_allow``: the names, or
    shell-style patterns of names, that a command's ``env`` may set."""

    def __init__(self, allow: Iterable[str], env_allow: Iterable[str] = ()) -> None:
        self.allow = frozenset(allow)
        self.env_allow = tuple(env_allow)
        self.spawner = ForkServer([sys.executable, "-m", "airkafka_app.runners.spawn_server"])
        self._running = 0
        # Each allowed program as the worker's PATH finds it; the command's env cannot change it.
        self._paths: dict[str, str] = {}

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
        """The file the allowed ``program`` names: itself when it holds a '/', else as the
        worker's own PATH finds it. Raises InvalidCommand when there is none."""
        if (path := self._paths.get(program)) is None:
            if "/" not in program:
                if (path := shutil.which(program)) is None:
                    raise InvalidCommand(f"shell program {program!r} is not found on the worker's PATH")
            elif os.access(program, os.X_OK):
                path = program
            else:
                raise InvalidCommand(f"shell program {program!r} is not an executable file")
            self._paths[program] = path
        return path

    async def run(self, command: Command) -> Outcome:
        program = command.args["argv"][0]
        self._running += 1
        try:
            finished = await (self._spawn_here if self._running == 1 else self._spawn_in_server)(command)
        except ForkServerLost as exc:
            return Outcome(State.FAILED, None, f"{program!r} lost: {exc}")
        except (OSError, ValueError, InvalidCommand) as exc:
            return Outcome(State.FAILED, None, f"cannot start {program!r}: {exc}")
        finally:
            self._running -= 1
        exit_code, summary = finished.summary(command.timeout_s)
        return Outcome(State.SUCCESS if exit_code == 0 else State.FAILED, exit_code, with_tail(summary, finished.tail))

    async def _spawn_here(self, command: Command) -> Finished:
        args = command.args
        env = {**os.environ, **args["env"]} if args.get("env") else None
        # The spawn server kills it if the worker ends while it runs.
        server = await self.spawner.connection()
        return await run_process(
            args["argv"],
            executable=self.path_of(args["argv"][0]),
            env=env,
            cwd=args.get("cwd") or None,
            timeout_s=command.timeout_s,
            on_start=server.watch,
        )

    async def _spawn_in_server(self, command: Command) -> Finished:
        args = command.args
        payload = {
            "argv": args["argv"],
            "executable": self.path_of(args["argv"][0]),
            "env": args.get("env") or None,
            "cwd": args.get("cwd") or None,
        }
        return await self.spawner.run(payload, timeout_s=command.timeout_s)

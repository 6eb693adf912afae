"""The ``shell`` runner: an allowlisted argv, run without a shell, in its own process group."""
from __future__ import annotations

import os
from collections.abc import Iterable

from airkafka_app.commands import Command, InvalidCommand
from airkafka_app.runners import Outcome
from airkafka_app.runners.process import run_process, with_tail
from airkafka_app.states import State

ARG_FIELDS = frozenset({"argv", "env", "cwd"})


class ShellRunner:
    def __init__(self, allow: Iterable[str]) -> None:
        self.allow = frozenset(allow)

    def check(self, command: Command) -> None:
        args = command.args
        unknown = sorted(set(args) - ARG_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown shell arg(s): {', '.join(unknown)}")
        argv = args.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise InvalidCommand("shell 'args.argv' must be a non-empty list of strings")
        env = args.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise InvalidCommand("shell 'args.env' must map strings to strings")
        if not isinstance(args.get("cwd", ""), str):
            raise InvalidCommand("shell 'args.cwd' must be a string")
        if not self.allow:
            raise InvalidCommand("shell runner is disabled: AIRKAFKA_SHELL_ALLOW is empty")
        if argv[0] not in self.allow:
            raise InvalidCommand(f"shell program {argv[0]!r} is not on AIRKAFKA_SHELL_ALLOW")

    async def run(self, command: Command) -> Outcome:
        args = command.args
        env = {**os.environ, **args["env"]} if args.get("env") else None
        try:
            finished = await run_process(args["argv"], env=env, cwd=args.get("cwd") or None, timeout_s=command.timeout_s)
        except OSError as exc:
            return Outcome(State.FAILED, None, f"cannot start {args['argv'][0]!r}: {exc}")
        exit_code, summary = finished.summary(command.timeout_s)
        return Outcome(State.SUCCESS if exit_code == 0 else State.FAILED, exit_code, with_tail(summary, finished.tail))

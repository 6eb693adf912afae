"""The ``shell`` runner: an argv run without a shell, in its own process group."""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable

from airkafka_app.commands import Command, InvalidCommand
from airkafka_app.runners import Outcome
from airkafka_app.states import State

TAIL_BYTES = 4096
ARG_FIELDS = frozenset({"argv", "env", "cwd"})


class OutputTail:
    """Keeps only the last TAIL_BYTES of a process's output, however much it writes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._buffer += chunk
            del self._buffer[:-TAIL_BYTES]

    def text(self) -> str:
        return self._buffer.decode("utf-8", errors="replace")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe(returncode: int) -> tuple[int, str]:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return 128 - returncode, f"killed by {name}"
    return returncode, f"exit code {returncode}"


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
            proc = await asyncio.create_subprocess_exec(
                *args["argv"],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=args.get("cwd") or None,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(State.FAILED, None, f"cannot start {args['argv'][0]!r}: {exc}")
        tail = OutputTail()
        try:
            await asyncio.wait_for(self._finish(proc, tail), command.timeout_s)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return Outcome(State.FAILED, None, _with_tail(f"timeout after {command.timeout_s:g}s", tail))
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        exit_code, summary = _describe(proc.returncode)
        state = State.SUCCESS if exit_code == 0 else State.FAILED
        return Outcome(state, exit_code, _with_tail(summary, tail))

    @staticmethod
    async def _finish(proc: asyncio.subprocess.Process, tail: OutputTail) -> None:
        assert proc.stdout is not None
        await tail.drain(proc.stdout)
        await proc.wait()


def _with_tail(summary: str, tail: OutputTail) -> str:
    text = tail.text()
    return f"{summary}\n{text}" if text else summary

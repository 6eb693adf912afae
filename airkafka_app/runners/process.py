"""A child process in its own group, with a timeout that kills the group and a tail of its output."""
from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TAIL_BYTES = 4096


class OutputTail:
    """Keeps only the last TAIL_BYTES of a process's output, and shows each line to ``on_line``."""

    def __init__(self, on_line: Callable[[bytes], None] | None = None) -> None:
        self._buffer = bytearray()
        self._on_line = on_line

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                chunk = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as end:
                chunk = end.partial
            except asyncio.LimitOverrunError as long_line:
                chunk = await stream.read(long_line.consumed)
            if not chunk:
                return
            self._buffer += chunk
            del self._buffer[:-TAIL_BYTES]
            if self._on_line is not None:
                self._on_line(chunk)

    def text(self) -> str:
        return self._buffer.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None: killed at the timeout
    tail: str

    def summary(self, timeout_s: float | None) -> tuple[int | None, str]:
        """(exit code, one-line summary); a signal N is reported as 128+N, as shells do."""
        if self.returncode is None:
            return None, f"timeout after {timeout_s:g}s"
        if self.returncode < 0:
            return 128 - self.returncode, f"killed by {signal.Signals(-self.returncode).name}"
        return self.returncode, f"exit code {self.returncode}"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
    on_line: Callable[[bytes], None] | None = None,
) -> Finished:
    """Run ``argv`` without a shell; raises OSError when it cannot start."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    tail = OutputTail(on_line)
    try:
        await asyncio.wait_for(_finish(proc, tail), timeout_s)
    except asyncio.TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return Finished(None, tail.text())
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    return Finished(proc.returncode, tail.text())


async def _finish(proc: asyncio.subprocess.Process, tail: OutputTail) -> None:
    assert proc.stdout is not None
    await tail.drain(proc.stdout)
    await proc.wait()


def with_tail(summary: str, tail: str) -> str:
    return f"{summary}\n{tail}" if tail else summary

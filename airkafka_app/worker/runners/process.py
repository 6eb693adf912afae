"""A task's process followed on the worker's loop: the tail of its output, its end, and a timeout
that kills its container.

The event loop watches the output pipe as a raw fd: asyncio's subprocess transports cost the
loop a third more per spawn (0.38 against 0.28 ms of the worker's CPU per `true`, measured
here), and a worker spawns hundreds a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

TAIL_BYTES = 4096
# A line longer than this reaches ``on_line`` in pieces, so that no output is held without bound.
MAX_LINE_BYTES = 64 * 1024
READ_BYTES = 64 * 1024
# After a task's exit, how long its output may take to reach its end.
OUTPUT_AFTER_EXIT_S = 2.0


class OutputTail:
    """Keeps only the last TAIL_BYTES of a process's output, and shows each line to ``on_line``."""

    def __init__(self, on_line: Callable[[bytes], None] | None = None) -> None:
        self._buffer = bytearray()
        self._line = bytearray()
        self._on_line = on_line

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        del self._buffer[:-TAIL_BYTES]
        if self._on_line is None:
            return
        self._line += chunk
        while (end := self._line.find(b"\n") + 1) or len(self._line) >= MAX_LINE_BYTES:
            end = end or MAX_LINE_BYTES
            self._on_line(bytes(self._line[:end]))
            del self._line[:end]

    def end(self) -> None:
        """The output is closed: a last line without a newline is still a line."""
        if self._on_line is not None and self._line:
            self._on_line(bytes(self._line))
            self._line.clear()

    def text(self) -> str:
        return self._buffer.decode("utf-8", errors="replace")


class Exit(NamedTuple):
    """How a task's own process ended, as its spawner saw it: its return code (-N: killed by
    signal N), whether its memory limit killed a process of the task, and how many processes it
    left behind that were killed with it."""

    returncode: int
    oom: bool = False
    left: int = 0


@dataclass(frozen=True)
class Finished:
    returncode: int | None  # None: killed at the timeout
    tail: str
    oom: bool = False
    left: int = 0

    def summary(self, timeout_s: float | None) -> tuple[int | None, str]:
        """(exit code, one-line summary); a signal N is reported as 128+N, as shells do."""
        if self.returncode is None:
            summary: tuple[int | None, str] = (None, f"timeout after {timeout_s:g}s")
        elif self.oom:
            summary = (
                self.returncode if self.returncode >= 0 else 128 - self.returncode,
                "killed: over its memory limit",
            )
        elif self.returncode < 0:
            summary = (128 - self.returncode, f"killed by {signal.Signals(-self.returncode).name}")
        else:
            summary = (self.returncode, f"exit code {self.returncode}")
        if self.left:
            plural = "es" if self.left > 1 else ""
            return summary[0], f"{summary[1]}; {self.left} process{plural} it left running killed"
        return summary


class _Output:
    """A child's output pipe, read on the running loop until EOF, then closed."""

    def __init__(self, fd: int, tail: OutputTail) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._tail = tail
        os.set_blocking(fd, False)
        self.closed = self._loop.create_future()
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return
        if chunk:
            self._tail.feed(chunk)
            return
        self._tail.end()
        self.close()

    def close(self) -> None:
        if not self.closed.done():
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self.closed.set_result(None)


def exit_of(process: subprocess.Popen, pidfd: int | None = None) -> asyncio.Future[int]:
    """The process's return code, once it has exited and been reaped; watched through its pidfd,
    which this closes."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(process.pid) if pidfd is None else pidfd

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        process.wait()  # it has exited: waitpid returns at once
        exited.set_result(process.returncode)

    loop.add_reader(pidfd, reap)
    return exited


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def supervise(
    output_fd: int,
    exited: asyncio.Future[Exit],
    kill: Callable[[], None],
    *,
    timeout_s: float | None = None,
    on_line: Callable[[bytes], None] | None = None,
) -> Finished:
    """Follow a started child to its end: its exit, then its output until EOF.

    A task ends when its own process exits: its spawner then kills what it left behind, which
    would otherwise hold the output open. At the timeout or on a cancel, ``kill`` ends its whole
    container. ``exited`` stays watched after a cancel, so that the child is still reaped.
    """
    tail = OutputTail(on_line)
    output = _Output(output_fd, tail)
    try:
        try:
            async with asyncio.timeout(timeout_s):
                # Shielded: after a timeout, the exit is awaited once more below.
                end: Exit | None = await asyncio.shield(exited)
        except TimeoutError:
            kill()
            await exited
            end = None
        # What is still in the pipe; a writer the container could not end is not waited for long.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(OUTPUT_AFTER_EXIT_S):
                await output.closed
    except asyncio.CancelledError:
        kill()
        raise
    finally:
        output.close()
    if end is None:
        return Finished(None, tail.text())
    return Finished(end.returncode, tail.text(), end.oom, end.left)


def with_tail(summary: str, tail: str) -> str:
    return f"{summary}\n{tail}" if tail else summary

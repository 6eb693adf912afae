"""A child process in its own group, with a timeout that kills the group and a tail of its output.

The event loop watches the child itself, its exit through a pidfd and its output pipe as a raw
fd. asyncio's subprocess transports cost the loop a third more per spawn (0.38 against 0.28 ms
of the worker's CPU per `true`, measured here), and a worker spawns hundreds a second.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TAIL_BYTES = 4096
# A line longer than this reaches ``on_line`` in pieces, so that no output is held without bound.
MAX_LINE_BYTES = 64 * 1024
READ_BYTES = 64 * 1024


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


class _Watched:
    """A started process, watched on the running loop: its output until EOF, its exit until reaped.

    The exit stays watched after the output is given up (a cancel), so that no zombie is left.
    """

    def __init__(self, process: subprocess.Popen, tail: OutputTail) -> None:
        assert process.stdout is not None
        self._loop = asyncio.get_running_loop()
        self._process = process
        self._tail = tail
        self._output = process.stdout
        os.set_blocking(self._output.fileno(), False)
        self.output_closed = self._loop.create_future()
        self.exited = self._loop.create_future()
        self._pidfd = os.pidfd_open(process.pid)
        self._loop.add_reader(self._output.fileno(), self._read)
        self._loop.add_reader(self._pidfd, self._reap)

    def _read(self) -> None:
        try:
            chunk = os.read(self._output.fileno(), READ_BYTES)
        except BlockingIOError:
            return
        if chunk:
            self._tail.feed(chunk)
            return
        self._tail.end()
        self.close_output()

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._process.wait()  # it has exited: waitpid returns at once
        if not self.exited.done():
            self.exited.set_result(self._process.returncode)

    def close_output(self) -> None:
        if not self._output.closed:
            self._loop.remove_reader(self._output.fileno())
            self._output.close()
        if not self.output_closed.done():
            self.output_closed.set_result(None)


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
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    tail = OutputTail(on_line)
    watched = _Watched(process, tail)
    try:
        async with asyncio.timeout(timeout_s):
            await watched.output_closed
            # Shielded: after a timeout, the exit is awaited once more below.
            returncode = await asyncio.shield(watched.exited)
    except TimeoutError:
        _kill_group(process.pid)
        await watched.exited
        return Finished(None, tail.text())
    except asyncio.CancelledError:
        _kill_group(process.pid)
        raise
    finally:
        watched.close_output()
    return Finished(returncode, tail.text())


def with_tail(summary: str, tail: str) -> str:
    return f"{summary}\n{tail}" if tail else summary

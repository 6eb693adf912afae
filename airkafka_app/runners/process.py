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
    exited: asyncio.Future[int],
    kill: Callable[[], None],
    *,
    timeout_s: float | None = None,
    on_line: Callable[[bytes], None] | None = None,
) -> Finished:
    """Follow a started child to its end: its output until EOF, then its exit.

    At the timeout or on a cancel, ``kill`` ends its process group. ``exited`` stays watched
    after a cancel, so that the child is still reaped.
    """
    tail = OutputTail(on_line)
    output = _Output(output_fd, tail)
    try:
        async with asyncio.timeout(timeout_s):
            await output.closed
            # Shielded: after a timeout, the exit is awaited once more below.
            returncode = await asyncio.shield(exited)
    except TimeoutError:
        kill()
        await exited
        return Finished(None, tail.text())
    except asyncio.CancelledError:
        kill()
        raise
    finally:
        output.close()
    return Finished(returncode, tail.text())


async def run_process(
    argv: Sequence[str],
    *,
    executable: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    timeout_s: float | None = None,
    on_line: Callable[[bytes], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> Finished:
    """Run ``argv`` (``executable``, when given, instead of ``argv[0]``'s file) without a shell, in a
    session of its own; raises OSError, or ValueError for arguments exec cannot take, when it
    cannot start. ``on_start`` is given the process's pid and pidfd once it runs."""
    output_fd, child_output = os.pipe()
    try:
        process = subprocess.Popen(
            argv,
            executable=executable,
            stdin=subprocess.DEVNULL,
            stdout=child_output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        os.close(output_fd)
        raise
    finally:
        os.close(child_output)
    pidfd = os.pidfd_open(process.pid)
    if on_start is not None:
        on_start(process.pid, pidfd)
    return await supervise(
        output_fd, exit_of(process, pidfd), lambda: kill_group(process.pid), timeout_s=timeout_s, on_line=on_line
    )


def with_tail(summary: str, tail: str) -> str:
    return f"{summary}\n{tail}" if tail else summary

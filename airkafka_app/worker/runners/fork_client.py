"""The worker's side of a fork server (``airflow_fork_server``, ``spawn_server``): started at its
first use and again after it ends, it hands the server payloads and follows each run to its end.

Each run writes to a pipe that the worker made and reads, so its output, its timeout and its
cancel work as they do for a process the worker started itself (``process.supervise``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from itertools import count
from typing import Any, NamedTuple

from airkafka_app.worker.runners.airflow_fork_server import MAX_MESSAGE_BYTES
from airkafka_app.worker.runners.process import Exit, Finished, exit_of, kill_group, supervise

log = logging.getLogger(__name__)

# Run a file by path without putting its directory on sys.path.
RUN_PATH = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"
START_TIMEOUT_S = 120.0


class ForkServerLost(ConnectionError):
    """The fork server ended during a run; the run's process group was killed."""


class _Child:
    """One request's run: an Airflow supervisor of the server's, or a process it spawned."""

    def __init__(self, loop: asyncio.AbstractEventLoop, kill: Callable[[], None]) -> None:
        self.pid: int | None = None  # its process's, once the server has said
        self.exited: asyncio.Future[Exit] = loop.create_future()
        self._kill = kill

    def kill(self) -> None:
        """Have the server kill the run's group, if it still runs this request: only the server
        knows, for a supervisor runs one request after another, and a reaped pid is reused."""
        if not self.exited.done():
            self._kill()

    def lost(self, reason: str) -> None:
        if self.pid is not None:
            kill_group(self.pid)  # the server, which would, is gone
        if not self.exited.done():
            self.exited.set_exception(ForkServerLost(reason))


class _Outgoing(NamedTuple):
    """A message for the server. A kill has no request id, no fd and nobody waiting."""

    request_id: int | None
    message: bytes
    fd: int | None
    sent: asyncio.Future[None] | None


class _Connection:
    """One running fork server and its children.

    Requests wait in an outbox while the socket is full, so that one writer callback serves
    them all, in order, and a lost server fails each of them.
    """

    def __init__(self, process: subprocess.Popen, sock: socket.socket, ready: dict[str, Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self.process = process
        # How the server contains its tasks, when it says (``containment.py``).
        self.containment: str | None = ready.get("containment")
        self._sock = sock
        self._ids = count()
        self._children: dict[int, _Child] = {}
        self._outbox: deque[_Outgoing] = deque()
        self.lost = False
        self._loop.add_reader(sock, self._receive)

    async def fork(self, payload: Any, output_fd: int) -> _Child:
        """Ask for a run of ``payload`` (any JSON value) with ``output_fd`` as its stdout and stderr.

        ``output_fd`` must stay open until this returns: it is sent when the socket has room.
        """
        if self.lost:
            raise ForkServerLost(f"the fork server (pid {self.process.pid}) has ended")
        request_id = next(self._ids)
        message = json.dumps({"id": request_id, "payload": payload}).encode()
        if len(message) > MAX_MESSAGE_BYTES:
            raise OSError(f"a request of {len(message)} bytes is over the fork server's {MAX_MESSAGE_BYTES}")
        child = self._children[request_id] = _Child(self._loop, lambda: self._kill(request_id))
        entry = _Outgoing(request_id, message, output_fd, self._loop.create_future())
        self._post(entry)
        sent = entry.sent
        try:
            await sent
        except asyncio.CancelledError:
            if entry in self._outbox:
                self._outbox.remove(entry)  # its fd is about to be closed
            if not sent.done() or sent.exception() is not None:
                self._children.pop(request_id, None)
            else:  # its child starts, with nobody left to follow it
                child.exited.add_done_callback(lambda done: done.exception())
                child.kill()
            raise
        except OSError:
            self._children.pop(request_id, None)
            raise
        return child

    def _kill(self, request_id: int) -> None:
        if not self.lost:
            self._post(_Outgoing(None, json.dumps({"kill": request_id}).encode(), None, None))

    def _post(self, entry: _Outgoing) -> None:
        self._outbox.append(entry)
        if len(self._outbox) == 1:
            self._send_outbox()

    def _send_outbox(self) -> None:
        while self._outbox:
            _, message, fd, sent = self._outbox[0]
            try:
                socket.send_fds(self._sock, [message], [] if fd is None else [fd])
            except BlockingIOError:
                self._loop.add_writer(self._sock, self._send_outbox)
                return
            except OSError as exc:
                if sent is not None:
                    sent.set_exception(exc)
            else:
                if sent is not None:
                    sent.set_result(None)
            self._outbox.popleft()
        self._loop.remove_writer(self._sock)

    def _receive(self) -> None:
        while True:
            try:
                message = self._sock.recv(MAX_MESSAGE_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lose(f"its socket failed: {exc}")
                return
            if not message:
                self._lose("it ended")
                return
            reply = json.loads(message)
            child = self._children[reply["id"]]
            if "pid" in reply:
                child.pid = reply["pid"]
                continue
            del self._children[reply["id"]]
            if "error" in reply:
                child.exited.set_exception(OSError(reply["error"]))
            else:
                child.exited.set_result(Exit(reply["returncode"], reply.get("oom", False), reply.get("left", 0)))

    def _lose(self, reason: str) -> None:
        self.lost = True
        self._loop.remove_reader(self._sock)
        self._loop.remove_writer(self._sock)
        self._sock.close()
        exited = exit_of(self.process)
        exited.add_done_callback(
            lambda done: log.warning("fork server pid %s exited with code %s", self.process.pid, done.result())
        )
        ended = f"the fork server (pid {self.process.pid}) ended: {reason}"
        for request_id, _, _, sent in self._outbox:  # never sent: no child to kill
            if request_id is not None:
                del self._children[request_id]
                sent.set_exception(ForkServerLost(ended))
        self._outbox.clear()
        log.warning(
            "fork server pid %s lost (%s); killing its %d running children",
            self.process.pid,
            reason,
            len(self._children),
        )
        for child in self._children.values():
            child.lost(f"{ended}, while the child ran")
        self._children.clear()


class ForkServer:
    """Starts the server with ``argv`` when first needed; a server that ended is replaced."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self._connecting: asyncio.Future[_Connection] | None = None

    async def connection(self) -> _Connection:
        connecting = self._connecting
        # A new event loop (each test's) cannot use the socket of the one before.
        if (
            connecting is None
            or connecting.get_loop() is not asyncio.get_running_loop()
            or (connecting.done() and (connecting.exception() or connecting.result().lost))
        ):
            connecting = self._connecting = asyncio.ensure_future(self._start())
        # Shielded: a caller's cancel must not abandon a start that others wait for.
        return await asyncio.shield(connecting)

    async def run(
        self,
        payload: Any,
        *,
        timeout_s: float | None = None,
        on_line: Callable[[bytes], None] | None = None,
    ) -> Finished:
        """Have the server run ``payload``; raises OSError when it could not be started, and
        ForkServerLost when the server ended during the run."""
        connection = await self.connection()
        output_fd, child_output = os.pipe()
        try:
            child = await connection.fork(payload, child_output)
        except BaseException:
            os.close(output_fd)
            raise
        finally:
            os.close(child_output)
        return await supervise(output_fd, child.exited, child.kill, timeout_s=timeout_s, on_line=on_line)

    async def _start(self) -> _Connection:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            try:
                process = subprocess.Popen(self.argv, stdin=theirs, stdout=subprocess.DEVNULL, start_new_session=True)
            finally:
                theirs.close()
            ours.setblocking(False)
            ready = await self._first_reply(ours, process)
        except BaseException:
            ours.close()
            raise
        log.info("fork server pid %s ready: %s", ready["ready"], self.argv[0])
        return _Connection(process, ours, ready)

    async def _first_reply(self, sock: socket.socket, process: subprocess.Popen) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                message = await loop.sock_recv(sock, MAX_MESSAGE_BYTES)
        except TimeoutError:
            kill_group(process.pid)
            await exit_of(process)
            raise OSError(f"the fork server was not ready after {START_TIMEOUT_S:g}s") from None
        reply = json.loads(message) if message else {}
        if "ready" in reply:
            return reply
        code = await exit_of(process)
        raise OSError(reply.get("error") or f"the fork server exited with code {code} before it was ready")

"""The spawn server: a small process of the worker's interpreter that starts the ``shell`` runner's
processes and reaps them, so that the worker's event loop never waits on a spawn.

A spawn stops the spawning thread until the child has called exec (``vfork``). In the worker
under load that took 1.0 ms at the median, against 0.2 on an idle machine: a third of the event
loop's time, during which it neither read commands nor published state changes. Here only this
process waits.

It speaks the fork client's protocol (``fork_client``, as ``airflow_fork_server`` does), on the
SOCK_SEQPACKET socket at fd 0, one JSON object per message:

- server: ``{"ready": pid}``;
- worker: ``{"id": n, "payload": {"argv": [...], "executable": path, "env": {...} | null, "cwd": str | null}}``,
  with the write end of the process's output pipe attached; ``env`` is added to the worker's
  environment, and ``executable`` is run with ``argv``;
- server: ``{"id": n, "pid": pid}``, or ``{"id": n, "error": "..."}`` when it could not start;
  then ``{"id": n, "returncode": rc}``, where -N means killed by signal N;
- worker: ``{"kill": n}`` kills request n's process group, unless it has been reaped;
- worker: ``{"watch": pid}``, with a pidfd of a task process the worker started itself attached.

Each process runs in a session of its own. The server ends at the worker's end of the socket,
which comes when the worker ends, even by SIGKILL (as a reset, when replies were left unread);
it then kills the process group of every task still running, its own and those the worker
asked it to watch, so that no task outlives its worker and runs beside its own recovery.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import socket
import subprocess

# The protocol's helpers live with the Airflow fork server, which must import without AirKafka.
from airkafka_app.runners.airflow_fork_server import receive, send


class _Spawner:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.running: dict[int, subprocess.Popen] = {}  # request id -> its process, until reaped
        self.watched: dict[int, int] = {}  # pidfd -> pid of a task process the worker started
        self.devnull = os.open(os.devnull, os.O_RDONLY)

    def serve(self) -> None:
        """Until the worker's end closes; then no task of the worker's is left running."""
        send(self.sock, {"ready": os.getpid()})
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data is not None:
                        key.data()
                    elif not self._receive():
                        return
        finally:  # however it ends
            self._kill_all()

    def _receive(self) -> bool:
        """One message from the worker; False at its end."""
        request, fds = receive(self.sock)
        if request is None:
            return False
        if "kill" in request:
            if (process := self.running.get(request["kill"])) is not None:
                _kill_group(process.pid)
        elif "watch" in request:
            pid, (pidfd,) = request["watch"], fds
            self.watched[pidfd] = pid
            self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._unwatch(pidfd))
        else:
            self._spawn(request["id"], request["payload"], fds[0])
        return True

    def _unwatch(self, pidfd: int) -> None:
        """A watched process has ended: the worker reaps it."""
        self.selector.unregister(pidfd)
        os.close(pidfd)
        del self.watched[pidfd]

    def _kill_all(self) -> None:
        for process in self.running.values():
            _kill_group(process.pid)
        for pidfd, pid in self.watched.items():
            if not select.select([pidfd], [], [], 0)[0]:  # not ended, so its pid is still its own
                _kill_group(pid)

    def _spawn(self, request_id: int, payload: dict, output_fd: int) -> None:
        """Start one process; whatever fails fails that request alone, never the server."""
        try:
            env = {**os.environ, **payload["env"]} if payload.get("env") else None
            process = subprocess.Popen(
                payload["argv"],
                executable=payload.get("executable"),
                stdin=self.devnull,
                stdout=output_fd,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=payload.get("cwd"),
                start_new_session=True,
            )
        except Exception as exc:
            send(self.sock, {"id": request_id, "error": str(exc)})
            return
        finally:
            os.close(output_fd)
        pidfd = os.pidfd_open(process.pid)
        self.running[request_id] = process
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._reap(request_id, pidfd))
        send(self.sock, {"id": request_id, "pid": process.pid})

    def _reap(self, request_id: int, pidfd: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        process = self.running.pop(request_id)
        send(self.sock, {"id": request_id, "returncode": process.wait()})


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # its group has no process left
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    _Spawner(socket.socket(fileno=0)).serve()

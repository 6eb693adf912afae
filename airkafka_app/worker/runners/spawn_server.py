"""The spawn server: a small process of the worker's interpreter that starts the ``shell`` runner's
processes, each in a container of its own (``containment.py``), and reaps them, so that the
worker's event loop never waits on a spawn.

A spawn stops the spawning thread until the child has called exec (``vfork``). In the worker
under load that took 1.0 ms at the median, against 0.2 on an idle machine: a third of the event
loop's time, during which it neither read commands nor published state changes. Here only this
process waits. It is small and single-threaded, which is what lets it step into a task's cgroup
to spawn there and step out again, rather than fork and place the child from inside it.

It speaks the fork client's protocol (``fork_client``, as ``airflow_fork_server`` does), on the
SOCK_SEQPACKET socket at fd 0, one JSON object per message:

- server: ``{"ready": pid, "containment": "..."}``;
- worker: ``{"id": n, "payload": {"argv": [...], "executable": path, "env": {...} | null,
  "cwd": str | null, "limits": {"memory_mb": m, "pids": p}}}``, with the write end of the
  process's output pipe attached; ``env`` is added to the worker's environment, and
  ``executable`` is run with ``argv``;
- server: ``{"id": n, "pid": pid}``, or ``{"id": n, "error": "..."}`` when it could not start;
  then, once the process has exited and what it left behind has been killed,
  ``{"id": n, "returncode": rc, "oom": bool, "left": k}``, where -N means killed by signal N,
  ``oom`` that its memory limit killed a process of the task, and ``k`` counts what was killed;
- worker: ``{"kill": n}`` kills request n's container, unless it has been reaped.

The server ends at the worker's end of the socket, which comes when the worker ends, even by
SIGKILL (as a reset, when replies were left unread); it then kills every task's container, so
that no task outlives its worker and runs beside its own recovery.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

# The protocol's helpers live with the Airflow fork server, which must import without AirKafka.
from airkafka_app.worker.runners.airflow_fork_server import receive, send
from airkafka_app.worker.runners.containment import Cgroups, Group, Limits, Subreaper, open_containment


@dataclass
class _Task:
    process: subprocess.Popen
    group: Group | None  # its cgroup; None under the subreaper


class _Spawner:
    def __init__(self, sock: socket.socket, containment: Cgroups | Subreaper, user: str = "", group: str = "") -> None:
        self.sock = sock
        self.containment = containment
        # Tasks' user and group (None: the server's own), and no supplementary groups of ours.
        self.user = user or None
        self.group = group or None
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.running: dict[int, _Task] = {}  # request id -> its task, until reaped
        self.devnull = os.open(os.devnull, os.O_RDONLY)

    def serve(self) -> None:
        """Until the worker's end closes; then no task of the worker's is left running."""
        send(self.sock, {"ready": os.getpid(), "containment": self.containment.describe()})
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data is not None:
                        key.data()
                    elif not self._receive():
                        return
        finally:  # however it ends
            for task in self.running.values():
                self._kill(task)
            if isinstance(self.containment, Cgroups):
                self.containment.close()

    def _receive(self) -> bool:
        """One message from the worker; False at its end."""
        request, fds = receive(self.sock)
        if request is None:
            return False
        if "kill" in request:
            if (task := self.running.get(request["kill"])) is not None:
                self._kill(task)
        else:
            self._spawn(request["id"], request["payload"], fds[0])
        return True

    def _pids(self) -> set[int]:
        return {task.process.pid for task in self.running.values()}

    def _kill(self, task: _Task) -> None:
        """The whole task: its own process and all it started."""
        if task.group is not None:
            task.group.kill()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(task.process.pid, signal.SIGKILL)
        assert isinstance(self.containment, Subreaper)
        self.containment.kill_tree(task.process.pid, self._pids())

    def _spawn(self, request_id: int, payload: dict, output_fd: int) -> None:
        """Start one process; whatever fails fails that request alone, never the server."""
        group = None
        try:
            limits = Limits(**payload.get("limits") or {})
            env = {**os.environ, **payload["env"]} if payload.get("env") else None

            def spawn() -> subprocess.Popen:
                return subprocess.Popen(
                    payload["argv"],
                    executable=payload.get("executable"),
                    stdin=self.devnull,
                    stdout=output_fd,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=payload.get("cwd"),
                    start_new_session=True,
                    user=self.user,
                    group=self.group,
                    extra_groups=[] if self.user else None,
                )

            if isinstance(self.containment, Cgroups):
                group = self.containment.group()
                group.prepare(limits)
                process = self.containment.spawn_in(group, spawn)
                group.started()
            else:
                process = spawn()
                self.containment.set_limits(process.pid, limits)
        except Exception as exc:
            if group is not None:
                self.containment.release(group)  # type: ignore[union-attr]
            send(self.sock, {"id": request_id, "error": str(exc)})
            return
        finally:
            os.close(output_fd)
        pidfd = os.pidfd_open(process.pid)
        self.running[request_id] = _Task(process, group)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._reap(request_id, pidfd))
        send(self.sock, {"id": request_id, "pid": process.pid})

    def _reap(self, request_id: int, pidfd: int) -> None:
        """The task's own process has ended, and so has the task: what it left behind is killed."""
        self.selector.unregister(pidfd)
        os.close(pidfd)
        task = self.running.pop(request_id)
        returncode = task.process.wait()
        oom, left = False, 0
        if task.group is not None:
            if left := task.group.processes():
                task.group.kill()
            oom = task.group.oom_killed()
            self.containment.release(task.group)  # type: ignore[union-attr]
        else:
            assert isinstance(self.containment, Subreaper)
            if self.containment.left_behind(running := self._pids()):
                left = self.containment.kill_tree(task.process.pid, running)
                self.containment.reap_adopted(running)
        send(self.sock, {"id": request_id, "returncode": returncode, "oom": oom, "left": left})


def main() -> None:
    """Arguments: the containment mode, then the tasks' user and group (empty: the server's)."""
    sock = socket.socket(fileno=0)
    _, mode, user, group = sys.argv
    try:
        containment = open_containment(mode)
    except (OSError, ValueError) as exc:
        send(sock, {"error": f"cannot contain tasks: {exc}"})
        sys.exit(1)
    _Spawner(sock, containment, user, group).serve()


if __name__ == "__main__":
    main()

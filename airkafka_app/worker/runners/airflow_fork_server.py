"""The Airflow fork server: a process in Airflow's interpreter that imports the Task SDK once,
then forks long-lived supervisors that run one workload at a time, as LocalExecutor's workers
do. A fresh interpreter per workload spent about 2 s of CPU importing Airflow before its task
began; a fork per workload cost its copy-on-write faults and its exit again for every task.

It imports only the standard library and Airflow, so Airflow's interpreter needs no AirKafka
install. It is run by path through ``runpy.run_path`` (see ``fork_client``), not as
``python <this file>``: this directory holds ``airflow.py``, which would shadow Airflow.

The protocol, on the SOCK_SEQPACKET socket at fd 0, one JSON object per message:

- server: ``{"ready": pid, "containment": "..."}`` once the imports are done, or
  ``{"error": "..."}`` and exit;
- worker: ``{"id": n, "payload": "..."}``, with the write end of the run's output pipe attached;
- server: ``{"id": n, "pid": pid}``, the supervisor running it, or ``{"id": n, "error": "..."}``;
  then ``{"id": n, "returncode": rc, "left": k}``, where -N means the supervisor was killed by
  signal N, and k counts the processes the run left behind, killed at its end;
- worker: ``{"kill": n}`` kills the supervisor running request n, if it still does, with its run.

Each supervisor runs its requests inside a container (``containment.py``, loaded by its path):
in ``cgroup`` mode a group of its own, which it enters for a run and leaves after it, killing
what the run left there; under the ``subreaper``, it is a subreaper itself. A kill ends the
supervisor with its run's whole container.

The server ends when the worker's end closes, or resets (a worker killed with replies unread),
and idle supervisors with it; it kills the process groups of the busy ones first.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

MAX_PAYLOAD_BYTES = 1 << 20
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 4096


def send(sock: socket.socket, message: dict) -> None:
    """A reply to a worker that has ended is dropped: the next ``receive`` finds its end."""
    with contextlib.suppress(ConnectionError):
        sock.send(json.dumps(message).encode())


def receive(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """The worker's next request and the fd attached to it, if any; None at the worker's end.

    A worker that ends with replies unread, as a SIGKILL leaves it, resets the socket rather
    than closing it: that is its end too.
    """
    try:
        message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 1)
    except ConnectionResetError:
        return None, []
    return (json.loads(message) if message else None), fds


def _supervise_as_batch() -> None:
    """Run this process as SCHED_BATCH, and the processes it forks as before.

    A task process's sockets close a moment before it can be reaped. Woken by that close, a
    supervisor would preempt the exiting task, find no exit status, and sleep up to
    ``[workers] min_heartbeat_interval`` before looking again, holding the task's slot that
    long. A SCHED_BATCH process does not preempt when woken.
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        return  # the operator chose a policy for the worker; keep it
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.register_at_fork(after_in_child=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)))


class _Supervisor:
    """A long-lived child of the server that runs one payload at a time."""

    def __init__(self, pid: int, sock: socket.socket, runs: Any) -> None:
        self.pid = pid
        self.sock = sock
        self.runs = runs  # its container (containment.Runs)
        self.pidfd = os.pidfd_open(pid)
        self.request_id: int | None = None

    def report(self) -> bytes:
        """Its report of a run; empty at its end, which may be a reset when it ended with a
        request unread."""
        try:
            return self.sock.recv(MAX_MESSAGE_BYTES)
        except ConnectionResetError:
            return b""


def _supervisor_main(sock: socket.socket, run: Callable[[str], int], inherited: list[int], runs: Any) -> NoReturn:
    """The forked supervisor: in its own group and SCHED_BATCH, it runs each payload it is sent
    with the attached pipe as stdout and stderr, inside its container (``runs``), kills what the
    run left behind, and reports ``run``'s return code. It exits on the server's EOF, and after an
    exception or a SystemExit, so that its exit code reports it."""
    code = 1
    try:
        os.setpgid(0, 0)
        runs.start()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # was the worker's socket
        for fd in inherited:
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _supervise_as_batch()
        while True:
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 1)
            if not message:
                code = 0
                break
            (output_fd,) = fds
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(output_fd)
            runs.begin()
            returncode = run(json.loads(message)["payload"])
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(null, 1)  # the worker reads the pipe to its end
            os.dup2(null, 2)
            send(sock, {"returncode": returncode, "left": runs.end()})
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Pool:
    """The server's supervisors. An idle one takes the next request; a new one is forked only
    when none is idle. A kill is the pool's to make: only it knows whether a supervisor still
    runs the request, or has taken the next one."""

    def __init__(self, sock: socket.socket, run: Callable[[str], int], containment: Any, runs: type) -> None:
        self.sock = sock
        self.run = run
        self.containment = containment
        self.runs = runs  # containment.Runs
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.supervisors: set[_Supervisor] = set()
        self.idle: list[_Supervisor] = []
        self.busy: dict[int, _Supervisor] = {}  # request id -> its supervisor

    def serve(self) -> None:
        """Until the worker's end closes, even by SIGKILL: then the busy supervisors' groups are
        killed, so that no task outlives its worker and runs beside its own recovery."""
        send(self.sock, {"ready": os.getpid(), "containment": self.containment.describe()})
        try:
            while True:
                for key, _ in self.selector.select():
                    supervisor = key.data
                    if supervisor is None:
                        if not self._receive():
                            return
                    elif supervisor not in self.supervisors:
                        continue  # ended earlier in this batch of events
                    elif key.fd == supervisor.pidfd:
                        self._finish(supervisor, self._end(supervisor))
                    elif message := supervisor.report():
                        report = json.loads(message)
                        self._finish(supervisor, report["returncode"], report["left"])
                        self.idle.append(supervisor)
                    else:
                        self.selector.unregister(supervisor.sock)  # it is ending: its pidfd reports the exit
        finally:  # however it ends
            for busy in self.busy.values():
                self._kill(busy)
            if self.containment.mode == "cgroup":
                self.containment.close()

    def _kill(self, supervisor: _Supervisor) -> None:
        """A supervisor and the run it is running, all of it."""
        supervisor.runs.kill()
        with contextlib.suppress(ProcessLookupError):  # its exit is being reported
            os.killpg(supervisor.pid, signal.SIGKILL)

    def _receive(self) -> bool:
        """One message from the worker; False at its end."""
        request, fds = receive(self.sock)
        if request is None:
            return False
        if "kill" in request:
            if (target := self.busy.get(request["kill"])) is not None:
                self._kill(target)
        else:
            self._dispatch(json.dumps(request).encode(), request["id"], fds[0])
        return True

    def _dispatch(self, message: bytes, request_id: int, output_fd: int) -> None:
        try:
            supervisor = None
            while self.idle and supervisor is None:
                candidate = self.idle.pop()
                try:
                    socket.send_fds(candidate.sock, [message], [output_fd])
                    supervisor = candidate
                except ConnectionError:
                    pass  # it ended while idle: its pidfd reports it
            if supervisor is None:
                supervisor = self._start(output_fd)
                socket.send_fds(supervisor.sock, [message], [output_fd])
        except OSError as exc:
            send(self.sock, {"id": request_id, "error": f"cannot start a supervisor: {exc}"})
            return
        finally:
            os.close(output_fd)
        supervisor.request_id = request_id
        self.busy[request_id] = supervisor
        send(self.sock, {"id": request_id, "pid": supervisor.pid})

    def _start(self, output_fd: int) -> _Supervisor:
        """A new supervisor; ``output_fd``, the request's, is sent to it, not inherited."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        group = self.containment.group() if self.containment.mode == "cgroup" else None
        runs = self.runs(self.containment, group)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            others = [fd for other in self.supervisors for fd in (other.sock.fileno(), other.pidfd)]
            _supervisor_main(theirs, self.run, [self.selector.fileno(), output_fd, *others], runs)
        theirs.close()
        try:
            os.setpgid(pid, pid)  # also here, so that a kill may come at once
        except OSError:
            pass  # the child got there first, or has already ended
        supervisor = _Supervisor(pid, ours, runs)
        self.supervisors.add(supervisor)
        self.selector.register(supervisor.sock, selectors.EVENT_READ, supervisor)
        self.selector.register(supervisor.pidfd, selectors.EVENT_READ, supervisor)
        return supervisor

    def _finish(self, supervisor: _Supervisor, returncode: int, left: int = 0) -> None:
        if supervisor.request_id is not None:
            del self.busy[supervisor.request_id]
            send(self.sock, {"id": supervisor.request_id, "returncode": returncode, "left": left})
            supervisor.request_id = None

    def _end(self, supervisor: _Supervisor) -> int:
        """Forget an ended supervisor; its exit code."""
        for fd in (supervisor.sock.fileno(), supervisor.pidfd):
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
        supervisor.sock.close()
        os.close(supervisor.pidfd)
        self.supervisors.discard(supervisor)
        if supervisor in self.idle:
            self.idle.remove(supervisor)
        _, status = os.waitpid(supervisor.pid, 0)
        if supervisor.runs.group is not None:  # what its last run left goes with it
            supervisor.runs.kill()
            self.containment.release(supervisor.runs.group)
        else:  # what its run left was re-parented here when it ended
            self.containment.kill_tree(None, {other.pid for other in self.supervisors})
        return os.waitstatus_to_exitcode(status)


def _containment_module() -> Any:
    """containment.py, loaded by its path: this file runs in Airflow's interpreter, where
    AirKafka need not be installed."""
    name = "airkafka_containment"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("containment.py"))
        assert spec is not None and spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def serve(sock: socket.socket, run: Callable[[str], int], mode: str = "auto") -> None:
    """Run each request's ``run(payload)`` in a supervisor, inside a container (containment.py,
    ``mode``), and report its pid and return code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops us by closing the socket
    module = _containment_module()
    try:
        containment = module.open_containment(mode)
    except (OSError, ValueError) as exc:
        send(sock, {"error": f"cannot contain tasks: {exc}"})
        sys.exit(1)
    _Pool(sock, run, containment, module.Runs).serve()


def main() -> None:
    sock = socket.socket(fileno=0)
    try:
        import encodings.idna  # noqa: F401

        # What a supervisor and its task process import (listed from a supervisor's
        # sys.modules), so that each supervisor starts with them.
        import airflow.dag_processing.dagbag  # noqa: F401
        import airflow.models.taskinstance  # noqa: F401
        import airflow.plugins_manager  # noqa: F401
        import airflow.sdk._shared.logging.remote  # noqa: F401
        import airflow.sdk.definitions.connection  # noqa: F401
        import airflow.sdk.execution_time.supervisor  # noqa: F401
        import airflow.sdk.execution_time.task_runner  # noqa: F401
        from airflow.executors import workloads
        from airflow.executors.base_executor import BaseExecutor
        from airflow.sdk.api.client import Client, get_hostname, getuser
        from airflow.sdk.log import configure_logging
        from airflow.settings import dispose_orm
        from pydantic import TypeAdapter
        from setproctitle import setproctitle
    except Exception as exc:
        send(sock, {"error": f"cannot import the Airflow Task SDK: {type(exc).__name__}: {exc}"})
        sys.exit(1)

    # What execute_workload does per process, done once: a supervisor's stdout is its run's pipe.
    dispose_orm(do_log=False)
    configure_logging(output=sys.stdout.buffer, json_output=True)
    decoder = TypeAdapter(workloads.All)
    # What a supervisor caches per process, computed once here so that every supervisor starts
    # with it: the API client's SSL context, whose CA store cost a supervisor about as much CPU
    # as its task, and the host and user names, a DNS lookup and a passwd read.
    Client(base_url="http://localhost", token="").close()
    get_hostname()
    getuser()

    def run(payload: str) -> int:
        # As LocalExecutor's workers run a workload: a task's try, a callback, a connection test.
        workload = decoder.validate_json(payload)
        result = BaseExecutor.run_workload(workload, subprocess_logs_to_stdout=True)
        setproctitle("airflow supervisor: idle")  # not the id of a task that has ended
        # A task's end is in its log (runners/airflow.py); another workload's is its exit code.
        return result if isinstance(result, int) and not isinstance(workload, workloads.ExecuteTask) else 0

    gc.freeze()  # forked children then share the imported modules' pages instead of copying them
    serve(sock, run, sys.argv[2] if len(sys.argv) > 2 else "auto")  # python -c RUN_PATH <this file> <mode>


if __name__ == "__main__":
    main()

"""The Airflow fork server: a process in Airflow's interpreter that imports the Task SDK once,
then forks a child per workload, which supervises it as LocalExecutor's workers do. A fresh
interpreter per workload spent about 2 s of CPU importing Airflow before its task began.

It imports only the standard library and Airflow, so Airflow's interpreter needs no AirKafka
install. It is run by path through ``runpy.run_path`` (see ``fork_client``), not as
``python <this file>``: this directory holds ``airflow.py``, which would shadow Airflow.

The protocol, on the SOCK_SEQPACKET socket at fd 0, one JSON object per message:

- server: ``{"ready": pid}`` once the imports are done, or ``{"error": "..."}`` and exit;
- worker: ``{"id": n, "payload": "..."}``, with the write end of the child's output pipe attached;
- server: ``{"id": n, "pid": pid}`` once forked, or ``{"id": n, "error": "..."}``;
  then ``{"id": n, "returncode": rc}``, where -N means killed by signal N.

The server ends when the worker's end closes. Children run on, each in a process group of its own.
"""
from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

MAX_PAYLOAD_BYTES = 1 << 20
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 4096


def _send(sock: socket.socket, message: dict) -> None:
    sock.send(json.dumps(message).encode())


def _supervise_as_batch() -> None:
    """Run this process as SCHED_BATCH, and the processes it forks as before.

    A task process's sockets close a moment before it can be reaped. Woken by that close, its
    supervisor preempted the exiting task, found no exit status, and slept up to
    ``[workers] min_heartbeat_interval`` before looking again: a quarter of the tasks in the DAG
    benchmark held their slot 1 s longer. A SCHED_BATCH process does not preempt when woken.
    """
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        return  # the operator chose a policy for the worker; keep it
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    os.register_at_fork(after_in_child=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)))


def _child(payload: str, output_fd: int, run: Callable[[str], int], inherited: list[int]) -> NoReturn:
    """The forked child: its own group, the pipe as stdout and stderr, SCHED_BATCH, then ``run``;
    never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # was the server's socket
        os.close(null)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        for fd in (output_fd, *inherited):
            os.close(fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _supervise_as_batch()
        code = run(payload)
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


def serve(sock: socket.socket, run: Callable[[str], int]) -> None:
    """Fork ``run(payload)`` per request and report each child's pid and return code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops us by closing the socket
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (request id, pid)
    _send(sock, {"ready": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.fileobj is not sock:
                request_id, pid = children.pop(key.fd)
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                _send(sock, {"id": request_id, "returncode": os.waitstatus_to_exitcode(status)})
                continue
            message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, 1)
            if not message:
                return
            request = json.loads(message)
            (output_fd,) = fds
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(output_fd)
                _send(sock, {"id": request["id"], "error": f"fork failed: {exc}"})
                continue
            if pid == 0:
                _child(request["payload"], output_fd, run, [selector.fileno(), *children])
            try:
                os.setpgid(pid, pid)  # also here, so that the worker may kill the group at once
            except OSError:
                pass  # the child got there first, or has already ended
            os.close(output_fd)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (request["id"], pid)
            selector.register(pidfd, selectors.EVENT_READ)
            _send(sock, {"id": request["id"], "pid": pid})


def main() -> None:
    sock = socket.socket(fileno=0)
    try:
        from pydantic import TypeAdapter

        # What a supervisor and its task process import (listed from a forked supervisor's
        # sys.modules), so that each fork starts with them.
        import airflow.dag_processing.dagbag  # noqa: F401
        import airflow.models.taskinstance  # noqa: F401
        import airflow.plugins_manager  # noqa: F401
        import airflow.sdk._shared.logging.remote  # noqa: F401
        import airflow.sdk.definitions.connection  # noqa: F401
        import airflow.sdk.execution_time.supervisor  # noqa: F401
        import airflow.sdk.execution_time.task_runner  # noqa: F401
        import encodings.idna  # noqa: F401
        import setproctitle  # noqa: F401
        from airflow.executors import workloads
        from airflow.executors.base_executor import BaseExecutor
        from airflow.sdk.api.client import Client, get_hostname, getuser
        from airflow.sdk.log import configure_logging
        from airflow.settings import dispose_orm
    except Exception as exc:
        _send(sock, {"error": f"cannot import the Airflow Task SDK: {type(exc).__name__}: {exc}"})
        sys.exit(1)

    # What execute_workload does per process, done once: each child's stdout is its pipe.
    dispose_orm(do_log=False)
    configure_logging(output=sys.stdout.buffer, json_output=True)
    decoder = TypeAdapter(workloads.All)
    # What a supervisor caches per process, computed once here so that every fork shares it
    # (LocalExecutor's long-lived workers keep theirs warm): the API client's SSL context,
    # whose CA store cost each supervisor about as much CPU as its task, and the host and
    # user names, a DNS lookup and a passwd read.
    Client(base_url="http://localhost", token="").close()
    get_hostname()
    getuser()

    def run(payload: str) -> int:
        # As LocalExecutor's workers run a workload.
        BaseExecutor.run_workload(decoder.validate_json(payload), subprocess_logs_to_stdout=True)
        return 0

    gc.freeze()  # forked children then share the imported modules' pages instead of copying them
    serve(sock, run)


if __name__ == "__main__":
    main()

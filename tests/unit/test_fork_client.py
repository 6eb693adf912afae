"""The fork server and its client, with the server's real loop and a shell in place of Airflow.

The Airflow side is covered with Airflow's venv by tests/integration/test_airflow_fork_server.py,
and end to end by the Airflow integration tests.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airkafka_app.worker.runners import airflow_fork_server
from airkafka_app.worker.runners.airflow import AirflowRunner
from airkafka_app.worker.runners.fork_client import RUN_PATH, ForkServer, ForkServerLost
from airkafka_app.worker.runners.shell import ShellRunner
from tests.processes import wait_for

# The server's loop as Airflow's interpreter runs it, with each payload run by `sh -c`.
SHELL_SERVER = (
    "import os, runpy, socket, sys; "
    "runpy.run_path(sys.argv[1])['serve'](socket.socket(fileno=0), lambda p: os.execvp('sh', ['sh', '-c', p]))"
)


def shell_server() -> ForkServer:
    return ForkServer([sys.executable, "-c", SHELL_SERVER, airflow_fork_server.__file__])


def gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return True


def test_children_report_output_and_exit_codes_through_one_server():
    async def scenario():
        server = shell_server()
        first = await server.run("echo out; echo err >&2; exit 3")
        pid = (await server.connection()).process.pid
        many = await asyncio.gather(*(server.run(f"exit {n % 5}") for n in range(50)))
        return first, [f.returncode for f in many], pid, (await server.connection()).process.pid

    first, codes, pid_before, pid_after = asyncio.run(scenario())
    assert (first.returncode, first.tail) == (3, "out\nerr\n")
    assert codes == [n % 5 for n in range(50)]
    assert pid_before == pid_after


# The payload runs as a supervisor would: it reports its policy, then forks a "task" that does too.
PYTHON_SERVER = (
    "import os, runpy, socket, sys; "
    "runpy.run_path(sys.argv[1])['serve'](socket.socket(fileno=0), lambda p: exec(p) or 0, *sys.argv[2:])"
)
PYTHON_SERVER_ARGV = [sys.executable, "-c", PYTHON_SERVER, airflow_fork_server.__file__]
POLICIES = """
import os
print(os.sched_getscheduler(0), flush=True)
pid = os.fork()
if pid == 0:
    print(os.sched_getscheduler(0), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_the_supervisor_runs_as_batch_and_its_task_as_normal():
    """A woken supervisor that preempts its exiting task misses its exit and sleeps up to 1 s."""
    server = ForkServer([sys.executable, "-c", PYTHON_SERVER, airflow_fork_server.__file__])
    finished = asyncio.run(server.run(POLICIES))
    assert (finished.returncode, finished.tail) == (0, f"{os.SCHED_BATCH}\n{os.SCHED_OTHER}\n")


def test_one_supervisor_runs_one_request_after_another_each_with_its_own_output():
    async def scenario():
        server = ForkServer([sys.executable, "-c", PYTHON_SERVER, airflow_fork_server.__file__])
        return [await server.run(f"import os; print({n}, os.getpid())") for n in range(3)]

    runs = asyncio.run(scenario())
    assert [f.returncode for f in runs] == [0, 0, 0]
    lines = [f.tail.split() for f in runs]
    assert [line[0] for line in lines] == ["0", "1", "2"]
    assert len({line[1] for line in lines}) == 1


class RawServer:
    """A server spoken to over its raw protocol, as the worker's side of its socket."""

    def __init__(self, argv: list[str]) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(argv, stdin=theirs, start_new_session=True)
        theirs.close()
        self.sock.settimeout(BOUND_S)
        assert "ready" in self.reply()

    def request(self, n: int, payload: object) -> None:
        read, write = os.pipe()
        socket.send_fds(self.sock, [json.dumps({"id": n, "payload": payload}).encode()], [write])
        os.close(write)
        os.close(read)

    def reply(self) -> dict:
        return json.loads(self.sock.recv(4096))

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(BOUND_S)


def test_a_kill_reaches_only_the_request_it_names():
    """A supervisor takes the next request once it has ended one: a late kill must miss it."""
    server = RawServer([sys.executable, "-c", PYTHON_SERVER, airflow_fork_server.__file__])
    try:
        server.request(0, "pass")
        started, ended = server.reply(), server.reply()
        assert ended == {"id": 0, "returncode": 0, "left": 0}
        server.request(1, "import time; time.sleep(1)")
        assert server.reply() == {"id": 1, "pid": started["pid"]}
        server.sock.send(json.dumps({"kill": 0}).encode())
        assert server.reply() == {"id": 1, "returncode": 0, "left": 0}
        server.request(2, "import time; time.sleep(60)")
        assert server.reply() == {"id": 2, "pid": started["pid"]}
        server.sock.send(json.dumps({"kill": 2}).encode())
        assert server.reply() == {"id": 2, "returncode": -signal.SIGKILL, "left": 0}
    finally:
        server.close()


def test_a_supervisor_killed_with_a_request_unread_fails_that_request_alone():
    """Its socket then resets rather than ends: the server must go on serving."""
    server = RawServer([sys.executable, "-c", PYTHON_SERVER, airflow_fork_server.__file__])
    try:
        server.request(0, "pass")
        supervisor = server.reply()["pid"]
        assert server.reply() == {"id": 0, "returncode": 0, "left": 0}
        os.kill(supervisor, signal.SIGSTOP)  # idle, it cannot read the next request
        server.request(1, "pass")
        assert server.reply() == {"id": 1, "pid": supervisor}
        os.kill(supervisor, signal.SIGKILL)
        assert server.reply() == {"id": 1, "returncode": -signal.SIGKILL, "left": 0}
        server.request(2, "pass")
        assert server.reply()["pid"] != supervisor
        assert server.reply() == {"id": 2, "returncode": 0, "left": 0}
    finally:
        server.close()


# Each child below would outlive a test that waits for it: these runs end only if its kill works.
BOUND_S = 30


def test_a_timeout_kills_the_childs_whole_group(tmp_path):
    marker = tmp_path / "pid"

    async def scenario():
        run = shell_server().run(f"sleep 600 & echo $! > {marker}; wait", timeout_s=0.5)
        return await asyncio.wait_for(run, BOUND_S)

    finished = asyncio.run(scenario())
    assert finished.returncode is None
    sleeper = int(marker.read_text())
    deadline = time.monotonic() + 3
    while not gone(sleeper):
        assert time.monotonic() < deadline, "the background sleep survived the timeout"
        time.sleep(0.05)


def test_a_cancel_kills_the_child(tmp_path):
    marker = tmp_path / "pid"

    async def scenario():
        run = asyncio.ensure_future(shell_server().run(f"echo $$ > {marker}; exec sleep 600"))
        await wait_for(lambda: marker.exists() and marker.read_text().strip())
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, BOUND_S)
        child = int(marker.read_text())
        await wait_for(lambda: gone(child))

    asyncio.run(scenario())


# Each server with a payload that runs a shell script: this file's stand-in for Airflow, and the
# spawn server, which starts the shell runner's processes.
SERVERS = {
    "fork server": (shell_server, lambda script: script),
    "spawn server": (lambda: ShellRunner(allow=()).spawner, lambda script: {"argv": ["sh", "-c", script]}),
}


@pytest.mark.parametrize("kind", SERVERS)
def test_a_lost_server_fails_its_running_children_and_the_next_run_gets_a_new_one(tmp_path, kind):
    marker = tmp_path / "pid"
    new_server, script = SERVERS[kind]

    async def scenario():
        server = new_server()
        run = asyncio.ensure_future(server.run(script(f"echo $$ > {marker}; exec sleep 600")))
        await wait_for(lambda: marker.exists() and marker.read_text().strip())
        lost_pid = (await server.connection()).process.pid
        os.kill(lost_pid, signal.SIGKILL)
        with pytest.raises(ForkServerLost, match=f"pid {lost_pid}"):
            await asyncio.wait_for(run, BOUND_S)
        child = int(marker.read_text())
        await wait_for(lambda: gone(child))
        after = await server.run(script("exit 0"))
        return lost_pid, (await server.connection()).process.pid, after.returncode

    lost_pid, new_pid, code = asyncio.run(scenario())
    assert new_pid != lost_pid and code == 0


def test_an_interpreter_without_airflow_is_a_clear_error():
    async def scenario():
        return await ForkServer([sys.executable, "-c", RUN_PATH, airflow_fork_server.__file__]).run("{}")

    with pytest.raises(OSError, match="cannot import the Airflow Task SDK: ModuleNotFoundError"):
        asyncio.run(scenario())


def test_the_airflow_runner_fails_a_task_whose_interpreter_cannot_start():
    from airkafka_app.contract.commands import Command
    from airkafka_app.contract.states import State

    command = Command("t", "airflow", {"workload": '{"token": "x"}'})
    outcome = asyncio.run(AirflowRunner("/nonexistent/python").run(command))
    assert outcome.state is State.FAILED
    assert outcome.detail.startswith("cannot run the workload with '/nonexistent/python': ")


def test_runs_waiting_on_a_full_socket_fail_when_the_server_ends():
    # A server that says it is ready and then reads nothing: past 512 requests its socket is full.
    deaf = "import json, socket, time; s = socket.socket(fileno=0); s.send(json.dumps({'ready': 0}).encode()); time.sleep(600)"

    async def scenario():
        server = ForkServer([sys.executable, "-c", deaf])
        runs = [asyncio.ensure_future(server.run("x" * 1000)) for _ in range(700)]
        await asyncio.sleep(0.5)
        os.kill((await server.connection()).process.pid, signal.SIGKILL)
        return await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), BOUND_S)

    outcomes = asyncio.run(scenario())
    assert {type(outcome) for outcome in outcomes} == {ForkServerLost}


# A worker in a process of its own, which runs one script through a server and waits.
WORKER = """
import asyncio, sys
from tests.unit.test_fork_client import SERVERS
new_server, script = SERVERS[sys.argv[1]]
async def main():
    server = new_server()
    await server.run(script(sys.argv[2]))
asyncio.run(main())
"""


@pytest.mark.parametrize("kind", SERVERS)
def test_a_killed_worker_leaves_no_child_of_its_server_running(tmp_path, kind):
    marker = tmp_path / "pid"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, kind, f"echo $$ > {marker}; exec sleep 600"], cwd=Path(__file__).parents[2]
    )
    try:
        child = pid_written_to(marker, alive=lambda: worker.poll() is None)
        worker.kill()
        worker.wait()
        wait_gone(child, f"{kind}: child {child} outlived its worker")
    finally:
        worker.kill()


def pid_written_to(marker: Path, alive=lambda: True) -> int:
    deadline = time.monotonic() + BOUND_S
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline and alive()
        time.sleep(0.02)
    return int(marker.read_text())


def wait_gone(pid: int, failure: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not gone(pid):
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


# Each server's argv and a payload that runs a shell script, spoken to over the raw protocol.
RAW_SERVERS = {
    "fork server": ([sys.executable, "-c", SHELL_SERVER, airflow_fork_server.__file__], lambda script: script),
    "spawn server": (ShellRunner(allow=()).spawner.argv, lambda script: {"argv": ["sh", "-c", script]}),
}


@pytest.mark.parametrize("kind", RAW_SERVERS)
def test_a_worker_killed_before_it_read_a_reply_leaves_no_child_running(tmp_path, kind):
    """A unix socket closed with unread data resets its peer, rather than ending it: ECONNRESET
    must end the server as the end of input does, killing its children first."""
    argv, script = RAW_SERVERS[kind]
    marker = tmp_path / "pid"
    server = RawServer(argv)
    try:
        server.request(0, script(f"echo $$ > {marker}; exec sleep 600"))
        child = pid_written_to(marker)
        server.sock.close()  # the server's reply with the child's pid is still unread
        wait_gone(child, f"{kind}: child {child} outlived its worker")
    finally:
        server.close()


# The fork server's supervisors contain their runs as the spawn server contains its tasks: a run
# of this stand-in starts a process in a session of its own, as an Airflow task could.
MODES = ("cgroup", "subreaper")
ESCAPE = (
    "import subprocess; "
    "p = subprocess.Popen(['sleep', '600'], start_new_session=True, stdin=subprocess.DEVNULL, "
    "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); open({marker!r}, 'w').write(str(p.pid)); {then}"
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "then, timeout_s, ended",
    [
        ("print('done')", None, (0, 1, "done\n")),  # its end kills what it left
        ("import time; time.sleep(60)", 1.0, (None, 0, "")),  # its timeout kills it all
    ],
)
def test_what_a_run_started_in_a_session_of_its_own_ends_with_it(tmp_path, mode, then, timeout_s, ended):
    marker = tmp_path / "pid"

    async def scenario():
        server = ForkServer([*PYTHON_SERVER_ARGV, mode])
        finished = await server.run(ESCAPE.format(marker=str(marker), then=then), timeout_s=timeout_s)
        await wait_for(lambda: gone(int(marker.read_text())))
        return finished

    finished = asyncio.run(asyncio.wait_for(scenario(), BOUND_S))
    assert (finished.returncode, finished.left, finished.tail) == ended

"""The spawn server, which starts and reaps the shell runner's processes, with its client."""

import asyncio
import os
import sys

import pytest

from airkafka_app.worker.runners.shell import ShellRunner
from tests.processes import is_running, wait_for

BOUND_S = 20.0


def spawner():
    return ShellRunner(allow=()).spawner


def sh(script: str) -> dict:
    return {"argv": ["sh", "-c", script]}


def test_output_lines_and_exit_codes_come_back_through_one_server():
    async def scenario():
        server = spawner()
        lines: list[bytes] = []
        first = await server.run(sh("printf 'a\\nbb\\nc'; exit 3"), on_line=lines.append)
        pid = (await server.connection()).process.pid
        many = await asyncio.gather(*(server.run(sh(f"exit {n % 5}")) for n in range(50)))
        return first, lines, [f.returncode for f in many], pid, (await server.connection()).process.pid

    first, lines, codes, pid_before, pid_after = asyncio.run(scenario())
    assert (first.returncode, first.tail, lines) == (3, "a\nbb\nc", [b"a\n", b"bb\n", b"c"])
    assert codes == [n % 5 for n in range(50)]
    assert pid_before == pid_after


def test_env_is_added_to_the_workers_and_cwd_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_WORKER", "w")

    async def scenario():
        return await spawner().run({**sh("echo $FROM_WORKER $ADDED; pwd"), "env": {"ADDED": "a"}, "cwd": str(tmp_path)})

    assert asyncio.run(scenario()).tail == f"w a\n{tmp_path}\n"


def test_a_program_that_cannot_start_is_an_oserror_that_says_why(tmp_path):
    async def scenario():
        return await spawner().run({"argv": [str(tmp_path / "missing")]})

    with pytest.raises(OSError, match="No such file or directory"):
        asyncio.run(scenario())


def test_a_cancel_kills_the_group_and_the_server_reaps_the_process(tmp_path):
    marker = tmp_path / "pids"

    async def scenario():
        run = asyncio.ensure_future(spawner().run(sh(f"sleep 600 & echo $$ $! > {marker}; wait")))
        await wait_for(lambda: marker.exists() and marker.read_text().strip())
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, BOUND_S)
        shell, sleeper = (int(pid) for pid in marker.read_text().split())
        await wait_for(lambda: not is_running(sleeper))
        await wait_for(lambda: not os.path.exists(f"/proc/{shell}"))  # reaped, not left a zombie

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "payload, error",
    [
        ({"argv": ["sh", "-c", "true\0"]}, "embedded null byte"),
        ({**sh("true"), "env": {"A=B": "1"}}, "illegal environment variable name"),
        ({**sh("true"), "cwd": "/no/such/dir"}, "No such file or directory"),
        ({"argv": "not a list of strings", "executable": 7}, ""),
    ],
)
def test_a_request_that_cannot_start_fails_alone_and_the_server_goes_on(payload, error):
    async def scenario():
        server = spawner()
        beside = asyncio.ensure_future(server.run(sh("sleep 0.5; exit 4")))
        pid = (await server.connection()).process.pid
        with pytest.raises(OSError) as refused:
            await server.run(payload)
        after = await server.run(sh("exit 5"))
        return refused.value, (await beside).returncode, after.returncode, pid, (await server.connection()).process.pid

    refused, beside, after, pid_before, pid_after = asyncio.run(scenario())
    assert error in str(refused)
    assert (beside, after, pid_before) == (4, 5, pid_after)


# Containment: what a task starts ends with it, whatever session it makes. The cgroup mode
# needs a writable cgroup v2 (CI's machine and these development machines have one); the
# subreaper is the fallback where there is none, and works anywhere.
MODES = ("cgroup", "subreaper")
ESCAPE = "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {marker}; "


def contained(mode: str):
    return ShellRunner(allow=(), containment=mode).spawner


def pid_in(marker) -> int | None:
    text = marker.read_text().strip() if marker.exists() else ""
    return int(text) if text else None


@pytest.mark.parametrize("mode", MODES)
def test_a_timeout_kills_what_the_task_started_in_a_session_of_its_own(tmp_path, mode):
    marker = tmp_path / "pid"

    async def scenario():
        finished = await contained(mode).run(sh(ESCAPE.format(marker=marker) + "sleep 60"), timeout_s=1)
        await wait_for(lambda: not is_running(pid_in(marker)))
        return finished

    assert asyncio.run(asyncio.wait_for(scenario(), BOUND_S)).returncode is None


@pytest.mark.parametrize("mode", MODES)
def test_a_cancel_kills_what_the_task_started_in_a_session_of_its_own(tmp_path, mode):
    marker = tmp_path / "pid"

    async def scenario():
        run = asyncio.ensure_future(contained(mode).run(sh(ESCAPE.format(marker=marker) + "sleep 60")))
        await wait_for(lambda: pid_in(marker))
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, BOUND_S)
        await wait_for(lambda: not is_running(pid_in(marker)))

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", MODES)
def test_a_task_ends_with_its_own_process_and_what_it_left_holding_its_output_is_killed(tmp_path, mode):
    marker = tmp_path / "pid"

    async def scenario():
        # The grandchild holds the output pipe open: the task must not wait for it.
        finished = await contained(mode).run(sh(f"(sleep 600 & echo $! > {marker}); echo started; exit 0"))
        await wait_for(lambda: not is_running(pid_in(marker)))
        return finished

    finished = asyncio.run(asyncio.wait_for(scenario(), BOUND_S))
    assert (finished.returncode, finished.tail, finished.left) == (0, "started\n", 1)
    assert finished.summary(None) == (0, "exit code 0; 1 process it left running killed")


@pytest.mark.parametrize("mode", MODES)
def test_the_workers_end_kills_what_a_task_started_in_a_session_of_its_own(tmp_path, mode):
    marker = tmp_path / "pid"

    async def scenario():
        server = contained(mode)
        run = asyncio.ensure_future(server.run(sh(ESCAPE.format(marker=marker) + "sleep 60")))
        await wait_for(lambda: pid_in(marker))
        connection = await server.connection()
        os.close(connection._sock.detach())  # the worker's end, as its exit leaves it
        await wait_for(lambda: not is_running(pid_in(marker)), BOUND_S)
        run.cancel()

    asyncio.run(scenario())


def test_a_task_over_its_memory_limit_ends_killed_by_it_not_by_a_bare_signal():
    async def scenario():
        payload = {"argv": [sys.executable, "-c", "x = bytearray(400 << 20); x[::4096] = b'x' * len(x[::4096])"]}
        return await contained("cgroup").run({**payload, "limits": {"memory_mb": 64}})

    finished = asyncio.run(asyncio.wait_for(scenario(), BOUND_S))
    assert finished.oom, finished
    assert finished.summary(None)[1] == "killed: over its memory limit"


def test_a_fork_bomb_stays_inside_its_process_limit():
    async def scenario():
        script = "for i in $(seq 50); do sleep 30 & done 2>/dev/null; exit 0"
        return await contained("cgroup").run({**sh(script), "limits": {"pids": 10}})

    finished = asyncio.run(asyncio.wait_for(scenario(), BOUND_S))
    # The shell and at most 9 sleeps ran at once; they were killed when the shell exited.
    assert 1 <= finished.left <= 9, finished


def test_an_unknown_containment_mode_is_a_clear_error():
    async def scenario():
        return await contained("none").run(sh("true"))

    with pytest.raises(OSError, match="cannot contain tasks: containment mode 'none'"):
        asyncio.run(scenario())


def test_a_tasks_cpu_weight_is_its_groups_as_the_host_delegates_it():
    # Its own cgroup's cpu.weight under cgroup v2, or cpu.shares under v1, read by the task itself.
    script = (
        "import pathlib\n"
        "for line in open('/proc/self/cgroup'):\n"
        "    _, controllers, path = line.strip().split(':', 2)\n"
        "    for name, where in (('cpu.weight', '/sys/fs/cgroup/unified'), ('cpu.weight', '/sys/fs/cgroup'),\n"
        "                        ('cpu.shares', '/sys/fs/cgroup/cpu')):\n"
        "        if (controllers == '' or 'cpu' in controllers.split(',')) and (f := pathlib.Path(where + path, name)).exists():\n"
        "            print(name, f.read_text().strip())\n"
    )

    async def scenario():
        return await contained("cgroup").run({"argv": [sys.executable, "-c", script], "limits": {"cpu_weight": 50}})

    finished = asyncio.run(asyncio.wait_for(scenario(), BOUND_S))
    assert "cpu.weight 50" in finished.tail or "cpu.shares 512" in finished.tail, finished.tail

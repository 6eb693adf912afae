"""The spawn server, which starts and reaps the shell runner's processes, with its client."""

import asyncio
import os

import pytest

from airkafka_app.runners.shell import ShellRunner
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

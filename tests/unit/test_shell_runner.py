import asyncio
import time

import pytest

from airkafka_app.commands import Command, InvalidCommand
from airkafka_app.runners import runner_for
from airkafka_app.runners.process import TAIL_BYTES
from airkafka_app.runners.shell import ShellRunner
from airkafka_app.states import State
from tests.processes import is_running

RUNNER = ShellRunner(allow={"true", "sh", "sleep"})


def shell(argv, **fields) -> Command:
    return Command(id="t", kind="shell", args={"argv": argv, **fields.pop("args", {})}, **fields)


def run(command: Command):
    return asyncio.run(RUNNER.run(command))


def test_success_and_real_exit_code():
    assert run(shell(["true"])).state is State.SUCCESS
    outcome = run(shell(["sh", "-c", "echo oops >&2; exit 127"]))
    assert (outcome.state, outcome.exit_code) == (State.FAILED, 127)
    assert outcome.detail == "exit code 127\noops\n"


def test_env_and_cwd_reach_the_process(tmp_path):
    outcome = run(shell(["sh", "-c", "echo $GREETING; pwd"], args={"env": {"GREETING": "hi"}, "cwd": str(tmp_path)}))
    assert outcome.detail == f"exit code 0\nhi\n{tmp_path}\n"


def test_detail_keeps_only_the_tail():
    outcome = run(shell(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"]))
    tail = outcome.detail.split("\n", 1)[1]
    assert len(tail.encode()) == TAIL_BYTES and tail.endswith("line1999\n")


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = run(shell(["sh", "-c", f"sleep 30 & echo $! > {marker}; wait"], timeout_s=0.5))
    assert time.monotonic() - started < 5
    assert (outcome.state, outcome.exit_code) == (State.FAILED, None)
    assert outcome.detail.startswith("timeout after 0.5s")
    child = int(marker.read_text())
    deadline = time.monotonic() + 3
    while is_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(child)


def test_killed_by_signal_is_failed():
    outcome = run(shell(["sh", "-c", "kill -9 $$"]))
    assert (outcome.state, outcome.exit_code) == (State.FAILED, 137)
    assert "SIGKILL" in outcome.detail


@pytest.mark.parametrize(
    "allow, args, reason",
    [
        (set(), {"argv": ["true"]}, "disabled"),
        ({"true"}, {"argv": ["rm", "-rf", "/"]}, "'rm' is not on AIRKAFKA_SHELL_ALLOW"),
        ({"true"}, {"argv": ["/bin/true"]}, "'/bin/true' is not on"),
        ({"true"}, {"argv": []}, "non-empty list"),
        ({"true"}, {"argv": "true"}, "non-empty list"),
        ({"true"}, {"argv": ["true"], "env": {"A": 1}}, "args.env"),
        ({"true"}, {"argv": ["true"], "cwd": 3}, "args.cwd"),
        ({"true"}, {"argv": ["true"], "shell": True}, "unknown shell arg(s): shell"),
    ],
)
def test_check_refuses_before_running(allow, args, reason):
    with pytest.raises(InvalidCommand) as info:
        ShellRunner(allow).check(Command(id="t", kind="shell", args=args))
    assert reason in str(info.value)


def test_unknown_kind_is_refused():
    with pytest.raises(InvalidCommand, match="unknown kind 'python'"):
        runner_for({"shell": RUNNER}, Command(id="t", kind="python", args={}))

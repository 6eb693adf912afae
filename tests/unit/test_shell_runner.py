import asyncio
import os
import time

import pytest

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.contract.states import State
from airkafka_app.worker.runners import runner_for
from airkafka_app.worker.runners.process import TAIL_BYTES
from airkafka_app.worker.runners.shell import ShellRunner
from tests.processes import is_running

RUNNER = ShellRunner(allow={"true", "sh", "sleep"})


def shell(argv, **fields) -> Command:
    return Command(id="t", kind="shell", args={"argv": argv, **fields.pop("args", {})}, **fields)


@pytest.fixture
def run():
    def run_command(command: Command, runner: ShellRunner = RUNNER):
        return asyncio.run(runner.run(command))

    return run_command


def test_every_run_starts_in_the_spawn_server_which_contains_it():
    async def scenario():
        alone = await RUNNER.run(shell(["sh", "-c", "echo $PPID"]))
        return alone, (await RUNNER.spawner.connection()).process.pid

    alone, server = asyncio.run(scenario())
    assert int(alone.detail.split("\n")[1]) == server != os.getpid()


def test_a_relative_program_on_the_allowlist_is_the_workers_file_whatever_the_commands_cwd(run, tmp_path):
    # The worker's own bin/tool, and the command's directory with a bin/tool of its choosing.
    for where, says in ((tmp_path / "worker", "worker"), (tmp_path / "attacker", "attacker")):
        (where / "bin").mkdir(parents=True)
        tool = where / "bin" / "tool"
        tool.write_text(f"#!/bin/sh\necho {says}\n")
        tool.chmod(0o755)
    cwd = os.getcwd()
    os.chdir(tmp_path / "worker")
    try:
        runner = ShellRunner(allow={"bin/tool"})
        command = shell(["bin/tool"], args={"cwd": str(tmp_path / "attacker")})
        runner.check(command)
    finally:
        os.chdir(cwd)
    assert run(command, runner).detail == "exit code 0\nworker\n"


def test_start_up_warns_of_programs_that_run_other_programs_and_entries_that_name_none():
    warnings = ShellRunner(
        allow={"true", "sh", "env", "python3", "no-such-program-here"}, user=str(os.geteuid())
    ).start_up_warnings()
    assert [w.split(" (")[0].split(" is ")[0] for w in warnings] == [
        "shell program 'env'",
        "shell program 'no-such-program-here'",
        "shell program 'python3'",
        "shell program 'sh'",
    ]
    assert "not found on the worker's PATH; its commands will be dead-lettered" in warnings[1]
    assert "can run any other program" in warnings[0]


def test_success_and_real_exit_code(run):
    assert run(shell(["true"])).state is State.SUCCESS
    outcome = run(shell(["sh", "-c", "echo oops >&2; exit 127"]))
    assert (outcome.state, outcome.exit_code) == (State.FAILED, 127)
    assert outcome.detail == "exit code 127\noops\n"


def test_env_and_cwd_reach_the_process(run, tmp_path):
    outcome = run(shell(["sh", "-c", "echo $GREETING; pwd"], args={"env": {"GREETING": "hi"}, "cwd": str(tmp_path)}))
    assert outcome.detail == f"exit code 0\nhi\n{tmp_path}\n"


def test_detail_keeps_only_the_tail(run):
    outcome = run(shell(["sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"]))
    tail = outcome.detail.split("\n", 1)[1]
    assert len(tail.encode()) == TAIL_BYTES and tail.endswith("line1999\n")


def test_timeout_kills_the_whole_process_group(run, tmp_path):
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


def test_killed_by_signal_is_failed(run):
    outcome = run(shell(["sh", "-c", "kill -9 $$"]))
    assert (outcome.state, outcome.exit_code) == (State.FAILED, 137)
    assert "SIGKILL" in outcome.detail


@pytest.mark.parametrize(
    "allow, args, reason",
    [
        ({"true"}, {"argv": ["rm", "-rf", "/"]}, "'rm' is not on AIRKAFKA_SHELL_ALLOW"),
        ({"true"}, {"argv": ["/bin/true"]}, "'/bin/true' is not on"),
        ({"true"}, {"argv": []}, "non-empty list"),
        ({"true"}, {"argv": "true"}, "non-empty list"),
        ({"true"}, {"argv": ["true"], "env": {"A": 1}}, "args.env"),
        ({"true"}, {"argv": ["true"], "cwd": 3}, "args.cwd"),
        ({"true"}, {"argv": ["true"], "shell": True}, "unknown shell arg(s): 'shell'"),
    ],
)
def test_check_refuses_before_running(allow, args, reason):
    with pytest.raises(InvalidCommand) as info:
        ShellRunner(allow).check(Command(id="t", kind="shell", args=args))
    assert reason in str(info.value)


def test_a_disabled_runner_refuses_every_command_and_says_why():
    runner = ShellRunner(allow=())
    assert runner.disabled == "AIRKAFKA_SHELL_ALLOW is empty"
    with pytest.raises(InvalidCommand, match="shell runner is disabled on worker .*: AIRKAFKA_SHELL_ALLOW is empty"):
        runner_for({"shell": runner}, Command(id="t", kind="shell", args={"argv": ["true"]}), "worker w1")


def test_unknown_kind_is_refused():
    with pytest.raises(InvalidCommand, match="unknown kind 'python'"):
        runner_for({"shell": RUNNER}, Command(id="t", kind="python", args={}))


def test_a_program_that_cannot_start_fails_the_task_and_says_why(run, tmp_path):
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x00not a program")
    broken.chmod(0o755)
    outcome = run(shell([str(broken)]), ShellRunner(allow={str(broken), "sleep"}))
    assert (outcome.state, outcome.exit_code) == (State.FAILED, None)
    assert outcome.detail == f"cannot start {str(broken)!r}: [Errno 8] Exec format error: {str(broken)!r}"


def test_a_program_gone_after_its_check_fails_the_task_and_says_why(run, tmp_path):
    program = tmp_path / "gone"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    runner = ShellRunner(allow={str(program), "sleep"})
    command = shell([str(program)])
    runner.check(command)
    program.unlink()
    outcome = run(command, runner)
    assert (outcome.state, outcome.exit_code) == (State.FAILED, None)
    assert "No such file or directory" in outcome.detail


def test_a_worker_running_as_root_without_a_task_user_is_warned():
    warnings = ShellRunner(allow={"true"}).start_up_warnings()
    assert ["AIRKAFKA_TASK_USER is empty" in w for w in warnings] == [os.geteuid() == 0]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run tasks as another user")
def test_tasks_run_as_the_task_user_and_cannot_read_the_workers_proc():
    runner = ShellRunner(allow={"sh"}, user="nobody")
    outcome = asyncio.run(runner.run(shell(["sh", "-c", f"id -u; cat /proc/{os.getpid()}/environ"])))
    assert outcome.detail.split("\n")[1] == "65534"
    assert "Permission denied" in outcome.detail and outcome.exit_code == 1


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "RUBYOPT",
        "NODE_OPTIONS",
        "BASH_ENV",
        "ENV",
        "PATH",
    ],
)
def test_an_env_allowlist_of_star_never_admits_what_picks_the_program_or_runs_code_first(name):
    runner = ShellRunner(allow={"true"}, env_allow={"*"})
    runner.check(Command(id="t", kind="shell", args={"argv": ["true"], "env": {"APP_MODE": "x"}}))
    with pytest.raises(InvalidCommand, match="could change which program runs"):
        runner.check(Command(id="t", kind="shell", args={"argv": ["true"], "env": {name: "x"}}))

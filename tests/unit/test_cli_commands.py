"""The ``airkafka`` command line without a broker: its read-only commands build no worker (Faust is
not even imported), its help puts the operator's commands first, and listings are one line per
row, with a word for an empty one."""

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from airkafka_app.worker import cli
from airkafka_app.worker.terminal import MAX_CELL, Terminal

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from click.testing import CliRunner
from airkafka_app.worker.cli import airkafka
result = CliRunner().invoke(airkafka, sys.argv[1:])
import airkafka_app
print(result.exit_code, "faust" in sys.modules, airkafka_app._app is not None)
print(result.output)
"""


def run(*args: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "AIRKAFKA_WEB_PORT": "9"},  # nothing listens on the discard port
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, _, output = done.stdout.partition("\n")
    return first, output


def test_a_read_only_command_builds_no_worker_and_imports_no_faust():
    first, output = run("tasks")
    assert first == "1 False False", output  # it failed to reach a worker, without building one
    assert "http://127.0.0.1:9" in output


def test_help_lists_the_operators_commands_and_keeps_fausts_under_worker():
    first, output = run("--help")
    assert first == "0 False False"
    for command in ("submit", "tasks", "task", "logs", "workers", "dead-letters", "replay", "maintenance", "worker"):
        assert f"  {command} " in output
    assert "livecheck" not in output and "ƒaµS†" not in output


def test_a_listing_is_one_line_per_row_cut_and_escaped():
    lines = []
    terminal = Terminal(as_json=False)
    terminal.say = lambda text, err=False: lines.append(text)
    rows = [
        {"id": "t1", "state": "failed", "detail": "Traceback (most recent call last):\n  File ...\nValueError"},
        {"id": "t2\x1b[31m", "state": "success", "detail": "x" * 500},
    ]
    terminal.listing(rows, ["id", "state", "detail"], empty="nothing")
    assert len(lines) == 3 and lines[0].split() == ["id", "state", "detail"]
    assert lines[1].endswith("Traceback (most recent call last):")
    assert "\x1b" not in lines[2] and lines[2].endswith("x" * (MAX_CELL - 1) + "…")


def test_an_empty_listing_says_so_and_json_stays_json():
    said = []
    terminal = Terminal(as_json=False)
    terminal.say = lambda text, err=False: said.append(text)
    terminal.listing([], ["id"], empty="no running tasks in queue default")
    assert said == ["no running tasks in queue default"]
    terminal = Terminal(as_json=True)
    terminal.say = lambda text, err=False: said.append(text)
    terminal.listing([{"id": "a\nb"}], ["id"], empty="-")
    assert json.loads(said[-1]) == [{"id": "a\nb"}]


def test_worker_hands_its_arguments_to_faust(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "_faust", lambda *argv: seen.append(argv))
    result = CliRunner().invoke(cli.airkafka, ["worker", "-l", "info", "--web-port", "6067"])
    assert result.exit_code == 0, result.output
    assert seen == [("worker", "-l", "info", "--web-port", "6067")]


def test_an_airflow_try_is_listed_on_one_line_with_its_identity():
    from airkafka_app.worker.cli import airflow_try

    identity = {"dag_id": "etl", "task_id": "load", "run_id": "manual__1", "map_index": -1, "try_number": 2}
    assert airflow_try(identity) == "etl.load manual__1 try 2"
    assert airflow_try({**identity, "map_index": 4}) == "etl.load[4] manual__1 try 2"
    assert airflow_try(None) is None and airflow_try("forged") is None

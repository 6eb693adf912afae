"""docs/airflow-quickstart.md, executed: its shell blocks run in order, each in a fresh bash from
the checkout, in a clean environment, with the ports the guide documents.

The ``install`` block runs the Make targets of ``make test`` with the guide's venv paths, which
are links to the venvs ``make test`` made: it checks that they are installed, as a user's would
run them. The ``stop`` block runs last, whatever failed.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "airflow-quickstart.md"
BLOCK = re.compile(r"^```sh( \w+)?\n(.*?)^```", re.S | re.M)
AIRFLOW_VENV = Path(os.environ.get("AIRKAFKA_AIRFLOW_VENV", ROOT / ".venv-airflow")).resolve()


def blocks() -> list[tuple[str, str]]:
    return [((tag or "").strip(), body) for tag, body in BLOCK.findall(GUIDE.read_text())]


def clean_env(qs: Path) -> dict[str, str]:
    # Not make's own variables either: the suite runs under `make test`, a reader's shell does not.
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AIRKAFKA_", "AIRFLOW", "MAKE", "MFLAGS"))}
    return {**kept, "QS": str(qs)}


def run(body: str, env: dict[str, str], sessions: list[int], timeout: float = 600) -> str:
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", body],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    sessions.append(process.pid)
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"block failed ({process.returncode}):\n{body}\n--- output:\n{out[-4000:]}"
    return out


def test_the_airflow_quickstart_runs_as_written(tmp_path):
    qs = tmp_path / "qs"
    env = clean_env(qs)
    steps = blocks()
    assert [tag for tag, _ in steps][0] == "install" and steps[-1][0] == "stop"
    qs.mkdir()
    (qs / "airflow-venv").symlink_to(AIRFLOW_VENV)
    (qs / "worker-venv").symlink_to(Path(sys.prefix))
    sessions: list[int] = []
    outputs = []
    try:
        installed = run(steps[0][1], env, sessions)
        assert "is up to date" in installed, installed  # the venvs make test made
        for _, body in steps[1:-1]:
            outputs.append(run(body, env, sessions))
        check(outputs, qs)
    except BaseException:
        for log in sorted((qs / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        run(steps[-1][1], env, [])
        for session in sessions:  # what the stop block missed, if a block failed half-way
            try:
                os.killpg(session, signal.SIGKILL)
            except ProcessLookupError:
                pass


def check(outputs: list[str], qs: Path) -> None:
    assert outputs[0].strip() == "127.0.0.1:9092"  # the broker script prints only the address
    assert "dag run quickstart-1: success" in outputs[4]
    assert "hello from airkafka" in outputs[5]
    listed = set(outputs[6].splitlines())
    assert {"hello success", "fan_0 success", "fan_1 success", "fan_2 success"} <= {
        " ".join(line.split()[:2]) for line in listed
    }
    health = json.loads(outputs[3].strip().splitlines()[-1])
    assert health["status"] == "ok" and health["kinds"] == ["airflow", "trigger_dag"]
    worker_log = (qs / "logs" / "worker.log").read_text()
    assert "shell runner disabled: AIRKAFKA_SHELL_ALLOW is empty" in worker_log
    assert "airflow runner disabled" not in worker_log

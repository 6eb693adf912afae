import asyncio
import base64
import json
import time

from airkafka_app.contract.commands import Command
from airkafka_app.contract.states import State
from airkafka_app.worker.runners.airflow import AirflowRunner, FinalState, token_expiry


def workload(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "ti", "exp": exp}).encode()).decode().rstrip("=")
    return json.dumps({"token": f"header.{claims}.signature", "ti": {}})


def test_token_expiry_is_read_from_the_workload():
    assert token_expiry(workload(1234.0)) == 1234.0
    assert token_expiry('{"token": "not-a-jwt"}') is None


def test_an_expired_workload_fails_with_a_clear_detail_before_anything_runs():
    runner = AirflowRunner(python="/nonexistent/python")  # never started: the token is checked first
    command = Command("t", "airflow", {"workload": workload(time.time() - 100)})
    outcome = asyncio.run(runner.run(command))
    assert outcome.state is State.FAILED
    assert outcome.detail.startswith("workload token expired 100s ago")


def test_final_state_comes_from_the_supervisor_record_not_the_exit_code():
    final = FinalState()
    final(b'{"event": "Task instance is in running state"}\n')
    final(b'{"event": "Workload finished", "exit_code": 0, "final_state": "failed"}\n')
    assert final.value == "failed" and not final.already_running

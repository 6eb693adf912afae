"""The Airflow fork server in Airflow's own interpreter: a workload it cannot read fails with the
reason in the task's output, and the server goes on."""

import asyncio

from airkafka_app.worker.runners.airflow import AirflowRunner
from scripts.local_airflow import PYTHON as AIRFLOW_PYTHON


def test_the_airflow_fork_server_reports_a_bad_workload_in_its_output():
    async def scenario():
        runner = AirflowRunner(str(AIRFLOW_PYTHON))
        finished = await runner.fork_server.run('{"type": "NotAWorkload"}')
        return finished, await runner.fork_server.run("{}")

    bad_type, empty = asyncio.run(scenario())
    assert bad_type.returncode == 1 and "validation error" in bad_type.tail
    assert empty.returncode == 1 and "validation error" in empty.tail

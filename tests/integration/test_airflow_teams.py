"""Airflow 3's multi-team mode on a real Airflow 3.3 and the real broker: one KafkaExecutor per team,
each reading its team's ``[airkafka]`` options, so that each team's tries go to its own topics
and run on its own workers only."""

import json
from pathlib import Path

from airkafka_app.contract.airflow_tasks import command_id
from scripts.local_airflow import LocalAirflow
from scripts.local_deployment import Deployment

TEAMS = ("team_a", "team_b")
BUNDLES = Path(__file__).resolve().parent / "team_dags"
EXECUTOR = "airkafka_app.executor.KafkaExecutor"


def team_options(deployment: Deployment, prefix: str) -> dict[str, str]:
    """A deployment's settings as Airflow options: ``AIRFLOW__<prefix>AIRKAFKA__<NAME>``."""
    names = ("BROKER", "APP_ID", "PARTITIONS", "COMMANDS_TOPIC", "STATE_CHANGES_TOPIC", "DEAD_LETTERS_TOPIC")
    return {f"AIRFLOW__{prefix}AIRKAFKA__{name}": deployment.env()[f"AIRKAFKA_{name}"] for name in names}


def test_each_teams_tries_run_on_its_own_workers(broker, tmp_path):
    deployments = {team: Deployment(broker.bootstrap, tmp_path / team, partitions=2) for team in TEAMS}
    shared = Deployment(broker.bootstrap, tmp_path / "shared", partitions=2)  # the global executor's
    bundles = json.dumps(
        [
            {
                "name": f"{team}_dags",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(BUNDLES / team)},
                "team_name": team,
            }
            for team in TEAMS
        ]
    )
    env = {
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__CORE__EXECUTOR": ";".join([EXECUTOR, *(f"{team}={EXECUTOR}" for team in TEAMS)]),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": bundles,
        **team_options(shared, ""),
        **{
            key: value for team in TEAMS for key, value in team_options(deployments[team], f"{team.upper()}___").items()
        },
    }
    airflow = LocalAirflow(tmp_path / "airflow", BUNDLES, env)
    workers = {
        team: deployments[team].worker(
            f"{team}-worker",
            **airflow.worker_env(tmp_path / f"{team}-home"),
            # The task runner parses the DAG from its team's bundle.
            AIRFLOW__CORE__MULTI_TEAM="True",
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=bundles,
        )
        for team in TEAMS
    }
    try:
        airflow.start("airkafka_team_a", teams=TEAMS)
        for worker in workers.values():
            worker.start().wait_ready()
        for team in TEAMS:
            airflow.api("POST", f"/dags/airkafka_{team}/dagRuns", json={"dag_run_id": "run-1", "logical_date": None})
        for team in TEAMS:
            assert airflow.wait_for_run(f"airkafka_{team}", "run-1")["state"] == "success"
        for team in TEAMS:
            deployment, other = deployments[team], next(t for t in TEAMS if t != team)
            mine = command_id(f"airkafka_{team}", "hello", "run-1", -1, 1)
            theirs = command_id(f"airkafka_{other}", "hello", "run-1", -1, 1)
            changes = deployment.state_changes_until_terminal([mine])
            assert changes[mine][-1]["worker"] == f"{team}-worker", changes
            assert workers[team].get(f"/tasks/{theirs}/")[0] == 404  # never on this team's topics
    finally:
        for worker in workers.values():
            worker.stop()
        airflow.stop()

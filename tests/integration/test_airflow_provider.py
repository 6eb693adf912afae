"""AirKafka as an Airflow provider, in Airflow's own interpreter: listed, configured through
Airflow's conf, and its CLI reads the workers from the real broker."""

import json
import os
import subprocess
import time

from scripts.local_airflow import VENV
from scripts.local_deployment import Deployment, shell

AIRFLOW = VENV / "bin" / "airflow"


def airflow_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRKAFKA_", "AIRFLOW"))}
    return {**env, "AIRFLOW_HOME": str(tmp_path / "airflow"), **extra}


def run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_airflow_lists_the_provider_and_shows_its_section_with_the_defaults(tmp_path):
    env = airflow_env(tmp_path)
    assert "airkafka" in run([str(AIRFLOW), "providers", "list"], env)
    section = run([str(AIRFLOW), "config", "list", "--section", "airkafka", "--show-values"], env)
    assert "broker = kafka://127.0.0.1:9092" in section and "partitions = 8" in section


def test_the_executor_reads_airflow_conf_and_an_airkafka_variable_wins(tmp_path):
    code = (
        "import airflow.configuration\nfrom airkafka_app.contract.settings import Settings\nsettings = Settings()\n"
        "print(settings.partitions, settings.queues, repr(settings.sasl_password))"
    )
    env = airflow_env(
        tmp_path,
        AIRFLOW__AIRKAFKA__PARTITIONS="5",
        AIRFLOW__AIRKAFKA__QUEUES="default,gpu",
        AIRFLOW__AIRKAFKA__SASL_PASSWORD_CMD="echo from-a-command",
    )
    assert (
        run([str(VENV / "bin" / "python"), "-c", code], env).split("\n")[0] == "5 ('default', 'gpu') 'from-a-command'"
    )
    env["AIRKAFKA_PARTITIONS"] = "3"
    assert run([str(VENV / "bin" / "python"), "-c", code], env).startswith("3 ")


def test_airflow_airkafka_workers_lists_the_workers_from_their_heartbeats(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("seen-by-the-cli").start().wait_ready()
    try:
        env = airflow_env(
            tmp_path, AIRKAFKA_BROKER=f"kafka://{broker.bootstrap}", AIRKAFKA_HEARTBEATS_TOPIC=deployment.heartbeats
        )
        deadline = time.monotonic() + 30  # the first heartbeat goes out AIRKAFKA_HEARTBEAT_S after start
        while not (
            rows := [
                json.loads(line)
                for line in run([str(AIRFLOW), "airkafka", "workers", "--json"], env).splitlines()
                if line.startswith("{")
            ]
        ):
            assert time.monotonic() < deadline
            time.sleep(1)
        assert [(r["worker"], r["status"]) for r in rows] == [("seen-by-the-cli", "online")]
        worker.stop()
        rows = [
            json.loads(line)
            for line in run([str(AIRFLOW), "airkafka", "workers", "--json"], env).splitlines()
            if line.startswith("{")
        ]
        assert [(r["worker"], r["status"]) for r in rows] == [("seen-by-the-cli", "stopped")]
    finally:
        worker.stop()


def test_airflow_airkafka_tasks_and_task_read_the_cluster_views(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("cli-views", AIRKAFKA_WEB_TOKEN="s3cret", AIRKAFKA_WEB_AUTH_READS="true").start()
    try:
        worker.wait_ready()
        deployment.send_commands(shell("cli-ok", "true"), shell("cli-bad", "sh", "-c", "exit 4"))
        deployment.state_changes_until_terminal(["cli-ok", "cli-bad"])
        env = airflow_env(tmp_path, AIRKAFKA_WEB_PORT=str(worker.port), AIRKAFKA_WEB_TOKEN="s3cret")
        rows = [
            json.loads(line)
            for line in run([str(AIRFLOW), "airkafka", "tasks", "--state", "failed", "--json"], env).splitlines()
            if line.startswith("{")
        ]
        assert [(r["id"], r["exit_code"]) for r in rows] == [("cli-bad", 4)]
        none = run([str(AIRFLOW), "airkafka", "tasks", "--state", "running"], env)
        assert "no running tasks in queue default" in none, none
        shown = run([str(AIRFLOW), "airkafka", "task", "cli-ok"], env)
        record = json.loads(shown[shown.index("{") :])
        assert record["state"] == "success" and record["worker"] == "cli-views"
        refused = subprocess.run(
            [str(AIRFLOW), "airkafka", "task", "cli-ok"],
            capture_output=True,
            text=True,
            env={**env, "AIRKAFKA_WEB_TOKEN": "wrong"},
            timeout=120,
        )
        assert refused.returncode != 0 and "HTTP 401" in refused.stderr
        sent = run([str(AIRFLOW), "airkafka", "maintenance", "cli-views", "--comment", "kernel update"], env)
        assert sent.startswith("sent "), sent
        deadline = time.monotonic() + 30
        while worker.get("/stats/", token="s3cret")[1]["maintenance"] != "kernel update":
            assert time.monotonic() < deadline, worker.get("/stats/", token="s3cret")
            time.sleep(0.2)
        run([str(AIRFLOW), "airkafka", "pause", "default"], env)
        run([str(AIRFLOW), "airkafka", "concurrency", "cli-views", "7"], env)
        while (stats := worker.get("/stats/", token="s3cret")[1])["concurrency"] != 7 or stats["paused"] != ["default"]:
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)
    finally:
        worker.stop()

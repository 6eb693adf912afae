"""A local Apache Airflow 3 (SQLite; api-server, scheduler, dag-processor) using KafkaExecutor.

Used by the tests. Airflow runs from its own venv (AIRKAFKA_AIRFLOW_VENV, default
.venv-airflow), because it cannot share one with Faust.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from scripts.local_kafka import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("AIRKAFKA_AIRFLOW_VENV", ROOT / ".venv-airflow")).resolve()
PYTHON = VENV / "bin" / "python"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
USERNAME = "airkafka"
PASSWORD = "airkafka-test-password"


class LocalAirflow:
    def __init__(self, home: Path, dags: Path, extra_env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "airkafka_app.executor.KafkaExecutor",
            # SQLite takes one writer at a time; two dozen task supervisors on two cores can hold
            # the lock past sqlite's 5 s default, which stopped the scheduler once in a test run.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "airkafka-test-jwt-secret-0123456789",
            "AIRFLOW__API__SECRET_KEY": "airkafka-test-secret-key",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            # Connection tests run on a worker, through the executor.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            **extra_env,
        }
        self.processes: list[subprocess.Popen] = []
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_env(self, worker_home: Path) -> dict[str, str]:
        """What an AirKafka worker needs to run workloads and trigger DAGs: no metadata database."""
        worker_home.mkdir(parents=True, exist_ok=True)
        return {
            "AIRKAFKA_AIRFLOW_PYTHON": str(PYTHON),
            "AIRKAFKA_AIRFLOW_API_URL": self.url,
            "AIRKAFKA_TRIGGER_DAG_ALLOW": "*",
            "AIRKAFKA_AIRFLOW_USERNAME": USERNAME,
            "AIRKAFKA_AIRFLOW_PASSWORD": PASSWORD,
            "AIRFLOW_HOME": str(worker_home),
            "AIRFLOW__CORE__DAGS_FOLDER": self.env["AIRFLOW__CORE__DAGS_FOLDER"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": self.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"],
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # The worker runs the task supervisors: it must wait no longer after a task ends
            # than the supervisors of Airflow's own executors do.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": self.env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"],
            # The worker serves its task logs (log_server.py); the API server signs its requests.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": self.env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
            "AIRFLOW__API__SECRET_KEY": self.env["AIRFLOW__API__SECRET_KEY"],
        }

    def start(self, dag_id: str, timeout: float = 180.0, teams: tuple[str, ...] = ()) -> LocalAirflow:
        """Migrate the database, create ``teams`` (multi-team mode), start the components, and wait
        until ``dag_id`` is parsed."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USERNAME: PASSWORD}))
        for args in (["db", "migrate"], *(["teams", "create", team] for team in teams)):
            subprocess.run(
                [str(VENV / "bin" / "airflow"), *args],
                env=self.env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        for component in COMPONENTS:
            self.processes.append(self._launch(component))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[1]} exited {process.returncode}; see {self.home}")
            try:
                self.api("GET", f"/dags/{dag_id}")
                return self
            except requests.RequestException:
                pass
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s; see {self.home}")

    def api(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs) -> dict:
        if self._token is None:
            login = requests.post(
                f"{self.url}/auth/token", json={"username": USERNAME, "password": PASSWORD}, timeout=30
            )
            login.raise_for_status()
            self._token = login.json()["access_token"]
        response = requests.request(
            method,
            f"{self.url}/api/v2{path}",
            timeout=30,
            headers={"Authorization": f"Bearer {self._token}", **(headers or {})},
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def _launch(self, component: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        args = ["--port", str(self.port)] if component == "api-server" else []
        with open(self.home / f"{component}.log", "ab") as log:
            return subprocess.Popen(
                [str(VENV / "bin" / "airflow"), component, *args],
                env={**self.env, **(env or {})},
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, component: str) -> None:
        """SIGKILL one component, as a crash or an OOM kill would end it."""
        process = self.processes[COMPONENTS.index(component)]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, component: str, **env: str) -> None:
        """Start it again, with ``env`` added to its environment."""
        self.processes[COMPONENTS.index(component)] = self._launch(component, env)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict:
        """The DAG run once it has ended."""
        deadline = time.monotonic() + timeout
        run = {"state": "unknown"}
        while time.monotonic() < deadline:
            try:
                run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            except requests.Timeout:
                continue  # SQLite under a busy scheduler can stall the api-server; ask again
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise TimeoutError(f"DAG run {run_id} of {dag_id} still {run['state']} after {timeout}s")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

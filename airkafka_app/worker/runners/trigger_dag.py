"""The ``trigger_dag`` runner: one Airflow DAG run per command, through Airflow's REST API.

The DAG run id is derived from the command id, so a redelivery or a replay of the command
finds its run (HTTP 409) instead of starting a second one. ``apache-airflow-client`` is
imported at the first call: its generated models weigh about 27 MB of a worker's memory,
which a worker that never triggers a DAG need not carry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, TypeVar

import urllib3

from airkafka_app.contract.commands import Command, InvalidCommand, shown
from airkafka_app.contract.states import State
from airkafka_app.worker.runners import Outcome, Output

if TYPE_CHECKING:
    from airflow_client.client.api.dag_run_api import DagRunApi

log = logging.getLogger(__name__)
T = TypeVar("T")
ARG_FIELDS = frozenset({"dag_id", "conf", "wait"})
SAFE_RUN_ID = re.compile(r"[A-Za-z0-9_.~:+-]+")
ENDED = frozenset({"success", "failed"})


def dag_run_id(task_id: str) -> str:
    if SAFE_RUN_ID.fullmatch(task_id) and len(task_id) <= 200:
        return f"airkafka__{task_id}"
    return f"airkafka__{hashlib.sha256(task_id.encode()).hexdigest()[:40]}"


class Refused(Exception):
    """Airflow answered, and retrying will not change the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status


class Unreachable(Exception):
    pass


class AirflowApi:
    """Airflow's REST API with a JWT from ``POST /auth/token``, renewed on 401.

    Calls retry with exponential backoff while Airflow is unreachable or answers 5xx.
    """

    def __init__(self, url: str, username: str, password: str, attempts: int, first_delay_s: float = 1.0) -> None:
        self.url = url.rstrip("/")
        self._credentials = (username, password)
        self._attempts = attempts
        self._first_delay_s = first_delay_s
        self._token: str | None = None

    def _fresh_token(self) -> str | None:
        username, password = self._credentials
        if not username:
            return None
        response = urllib3.request(
            "POST", f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        if response.status != 201:
            raise Refused(response.status, "from /auth/token: check AIRKAFKA_AIRFLOW_USERNAME and _PASSWORD")
        return response.json()["access_token"]

    def _call_with_token(self, call: Callable[[DagRunApi], T]) -> T:
        from airflow_client.client import ApiClient, Configuration, DagRunApi

        if self._token is None:
            self._token = self._fresh_token()
        with ApiClient(Configuration(host=self.url, access_token=self._token)) as client:
            return call(DagRunApi(client))

    def _call_once(self, call: Callable[[DagRunApi], T]) -> T:
        from airflow_client.client.exceptions import ApiException

        try:
            try:
                return self._call_with_token(call)
            except ApiException as exc:
                if exc.status != 401:
                    raise
                self._token = None  # expired: renew once
                return self._call_with_token(call)
        except ApiException as exc:
            if exc.status is not None and exc.status < 500:
                raise Refused(exc.status, exc.reason or "") from None
            raise Unreachable(f"HTTP {exc.status} {exc.reason}") from None

    async def call(self, call: Callable[[DagRunApi], T]) -> T:
        delay, attempt = self._first_delay_s, 1
        while True:
            try:
                return await asyncio.to_thread(self._call_once, call)
            except (Unreachable, urllib3.exceptions.HTTPError) as exc:
                if attempt >= self._attempts:
                    raise Unreachable(f"Airflow unreachable at {self.url} after {attempt} tries: {exc}") from None
                log.warning(
                    "Airflow call failed (try %d of %d), again in %.0fs: %s", attempt, self._attempts, delay, exc
                )
                await asyncio.sleep(delay)
                delay, attempt = delay * 2, attempt + 1


class TriggerDagRunner:
    """``allow``: the DAG ids, or shell-style patterns of them, that commands may trigger. None
    by default: a command that can start any DAG is a way into every DAG of the deployment."""

    def __init__(self, api: AirflowApi, poll_s: float, allow: Iterable[str] = ()) -> None:
        self.api = api
        self.poll_s = poll_s
        self.allow = tuple(allow)

    @property
    def disabled(self) -> str | None:
        # The API's address has a default; a wrong one fails each trigger, with the reason.
        return None if self.allow else "AIRKAFKA_TRIGGER_DAG_ALLOW is empty"

    def check(self, command: Command) -> None:
        args = command.args
        unknown = sorted(set(args) - ARG_FIELDS)
        if unknown:
            raise InvalidCommand(f"unknown trigger_dag arg(s): {', '.join(unknown)}")
        if not isinstance(args.get("dag_id"), str) or not args["dag_id"]:
            raise InvalidCommand("trigger_dag 'args.dag_id' must be a non-empty string")
        if self.allow and not any(fnmatchcase(args["dag_id"], pattern) for pattern in self.allow):
            raise InvalidCommand(f"DAG {shown(args['dag_id'])} is not on AIRKAFKA_TRIGGER_DAG_ALLOW")
        if not isinstance(args.get("conf", {}), dict):
            raise InvalidCommand("trigger_dag 'args.conf' must be a JSON object")
        if not isinstance(args.get("wait", False), bool):
            raise InvalidCommand("trigger_dag 'args.wait' must be true or false")

    async def run(self, command: Command, output: Output | None = None) -> Outcome:  # it has no output
        try:
            return await asyncio.wait_for(self._trigger(command), command.timeout_s)
        except TimeoutError:
            return Outcome(State.FAILED, None, f"timeout after {command.timeout_s:g}s")
        except Unreachable as exc:
            return Outcome(State.FAILED, None, str(exc))
        except Refused as exc:
            return Outcome(State.FAILED, None, f"Airflow refused: {exc}")

    async def _trigger(self, command: Command) -> Outcome:
        from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody

        dag_id, run_id = command.args["dag_id"], dag_run_id(command.id)
        body = TriggerDAGRunPostBody(dag_run_id=run_id, logical_date=None, conf=command.args.get("conf") or {})
        try:
            await self.api.call(lambda api: api.trigger_dag_run(dag_id, body))
            started = f"triggered dag run {run_id} of {dag_id}"
        except Refused as exc:
            if exc.status == 404:
                return Outcome(State.FAILED, None, f"DAG {dag_id!r} not found")
            if exc.status != 409:
                raise
            started = f"dag run {run_id} of {dag_id} was already triggered"
        # A serial key orders DAG runs, so its task lasts as long as its run.
        if not command.args.get("wait", False) and command.serial_key is None:
            return Outcome(State.SUCCESS, None, started)
        while (state := await self._run_state(dag_id, run_id)) not in ENDED:
            await asyncio.sleep(self.poll_s)
        return Outcome(State.SUCCESS if state == "success" else State.FAILED, None, f"{started}; it ended {state}")

    async def _run_state(self, dag_id: str, run_id: str) -> str:
        run = await self.api.call(lambda api: api.get_dag_run(dag_id, run_id))
        return str(run.state.value if hasattr(run.state, "value") else run.state)

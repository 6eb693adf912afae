"""A local AirKafka deployment for tests, the demo and the bench: worker processes and plain Kafka clients."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from airkafka_app.contract import signing
from airkafka_app.contract.commands import decode_command
from scripts.local_kafka import free_port

FAUST = Path(sys.executable).parent / "faust"
DAY_S = 24 * 3600
SHELL_ALLOW = "true,sh,sleep,touch"
# The workers of a test deployment sign what they send each other, as in production.
CLUSTER_KEY = "local-cluster-key"
# Messages sent before their deliveries are checked: a million at once would hold a million futures.
CHECK_DELIVERY_EVERY = 10_000


@dataclass
class Deployment:
    """One isolated AirKafka deployment: its own app id and topics on the shared broker."""

    bootstrap: str
    root: Path
    partitions: int = 4
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")

    @property
    def commands(self) -> str:
        return f"{self.name}.commands"

    def commands_of(self, queue: str) -> str:
        return self.commands if queue == "default" else f"{self.commands}.{queue}"

    @property
    def state_changes(self) -> str:
        return f"{self.name}.state-changes"

    @property
    def dead_letters(self) -> str:
        return f"{self.name}.dead-letters"

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "AIRKAFKA_BROKER": f"kafka://{self.bootstrap}",
            "AIRKAFKA_APP_ID": self.name,
            "AIRKAFKA_PARTITIONS": str(self.partitions),
            "AIRKAFKA_COMMANDS_TOPIC": self.commands,
            "AIRKAFKA_STATE_CHANGES_TOPIC": self.state_changes,
            "AIRKAFKA_DEAD_LETTERS_TOPIC": self.dead_letters,
            "AIRKAFKA_SHELL_ALLOW": SHELL_ALLOW,
            "AIRKAFKA_CLUSTER_KEY": CLUSTER_KEY,
            **overrides,
        }

    def worker(self, label: str, **env: str) -> WorkerProcess:
        return WorkerProcess(self, label, env)

    @property
    def internal(self) -> str:
        return f"{self.name}-internal"

    @property
    def heartbeats(self) -> str:
        """The default's name: the workers' topics share the ``<app id>-`` prefix."""
        return f"{self.name}-heartbeats"

    def send(self, messages: Iterable[tuple[bytes | None, bytes | None]], queue: str = "default") -> None:
        self.send_to(self.commands_of(queue), messages)

    def send_to(self, topic: str, messages: Iterable[tuple], max_request_size: int = 1 << 20) -> None:
        """Each message as (key, value) or (key, value, headers)."""
        asyncio.run(_send(self.bootstrap, topic, messages, max_request_size))

    def send_signed(self, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
        """As a worker sends another one a message: signed with the cluster key."""
        self.send_to(topic, [(key, value, signing.headers(CLUSTER_KEY, topic, key, value)) for key, value in messages])

    def write_history(self, count: int, *, airflow_sized: bool = False, span_s: float = 10 * DAY_S) -> None:
        """Write ``count`` ended tasks straight to the default queue's tasks changelog, as months of
        use leave it; a worker recovers them into its table."""
        self.send_to(f"{self.name}-tasks-changelog", ended_records(count, airflow_sized, span_s))

    def send_commands(self, *commands: dict, queue: str = "default") -> None:
        """Each keyed by its routing key, as the contract asks."""
        encoded = [json.dumps(c).encode() for c in commands]
        self.send(((decode_command(None, value).routing_key.encode(), value) for value in encoded), queue)

    def rewind_commands(self) -> None:
        """Commit offset 0 on every partition of the commands topic for the workers' group, as a
        reset or a lost commit would: they then receive every command again."""
        asyncio.run(_rewind(self.bootstrap, self.name, self.commands, self.partitions))

    def delete_topic(self, topic: str) -> None:
        asyncio.run(_delete_topic(self.bootstrap, topic))

    def read(self, topic: str, until: Callable[[list[dict]], bool], timeout: float = 60.0) -> list[dict]:
        """The records of ``topic`` once ``until`` holds for them. On the state-changes topic, only
        state changes: poison written there by tests of the executor is skipped, as the executor does."""
        keep = _is_state_change if topic == self.state_changes else (lambda value: True)
        return asyncio.run(_read(self.bootstrap, topic, until, timeout, keep))

    def state_changes_until_terminal(self, ids: Iterable[str], timeout: float = 60.0) -> dict[str, list[dict]]:
        """Every state change of ``ids``, by id, once each has reached a terminal state."""
        wanted = set(ids)

        def done(records: list[dict]) -> bool:
            ended = {r["value"]["id"] for r in records if r["value"]["state"] in TERMINAL}
            return wanted <= ended

        by_id: dict[str, list[dict]] = {i: [] for i in wanted}
        for record in self.read(self.state_changes, done, timeout):
            if record["value"]["id"] in wanted:
                by_id[record["value"]["id"]].append(record["value"])
        return by_id


TERMINAL = {"success", "failed", "cancelled"}
ENDED_STATES = ["success"] * 90 + ["failed"] * 8 + ["cancelled"] * 2


def ended_records(count: int, airflow_sized: bool, span_s: float) -> Iterator[tuple[bytes, bytes]]:
    """Changelog records (key, value) of ``count`` ended tasks, their times spread over the last
    ``span_s``; the same ones on every call."""
    rng = random.Random(1)
    now = time.time()
    workload = json.dumps({"token": "x" * 400, "ti": {"dag_id": "d", "task_id": "t" * 40}, "pad": "p" * 2500})
    for n in range(count):
        at = now - rng.uniform(0, span_s)
        task_id = f"old-{n:08d}"
        args = {"workload": workload, "external_executor_id": None} if airflow_sized else {"argv": ["true"]}
        record = {
            "id": task_id,
            "state": rng.choice(ENDED_STATES),
            "attempt": 1,
            "command": {"id": task_id, "kind": "airflow" if airflow_sized else "shell", "args": args, "retries": 0},
            "worker": "earlier",
            "exit_code": 0,
            "detail": "exit code 0",
            "queued_at": at - 1,
            "started_at": at - 0.5,
            "ended_at": at,
            "updated_at": at,
            "first_attempt": 1,
            "source": "0:0",
            "cancel_requested_by": None,
        }
        yield task_id.encode(), json.dumps(record).encode()


def report(command: dict, state: str, worker: str, **fields) -> tuple[bytes, bytes]:
    """A report of ``command``'s task on the internal topic, as a worker sends one: (key, value)."""
    now = time.time()
    ended = now if state in TERMINAL else None
    record = {
        "id": command["id"],
        "state": state,
        "attempt": 1,
        "worker": worker,
        "exit_code": 0 if state == "success" else None,
        "detail": "",
        "queued_at": now,
        "started_at": now,
        "ended_at": ended,
        "updated_at": now,
        "first_attempt": 1,
        "source": "0:0",
        "command": command,
        **fields,
    }
    return command["id"].encode(), json.dumps({"report": record}).encode()


def shell(task_id: str, *argv: str, **fields) -> dict:
    return {"id": task_id, "kind": "shell", "args": {"argv": list(argv)}, **fields}


def wait_for_split(*workers: WorkerProcess, queue: str = "default", timeout: float = 60.0) -> None:
    """Wait until each worker owns some of the queue's partitions, and together all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = [worker.get("/health/")[1].get("partitions", {}).get(queue) for worker in workers]
        if all(owned) and sorted(sum(owned, [])) == list(range(workers[0].deployment.partitions)):
            return
        time.sleep(0.5)
    raise TimeoutError(f"partitions of {queue} not split: {owned}")


class WorkerProcess:
    def __init__(self, deployment: Deployment, label: str, env: dict[str, str]) -> None:
        self.label = label
        self.deployment = deployment
        self.workdir = deployment.root / label
        self.data_dir = self.workdir / "data"
        self.port = free_port()
        self.env = deployment.env(
            AIRKAFKA_DATA_DIR=str(self.data_dir),
            AIRKAFKA_WEB_PORT=str(self.port),
            AIRKAFKA_WORKER_NAME=label,
            **env,
        )
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "worker.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(FAUST), "-A", "airkafka_app", "worker", "-l", "info"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.label} exited {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                status, body = self.get("/health/")
                if status == 200 and any(body["partitions"].values()):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"worker {self.label} not ready:\n{self.log()[-3000:]}")

    def get(self, path: str, token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.get(self.url + path, headers=headers, timeout=10)
        return response.status_code, response.json()

    def log(self) -> str:
        return (self.workdir / "worker.log").read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


async def _send(bootstrap: str, topic: str, messages: Iterable[tuple], max_request_size: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=max_request_size)
    await producer.start()
    try:
        # A message the broker refused is the caller's error, not a task that never ran.
        delivering = []
        for key, value, *headers in messages:
            delivering.append(await producer.send(topic, value, key=key, headers=headers[0] if headers else None))
            if len(delivering) == CHECK_DELIVERY_EVERY:
                await asyncio.gather(*delivering)
                delivering.clear()
        await asyncio.gather(*delivering)
    finally:
        await producer.stop()


async def _delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def _rewind(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


def _is_state_change(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("id"), str) and isinstance(value.get("state"), str)


async def _read(
    bootstrap: str, topic: str, until: Callable[[list[dict]], bool], timeout: float, keep: Callable[[object], bool]
) -> list[dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: condition not met after {timeout}s; read {len(records)} records")
            for tp, messages in (await consumer.getmany(timeout_ms=300)).items():
                for m in messages:
                    try:
                        value = json.loads(m.value) if m.value is not None else None  # None: a tombstone
                    except ValueError:
                        value = m.value
                    if keep(value):
                        records.append({"partition": tp.partition, "offset": m.offset, "key": m.key, "value": value})
    finally:
        await consumer.stop()
    return records

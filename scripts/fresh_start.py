"""One fresh start: a new broker, a worker that creates its topics, and a burst of commands at once.

The soak (``bench/startup_soak.py``) repeats it; the suite runs it twice. A run passes when
every valid command's terminal state change reaches a plain consumer within the bound.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests
from aiokafka.admin import AIOKafkaAdminClient

from scripts.local_deployment import TERMINAL, Deployment, shell
from scripts.local_kafka import start_broker

MALFORMED = [
    b"",
    b"{",
    b"[1]",
    b'{"id": "x"}',
    b'{"id": "m", "kind": "shell", "args": {"argv": "true"}}',
    b"\xff\xfe",
    b'{"id": "r", "kind": "shell", "args": {"argv": ["rm"]}}',
    b"null",
    b"42",
    b'{"kind": "shell"}',
]


NOTABLE = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|Traceback|rebalanc|stall", re.IGNORECASE)
MAX_NOTABLE_LINES = 40


@dataclass
class FreshStartRun:
    valid: int
    ended: int
    seconds: float
    stopped_on_sigterm: bool
    log: Path
    # Of a stalled run: what the worker and the state changes showed, for a failure message.
    evidence: str = ""

    @property
    def stalled(self) -> bool:
        return self.ended < self.valid


async def _wait_for_topic(bootstrap: str, topic: str, timeout: float) -> None:
    """Until the worker has created ``topic``: a producer sending first would have the broker
    auto-create it with its default partition count, and the worker would refuse it. Listed, not
    described: a metadata request naming a missing topic auto-creates it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout
    try:
        while topic not in await admin.list_topics():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not created after {timeout}s")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def _partition_counts(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(await admin.list_topics())}
    finally:
        await admin.close()


def _evidence(worker, bootstrap: str, last_states: Counter[str]) -> str:
    """Of a stalled worker: the topics' partition counts and its stacks, kept beside its log, and
    a summary for the failure message, which is all a CI run keeps."""
    counts = asyncio.run(_partition_counts(bootstrap))
    (worker.workdir / "topics.json").write_text(json.dumps(counts, indent=1))
    py_spy = Path(sys.executable).parent / "py-spy"
    if py_spy.exists():
        with open(worker.workdir / "stacks.txt", "wb") as out:
            subprocess.run([str(py_spy), "dump", "--pid", str(worker.process.pid)], stdout=out, stderr=out)
    try:
        stats = json.dumps({key: worker.get("/stats/")[1].get(key) for key in ("tasks", "running", "partitions")})
    except (requests.RequestException, ValueError) as exc:
        stats = repr(exc)
    notable = [line for line in worker.log().splitlines() if NOTABLE.search(line) and "NotLeader" not in line]
    return "\n".join(
        [
            f"last state change of each unfinished task: {dict(last_states)}",
            f"worker /stats/: {stats}",
            f"partition counts: {counts}",
            *notable[-MAX_NOTABLE_LINES:],
        ]
    )


def fresh_start_run(
    root: Path, *, commands: int = 440, malformed: int = 10, timeout: float = 90.0, seed: int = 0
) -> FreshStartRun:
    broker = start_broker(root / "kafka")
    try:
        deployment = Deployment(broker.bootstrap, root, partitions=8)
        worker = deployment.worker("fresh", AIRKAFKA_HEARTBEAT_S="1").start()
        try:
            asyncio.run(_wait_for_topic(broker.bootstrap, deployment.commands, 60))
            ids = [f"c{n}" for n in range(commands)]
            valid = [
                (i.encode(), json.dumps(shell(i, "true") if n % 2 else shell(i, "sh", "-c", "exit 3")).encode())
                for n, i in enumerate(ids)
            ]
            bad = [(f"bad{n}".encode(), MALFORMED[n % len(MALFORMED)] or b" ") for n in range(malformed)]
            burst = valid + bad
            random.Random(seed).shuffle(burst)
            started = time.monotonic()
            deployment.send(burst)
            ended: set[str] = set()
            last: dict[str, str] = {}
            evidence = ""

            def all_ended(records: list[dict]) -> bool:
                for record in records:
                    last[record["value"]["id"]] = record["value"]["state"]
                ended.update(r["value"]["id"] for r in records if r["value"]["state"] in TERMINAL)
                return len(ended) >= commands

            try:
                deployment.read(deployment.state_changes, all_ended, timeout)
            except TimeoutError:
                unfinished = Counter(last.get(i, "none seen") for i in ids if i not in ended)
                evidence = _evidence(worker, broker.bootstrap, unfinished)
            seconds = time.monotonic() - started
        finally:
            worker.stop(timeout=30)
        stopped = worker.process.returncode is not None and worker.process.returncode != -9
        return FreshStartRun(commands, len(ended & set(ids)), seconds, stopped, worker.workdir / "worker.log", evidence)
    finally:
        broker.stop()

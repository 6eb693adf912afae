"""Task logs on Kafka (Faust-free: Airflow's api-server and the CLI read them).

While a task runs, its worker publishes its output to ``<app id>-logs``, in chunks: an Airflow
task's log lines as its supervisor writes them, a shell task's output. So a log outlives the
worker's host. Each record is keyed by the log's name (an Airflow try's relative log path, as
Airflow's UI asks for it, or a shell task's id), and sits on the partition its name picks here,
so that a reader reads one partition, from the time the task started:

- ``{"run": "<task id>:<attempt>", "seq": n, "lines": [...]}``, a chunk;
- ``{"run": ..., "end": true}``, after the run's last chunk (only when it had output).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from typing import Any

from airkafka_app.contract.commands import Command

# A chunk holds at most this much text, well under a record's 1 MB.
CHUNK_BYTES = 256 * 1024
AIRFLOW_KIND = "airflow"


def log_name(command: Command) -> str:
    """The name a task's log goes by: an Airflow workload's ``log_path``, else the task id."""
    if command.kind == AIRFLOW_KIND:
        try:
            path = json.loads(command.args["workload"]).get("log_path")
        except (KeyError, TypeError, ValueError, AttributeError):
            path = None
        if isinstance(path, str) and path:
            return path
    return command.id


def partition_of(name: str, partitions: int) -> int:
    return zlib.crc32(name.encode()) % partitions


def encode_chunk(run: str, seq: int, lines: list[str]) -> bytes:
    return json.dumps({"run": run, "seq": seq, "lines": lines}, separators=(",", ":")).encode()


def encode_end(run: str) -> bytes:
    return json.dumps({"run": run, "end": True}, separators=(",", ":")).encode()


class LogAssembly:
    """A log put back together from the records of its partition, in order: what was read of
    each run, runs in the order they began. Records of other logs, or broken ones, are skipped."""

    def __init__(self, name: str) -> None:
        self.key = name.encode()
        self.runs: dict[str, list[str]] = {}
        self.ended: set[str] = set()

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key != self.key or not value:
            return
        try:
            record: Any = json.loads(value)
            run = record["run"]
        except (ValueError, TypeError, KeyError):
            return
        if not isinstance(run, str):
            return
        if record.get("end") is True:
            self.ended.add(run)
        elif isinstance(lines := record.get("lines"), list):
            self.runs.setdefault(run, []).extend(line for line in lines if isinstance(line, str))

    def add_all(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            self.add(key, value)

    @property
    def complete(self) -> bool:
        """Every run read so far has ended."""
        return bool(self.runs) and set(self.runs) <= self.ended

    def lines(self) -> list[str]:
        return [line for lines in self.runs.values() for line in lines]

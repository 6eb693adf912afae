#!/usr/bin/env python3
"""The AirKafka demo: a local broker and one worker, five commands, and the resulting table.

Run it with ``make demo``. It starts everything it needs and stops it again; on a terminal, it
keeps the worker up, with its dashboard, until Enter or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.local_deployment import Deployment, shell  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

DEMO = [
    ("a success", shell("demo-success", "sh", "-c", "echo hello from AirKafka")),
    ("a failure, exit 127", shell("demo-exit127", "sh", "-c", "echo no such thing >&2; exit 127")),
    ("a timeout", shell("demo-timeout", "sleep", "30", timeout_s=1)),
    (
        "a retry",
        shell("demo-retry", "sh", "-c", "test -f retried || { touch retried; exit 1; }", retries=1, retry_delay_s=0.5),
    ),
    ("a refused program", {"id": "demo-refused", "kind": "shell", "args": {"argv": ["rm", "-rf", "/"]}}),
]
BAD_INPUT = (b"demo-bad-json", b'{"id": "demo-bad-json", "kind": ')


def main() -> None:
    console = Console()
    workdir = ROOT / ".cache" / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    console.print("[bold]Starting a local Kafka broker (KRaft)...")
    broker = start_broker(workdir / "kafka")
    deployment = Deployment(broker.bootstrap, workdir, name="demo")
    worker = deployment.worker("worker-1")
    try:
        console.print(f"[bold]Starting a worker:[/] faust -A airkafka_app worker  (web views on {worker.url})")
        worker.start().wait_ready()
        for label, command in DEMO:
            console.print(f"  sending {label}: {json.dumps(command)}")
        deployment.send_commands(*(command for _, command in DEMO))
        console.print(f"  sending bad input: {BAD_INPUT[1].decode()}")
        deployment.send([BAD_INPUT])
        deployment.state_changes_until_terminal([c["id"] for _, c in DEMO if c["id"] != "demo-refused"])
        letters = deployment.read(deployment.dead_letters, lambda r: len(r) >= 2)
        show(console, worker, letters)
        if sys.stdin.isatty():
            console.print(
                f"\n[bold]The dashboard:[/] {worker.url}/  (the workers, the tasks with their states and "
                "attempts, the failed ones with their reasons, and the dead letters)\n"
                f"Or the command line: .venv/bin/airkafka tasks --worker-url {worker.url}\n"
                "Press Enter or Ctrl-C to stop the worker and the broker."
            )
            with contextlib.suppress(KeyboardInterrupt, EOFError):
                input()
    finally:
        worker.stop()
        broker.stop()


def show(console: Console, worker, letters: list[dict]) -> None:
    table = Table(title=f"Task table ({worker.url}/tasks/)")
    for column in ("id", "state", "attempt", "exit_code", "detail"):
        table.add_column(column)
    for task in sorted(worker.get("/tasks/")[1]["tasks"], key=lambda t: t["id"]):
        table.add_row(task["id"], task["state"], str(task["attempt"]), str(task["exit_code"]), task["detail"].strip())
    console.print(table)
    dead = Table(title="Dead letters")
    dead.add_column("key")
    dead.add_column("error")
    for letter in letters:
        dead.add_row(str(letter["value"].get("key")), letter["value"]["error"])
    console.print(dead)
    console.print(f"stats: {json.dumps(worker.get('/stats/')[1])}")


if __name__ == "__main__":
    main()

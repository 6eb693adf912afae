#!/usr/bin/env python3
"""The peer: Celery with Redis as broker and result backend, two prefork workers, the same `true` task.

Runs in its own venv (Celery's dependencies are not the worker's); `bench/compare.py` starts it
and reads the one JSON line it prints. Figures are measured as AirKafka's are: throughput from
the first send to the last result read back, and sequential latency of send -> result.

    .venv-celery/bin/python bench/celery_peer.py --tasks 5000 --sequential 500 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from celery import Celery

app = Celery("celery_peer")


@app.task
def run_true() -> int:
    return subprocess.run(["true"]).returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configure(url: str) -> None:
    app.conf.update(
        broker_url=url,
        result_backend=url,
        task_ignore_result=False,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
    )


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def throughput(count: int) -> float:
    started = time.perf_counter()
    results = [run_true.delay() for _ in range(count)]
    for result in results:
        result.get(timeout=300)
    return count / (time.perf_counter() - started)


def latencies(count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        run_true.delay().get(timeout=60)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()

    redis_server = shutil.which("redis-server")
    if redis_server is None:
        sys.exit("redis-server not found: apt-get install redis-server")
    args.workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(
        [
            redis_server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(args.workdir),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    configure(url)
    worker = None
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 30, "redis-server did not start")
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_peer",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--loglevel",
                "WARNING",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=Path(__file__).parent,
            env={**os.environ, "CELERY_PEER_URL": url},
            stdout=open(args.workdir / "celery-worker.log", "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: bool(app.control.ping(timeout=0.5)), 60, "celery worker did not answer")
        throughput(min(args.tasks, 1000))  # warm-up, as for AirKafka
        latencies(20)
        runs = []
        for _ in range(args.repeat):
            runs.append({"throughput": throughput(args.tasks), "latencies": latencies(args.sequential)})
        rss = peak_rss_mb(worker.pid)
    finally:
        for process in (worker, redis):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
    print(json.dumps({"celery": __import__("celery").__version__, "runs": runs, "rss_mb": rss}))


def peak_rss_mb(pid: int) -> float:
    """The worker's processes together: the main process and its prefork children."""
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0.0
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


if "CELERY_PEER_URL" in os.environ:  # imported by the worker process
    configure(os.environ["CELERY_PEER_URL"])

if __name__ == "__main__":
    main()

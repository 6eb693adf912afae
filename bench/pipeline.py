#!/usr/bin/env python3
"""End-to-end figures of the pipeline on a real local broker, with `true` shell tasks.

    make bench            # or: .venv/bin/python bench/pipeline.py --tasks 5000 --sequential 500

Throughput: commands/s from the first produce to the last terminal state change read
by a plain consumer. Latency: one task at a time, submit -> its terminal state change.
The client is confluent-kafka with the executor's options, so that the bench's own Kafka work takes
little of the two cores it shares with the broker and the worker. Each figure is the median
of --repeat runs, after a warm-up long enough for the broker's JIT to settle. Where the CPU
goes is printed too, in ms per task. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airkafka_app.contract.kafka_connection import confluent_options, confluent_producer_options  # noqa: E402
from airkafka_app.contract.settings import Settings  # noqa: E402
from scripts.local_deployment import Deployment, WorkerProcess, shell, wait_for_split  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

TERMINAL = {"success", "failed", "cancelled"}
CPU_PARTS = ("worker", "its tasks", "broker", "bench client")


class Bench:
    """A producer of commands and a reader of state changes that notes when each task ended."""

    def __init__(self, deployment: Deployment, *workers: WorkerProcess | BareLoop) -> None:
        self.deployment = deployment
        self.workers = workers
        self.ended: dict[str, float] = {}
        # Of the tasks sent one at a time: when each was sent, and each of its state changes as
        # (state, its "at", the record's Kafka timestamp, when it was read), all wall-clock seconds.
        self.sent_at: dict[str, float] = {}
        self.changes: dict[str, list[tuple[str, float, float, float]]] = {}
        self._pending: set[str] = set()
        self._all_ended = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The executor's client options, as users get them (Nagle off among them).
        broker = {"bootstrap.servers": deployment.bootstrap}
        settings = Settings()
        self.producer = Producer({**confluent_producer_options(settings), **broker, "linger.ms": 0})
        self.consumer = Consumer(
            {
                **confluent_options(settings),
                **broker,
                "group.id": f"bench-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        # Explicit end offsets: OFFSET_END would be resolved only when the fetcher starts, after
        # the first commands may have ended, and their records would be skipped.
        ends = [
            TopicPartition(
                deployment.state_changes,
                p,
                self.consumer.get_watermark_offsets(TopicPartition(deployment.state_changes, p))[1],
            )
            for p in range(deployment.partitions)
        ]
        self.consumer.assign(ends)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        self._reader.join()
        self.consumer.close()
        self.producer.flush(10)

    def _read(self) -> None:
        while not self._stop.is_set():
            # poll returns at the first record; consume waits for its count or its timeout.
            first = self.consumer.poll(0.1)
            if first is None:
                continue
            for message in [first, *self.consumer.consume(num_messages=1000, timeout=0)]:
                if message.error():
                    continue
                change = json.loads(message.value())
                if change["id"] in self.sent_at:
                    stamp = message.timestamp()[1] / 1000
                    self.changes.setdefault(change["id"], []).append(
                        (change["state"], change.get("at") or 0.0, stamp, time.time())
                    )
                if change["state"] in TERMINAL:
                    self._ended(change["id"], time.perf_counter())

    def _ended(self, task_id: str, at: float) -> None:
        with self._lock:
            if task_id in self._pending:
                self.ended[task_id] = at
                self._pending.discard(task_id)
                if not self._pending:
                    self._all_ended.set()

    def run(self, ids: list[str], timeout: float = 300.0) -> float:
        """Send ``ids`` at once and wait until each has ended; returns the start time."""
        with self._lock:
            self._pending.update(ids)
            self._all_ended.clear()
        started = time.perf_counter()
        for task_id in ids:
            value = json.dumps(shell(task_id, "true")).encode()
            while True:
                try:
                    self.producer.produce(self.deployment.commands, value, key=task_id.encode())
                    break
                except BufferError:
                    self.producer.poll(0.01)
        self.producer.poll(0)
        deadline = time.monotonic() + timeout
        while not self._all_ended.wait(1.0):
            if any(w.process.poll() is not None for w in self.workers) or time.monotonic() > deadline:
                logs = "\n".join(w.log()[-3000:] for w in self.workers)
                raise RuntimeError(f"{len(self._pending)} tasks did not end; worker logs:\n{logs}")
        return started

    def throughput(self, count: int) -> float:
        ids = [f"tp-{uuid.uuid4().hex}" for _ in range(count)]
        started = self.run(ids)
        return count / (max(self.ended[i] for i in ids) - started)

    def latencies(self, count: int) -> list[float]:
        results = []
        for _ in range(count):
            task_id = f"lat-{uuid.uuid4().hex}"
            self.sent_at[task_id] = time.time()
            started = self.run([task_id])
            results.append(self.ended[task_id] - started)
        return results


TIMELINE = (
    "send to queued",
    "queued to running",
    "running to its end",
    "its end to its record's Kafka timestamp",
    "that to the reader",
)


def timeline(bench: Bench) -> dict[str, list[float]]:
    """Where each task sent alone spent its time, in ms per segment of TIMELINE, from the records'
    own times: the worker's for the states, the producer's for the Kafka timestamp, the bench's
    for the send and the read (one machine, one clock). A task sent alone is published as its
    end alone (its passing states are left out, docs/contract.md), so its ``queued`` and
    ``running`` times come from its record, read from the first worker's ``/tasks/{id}/``."""
    segments: dict[str, list[float]] = {name: [] for name in TIMELINE}
    url = getattr(bench.workers[0], "url", None) if bench.workers else None
    for task_id, sent in bench.sent_at.items():
        end = next(
            ((when, stamp, read) for state, when, stamp, read in bench.changes.get(task_id, []) if state in TERMINAL),
            None,
        )
        if end is None or url is None:
            continue
        try:
            with urllib.request.urlopen(f"{url}/tasks/{task_id}/", timeout=5) as response:
                record = json.load(response)
        except (OSError, ValueError):
            continue
        points = [sent, record.get("queued_at"), record.get("started_at"), *end]
        if None in points:
            continue
        for name, begin, until in zip(TIMELINE, points, points[1:], strict=False):
            segments[name].append(1000 * (until - begin))
    return segments


def timeline_lines(segments: dict[str, list[float]]) -> list[str]:
    if not all(len(values) > 1 for values in segments.values()):
        return []
    return ["a task sent alone, ms (p50, p90):"] + [
        f"  {name:42} {percentile(values, 50):6.2f} {percentile(values, 90):6.2f}" for name, values in segments.items()
    ]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int, children: bool = False) -> float:
    """User and system time of a process, or of its reaped children, from /proc."""
    fields = _stat(pid)
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def cpu_now(worker_pids: list[int], broker_pid: int) -> tuple[float, ...]:
    """CPU seconds so far of the workers with their spawn servers, of the tasks they reaped, of the
    broker, and of this process."""
    own = os.times()
    # The tasks are reaped; what lives is a spawn server.
    worker = [pid for worker_pid in worker_pids for pid in (worker_pid, *_children_of(worker_pid))]
    return (
        sum(_cpu_seconds(pid) for pid in worker),
        sum(_cpu_seconds(pid, children=True) for pid in worker),
        _cpu_seconds(broker_pid),
        own.user + own.system,
    )


def measure(bench: Bench, broker_pid: int, args: argparse.Namespace) -> dict:
    """Throughputs, p50s and p99s (ms) and CPU ms per task by part, one entry per repetition."""
    # Warm-up: connections, metadata, and the broker's JIT, which compiles for tens of seconds
    # under load and meanwhile costs more CPU per task than the worker does.
    for _ in range(args.warmup):
        bench.throughput(args.tasks)
    bench.latencies(20)
    figures: dict[str, list] = {"throughputs": [], "p50s": [], "p99s": [], "cpu_ms": []}
    pids = [worker.process.pid for worker in bench.workers]
    profiler = _profile(pids[0], args.profile) if args.profile else None
    for _ in range(args.repeat):
        before = cpu_now(pids, broker_pid)
        figures["throughputs"].append(bench.throughput(args.tasks))
        after = cpu_now(pids, broker_pid)
        figures["cpu_ms"].append([1000 * (b - a) / args.tasks for a, b in zip(before, after, strict=True)])
        lat = bench.latencies(args.sequential)
        figures["p50s"].append(percentile(lat, 50) * 1000)
        figures["p99s"].append(percentile(lat, 99) * 1000)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
    return figures


def _profile(pid: int, output: Path) -> subprocess.Popen:
    """py-spy on the worker, counting only samples that hold the GIL: time the worker spends
    waiting, for a child to exec or for the network, is not its CPU."""
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--gil",
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw" if output.suffix == ".txt" else "speedscope",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class BareLoop:
    """``bench/bare_loop.py`` as a process, in place of a worker; or another script of its
    arguments, such as ``bench/faust_floor.py``."""

    def __init__(self, deployment: Deployment, concurrency: int, script: str = "bare_loop.py", *extra: str) -> None:
        self.deployment = deployment
        self.concurrency = concurrency
        self.script, self.extra = script, list(extra)
        self.logfile = deployment.root / f"{Path(script).stem}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> BareLoop:
        self.deployment.root.mkdir(parents=True, exist_ok=True)
        d = self.deployment
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / self.script), d.bootstrap, d.commands, d.state_changes]
            + [str(d.partitions), str(self.concurrency), *self.extra],
            stdout=subprocess.PIPE,
            stderr=open(self.logfile, "wb"),  # noqa: SIM115 - the child holds it
            cwd=d.root,
        )
        for line in self.process.stdout:
            if line.strip() == b"ready":
                return self
        raise RuntimeError(f"{self.script} did not start:\n{self.log()}")

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def run_pipeline(args: argparse.Namespace, bare: bool = False) -> dict:
    """A fresh broker and ``args.workers`` workers (or the bare loop): the figures of ``measure``,
    medians of the CPU, and peak RSS (MB) of the first worker and of its spawn server."""
    workdir = ROOT / ".cache" / "bench" / uuid.uuid4().hex[:8]
    broker = start_broker(workdir / "kafka")
    deployment = Deployment(broker.bootstrap, workdir, partitions=args.partitions)
    env = {"AIRKAFKA_SHELL_ALLOW": "true", "AIRKAFKA_CONCURRENCY": str(args.concurrency)}
    runners: list[BareLoop | WorkerProcess] = (
        [
            BareLoop(deployment, args.concurrency)
            if not getattr(args, "faust_floor", None)
            else BareLoop(
                deployment, args.concurrency, "faust_floor.py", *(["--table"] if args.faust_floor == "table" else [])
            )
        ]
        if bare
        else [deployment.worker(f"bench{n}", **env) for n in range(args.workers)]
    )
    try:
        for runner in runners:
            runner.start()
        if not bare:
            for runner in runners:
                runner.wait_ready()
            wait_for_split(*runners)
        bench = Bench(deployment, *runners)
        try:
            figures = measure(bench, broker.process.pid, args)
            figures["timeline"] = timeline(bench)
        finally:
            bench.close()
        figures["rss_mb"] = peak_rss_mb(runners[0].process.pid)
        figures["server_rss_mb"] = sum(peak_rss_mb(pid) for pid in _children_of(runners[0].process.pid))
    finally:
        for runner in runners:
            runner.stop()
        broker.stop()
    figures["cpu_ms_median"] = {
        part: statistics.median(run[i] for run in figures["cpu_ms"]) for i, part in enumerate(CPU_PARTS)
    }
    return figures


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="throughput runs before measuring")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="py-spy profile of the worker over the measured runs: speedscope JSON, or "
        "collapsed stacks for a .txt name",
    )
    parser.add_argument("--bare", action="store_true", help="measure bench/bare_loop.py instead of a worker")
    parser.add_argument("--workers", type=int, default=1, help="AirKafka workers, sharing the partitions")
    parser.add_argument(
        "--faust-floor",
        choices=("plain", "table"),
        help="measure bench/faust_floor.py instead of a worker: the bare loop's work in a stock Faust app, "
        "with or without a changelog-backed table",
    )
    return parser.parse_args()


def cpu_line(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{part} {ms:.2f}" for part, ms in cpu_ms.items()) + f"; all {sum(cpu_ms.values()):.2f}"


def main() -> None:
    args = arguments(__doc__)
    figures = run_pipeline(args, bare=args.bare or bool(args.faust_floor))
    throughputs, p50s, p99s = figures["throughputs"], figures["p50s"], figures["p99s"]
    print(
        f"{'the bare loop' if args.bare else f'a Faust floor ({args.faust_floor})' if args.faust_floor else 'AirKafka'} pipeline, `true` shell tasks, "
        f"{1 if args.bare or args.faust_floor else args.workers} worker(s), concurrency {args.concurrency} each, {args.partitions} partitions"
    )
    print(
        f"  throughput  {statistics.median(throughputs):8.0f} tasks/s   ({args.tasks} sent at once; runs: "
        f"{', '.join(f'{t:.0f}' for t in throughputs)})"
    )
    print(
        f"  latency p50 {statistics.median(p50s):8.1f} ms        ({args.sequential} sequential; runs: "
        f"{', '.join(f'{p:.1f}' for p in p50s)})"
    )
    print(f"  latency p99 {statistics.median(p99s):8.1f} ms        (runs: {', '.join(f'{p:.1f}' for p in p99s)})")
    print(f"  CPU ms per task: {cpu_line(figures['cpu_ms_median'])}")
    print(f"  worker peak RSS {figures['rss_mb']:.0f} MB, its spawn server's {figures['server_rss_mb']:.0f} MB")
    for line in timeline_lines(figures["timeline"]):
        print(f"  {line}")


if __name__ == "__main__":
    main()

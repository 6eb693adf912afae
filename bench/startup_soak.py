#!/usr/bin/env python3
"""Fresh starts, again and again: does every result flow on a cluster the worker has just created?

    .venv/bin/python bench/startup_soak.py [--runs 20] [--commands 440] [--malformed 10]

Each run starts a new broker and a worker on it, sends a burst of commands (half `true`, half
failing, and some malformed) as soon as the worker has created its commands topic, and waits
for every valid command's terminal state change on a plain consumer. It prints each run, then
how many stalled. A stalled run's worker log is kept. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.fresh_start import fresh_start_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--commands", type=int, default=440)
    parser.add_argument("--malformed", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds for all terminal records")
    args = parser.parse_args()
    workdir = ROOT / ".cache" / "bench" / f"soak-{uuid.uuid4().hex[:8]}"
    stalled = 0
    for n in range(args.runs):
        root = workdir / f"run{n}"
        run = fresh_start_run(root, commands=args.commands, malformed=args.malformed, timeout=args.timeout, seed=n)
        stalled += run.stalled
        print(
            f"run {n + 1}: {run.ended}/{run.valid} terminal in {run.seconds:.1f}s"
            f"{'' if run.stopped_on_sigterm else ', did not stop on SIGTERM'}"
            f"{f', STALLED: log {run.log}\n{run.evidence}' if run.stalled else ''}",
            flush=True,
        )
        if not run.stalled:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{stalled} of {args.runs} runs stalled")


if __name__ == "__main__":
    main()

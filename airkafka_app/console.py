"""The ``airkafka`` console script (worker/cli.py): the operator's commands, which build no worker,
and ``airkafka worker``, which is ``faust -A airkafka_app worker``. Faust-free until it runs, so
that an install without the worker's packages says what is missing."""

from __future__ import annotations


def main() -> None:
    try:
        from airkafka_app.worker.cli import airkafka
    except ImportError as exc:
        raise SystemExit(
            f"airkafka: {exc.name} is missing: this command needs the worker's packages, pip install 'airkafka[worker]'"
        ) from None
    airkafka(prog_name="airkafka")

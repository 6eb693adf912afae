"""The ``airkafka`` console script: Faust's command line for this app, so ``airkafka worker`` is
``faust -A airkafka_app worker``, with replay.py's and cli.py's commands. Faust-free until it
runs, so that an install without the worker's packages says what is missing."""

from __future__ import annotations


def main() -> None:
    try:
        from airkafka_app import app
    except ImportError as exc:
        raise SystemExit(
            f"airkafka: {exc.name} is missing: this command needs the worker's packages, pip install 'airkafka[worker]'"
        ) from None
    app.main()

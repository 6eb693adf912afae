"""What the ``airkafka`` commands share: where their answers go (lines for people, or JSON), the
settings they read when they first need them, and their common options."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import click

from airkafka_app.contract.printable import printable
from airkafka_app.contract.settings import DEFAULT_QUEUE, Settings

# A listing's text: one line per row, each value cut to this many characters.
MAX_CELL = 60


class Terminal:
    """Where a command's answer goes: lines for people, or JSON with ``--json``; and the settings,
    read when a command first needs them, so that ``--help`` reads nothing."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def say(self, text: str, err: bool = False) -> None:
        click.echo(text, err=err)

    def dumps(self, value: Any) -> str:
        return json.dumps(value)

    def listing(self, rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str) -> None:
        """The rows as JSON objects, or one aligned line each, or ``empty`` when there is none."""
        if self.json:
            self.say(json.dumps(list(rows)))
            return
        if not rows:
            self.say(empty)
            return
        cells = [[_cell(row.get(column)) for column in columns] for row in rows]
        widths = [max(len(column), *(len(line[n]) for line in cells)) for n, column in enumerate(columns)]
        for line in [list(columns), *cells]:
            self.say("  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    """A value on one line, its control characters escaped, cut to MAX_CELL."""
    text = printable("" if value is None else str(value).partition("\n")[0])
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def run_async(fun: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """A click command's body, from an ``async def`` taking the Terminal first. Under ``airkafka``
    or under Faust's command line (``faust -A airkafka_app replay``), whose ``--json`` it reads."""

    @functools.wraps(fun)
    @click.pass_context
    def run(ctx: click.Context, **args: Any) -> None:
        terminal = ctx.find_object(Terminal) or Terminal(bool(ctx.find_root().params.get("json")))
        asyncio.run(fun(terminal, **args))

    return run


WORKER_URL = click.option(
    "--worker-url",
    default=None,
    help="Any worker's web views (default: http://AIRKAFKA_WEB_HOST:AIRKAFKA_WEB_PORT).",
)
QUEUE = click.option("--queue", default=DEFAULT_QUEUE, show_default=True, help="The task's queue.")


def url_of(terminal: Terminal, args: dict[str, Any]) -> str:
    """The worker URL a command was given, or the settings' own."""
    return args["worker_url"] or terminal.settings.worker_url

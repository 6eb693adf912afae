"""The worker pool: runs accepted tasks, at most ``concurrency`` at once, and records each transition."""
from __future__ import annotations

import asyncio
import logging

from mode import Service

from airkafka_app.commands import Command
from airkafka_app.runners import Runner
from airkafka_app.settings import settings
from airkafka_app.states import State
from airkafka_app.tables import tasks

log = logging.getLogger(__name__)


class WorkerPool(Service):
    def __init__(self, concurrency: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(concurrency)
        self._runs: set[asyncio.Task] = set()

    async def submit(self, command: Command, runner: Runner, event: object) -> None:
        """Wait for a free slot, then start the run; backpressure for the intake agent.

        The run is created while ``event`` is Faust's current event, and asyncio copies
        that context into it: its table writes go to the command's partition. It holds
        ``event`` because Faust keeps only a weak reference to it.
        """
        await self._slots.acquire()
        run = asyncio.ensure_future(self._run(command, runner, event))
        self._runs.add(run)
        run.add_done_callback(self._finished)

    def _finished(self, run: asyncio.Task) -> None:
        self._runs.discard(run)
        self._slots.release()
        if not run.cancelled() and run.exception() is not None:
            log.error("run crashed", exc_info=run.exception())

    async def _run(self, command: Command, runner: Runner, event: object) -> None:
        for retry in range(command.retries + 1):
            if retry:
                await asyncio.sleep(_backoff(command, retry))
            tasks.transition(command.id, State.RUNNING, worker=settings.worker_name)
            outcome = await runner.run(command)
            retry_left = outcome.state is State.FAILED and retry < command.retries
            final = State.UP_FOR_RETRY if retry_left else outcome.state
            tasks.transition(command.id, final, exit_code=outcome.exit_code, detail=outcome.detail)
            if not retry_left:
                return

    async def on_stop(self) -> None:
        for run in list(self._runs):
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)


def _backoff(command: Command, retry: int) -> float:
    base = command.retry_delay_s if command.retry_delay_s is not None else settings.default_retry_delay_s
    return base * 2 ** (retry - 1)

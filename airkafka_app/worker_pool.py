"""The worker pool: runs accepted tasks, at most ``concurrency`` at once, and records each transition."""
from __future__ import annotations

import asyncio
import logging

from mode import Service

from airkafka_app.commands import Command
from airkafka_app.runners import Runner
from airkafka_app.settings import settings
from airkafka_app.states import State
from airkafka_app.tables.tasks import TaskTable

log = logging.getLogger(__name__)

# Tasks admitted per run slot. Past that, intake waits and the backlog stays in Kafka; below
# it, intake keeps reading, so a cancel is not stuck behind the tasks it should stop.
ADMITTED_PER_SLOT = 4


class WorkerPool(Service):
    def __init__(self, concurrency: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = asyncio.Semaphore(concurrency * ADMITTED_PER_SLOT)
        self._runs: dict[str, asyncio.Task] = {}
        self._cancel_reasons: dict[str, str] = {}
        # The last run admitted per serial key: the next one with that key starts after it ends.
        self._serial_tails: dict[str, asyncio.Task] = {}

    async def submit(self, command: Command, runner: Runner, event: object, tasks: TaskTable) -> None:
        """Admit the task and start its run, which waits for a free slot while ``queued``.

        The run is created while ``event`` is Faust's current event, and asyncio copies
        that context into it: its table writes go to the command's partition. It holds
        ``event`` because Faust keeps only a weak reference to it.
        """
        await self._admitted.acquire()
        after = self._serial_tails.get(command.serial_key) if command.serial_key else None
        run = asyncio.ensure_future(self._run(command, runner, event, tasks, after))
        self._runs[command.id] = run
        if command.serial_key:
            self._serial_tails[command.serial_key] = run
        run.add_done_callback(lambda done: self._finished(command, done))

    def cancel(self, task_id: str, reason: str) -> bool:
        """Stop the task's run, whether it waits or runs; False when nothing runs it here."""
        run = self._runs.get(task_id)
        if run is None:
            return False
        self._cancel_reasons[task_id] = reason
        run.cancel()
        return True

    def _finished(self, command: Command, run: asyncio.Task) -> None:
        self._runs.pop(command.id, None)
        self._cancel_reasons.pop(command.id, None)
        if command.serial_key and self._serial_tails.get(command.serial_key) is run:
            del self._serial_tails[command.serial_key]
        self._admitted.release()
        if not run.cancelled() and run.exception() is not None:
            log.error("task %s run crashed", command.id, exc_info=run.exception())

    async def _run(
        self, command: Command, runner: Runner, event: object, tasks: TaskTable, after: asyncio.Task | None
    ) -> None:
        try:
            if after is not None:
                await asyncio.wait([after])  # its outcome is its own; only its end matters here
            await self._attempts(command, runner, tasks)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(command.id)
            if reason is None:
                raise  # the worker is stopping: the task stays as the table has it
            tasks.transition(command.id, State.CANCELLED, exit_code=None, detail=reason)

    async def _attempts(self, command: Command, runner: Runner, tasks: TaskTable) -> None:
        for retry in range(command.retries + 1):
            if retry:
                await asyncio.sleep(_backoff(command, retry))
            async with self._slots:
                tasks.transition(command.id, State.RUNNING, worker=settings.worker_name)
                outcome = await runner.run(command)
            retry_left = outcome.state is State.FAILED and retry < command.retries
            final = State.UP_FOR_RETRY if retry_left else outcome.state
            tasks.transition(command.id, final, exit_code=outcome.exit_code, detail=outcome.detail)
            if not retry_left:
                return

    async def on_stop(self) -> None:
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


def _backoff(command: Command, retry: int) -> float:
    base = command.retry_delay_s if command.retry_delay_s is not None else settings.default_retry_delay_s
    return base * 2 ** (retry - 1)

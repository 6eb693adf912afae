"""The worker pool: runs accepted tasks, at most ``concurrency`` at once, and records each transition."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from faust.types import EventT
from mode import Service

from airkafka_app.application import app
from airkafka_app.commands import MAX_RETRY_DELAY_S, Command
from airkafka_app.runners import Runner
from airkafka_app.settings import settings
from airkafka_app.states import State
from airkafka_app.tables.tasks import TaskTable
from airkafka_app.task_record import TaskRecord

log = logging.getLogger(__name__)

# Tasks admitted per run slot. Past that, intake waits and the backlog stays in Kafka; below
# it, intake keeps reading, so a cancel is not stuck behind the tasks it should stop.
ADMITTED_PER_SLOT = 4


@dataclass
class Run:
    """One admitted task. It keeps its own latest record: its transitions may travel as
    reports (see ``TaskTable.save``), so the table is not always the last word here."""

    command: Command
    runner: Runner
    tasks: TaskTable
    record: TaskRecord
    # Holds the event because Faust keeps only a weak reference to it.
    event: EventT

    def record_transition(self, state: State, **changes) -> None:
        self.record = self.tasks.save(self.record.to(state, **changes), self.event)


class WorkerPool(Service):
    def __init__(self, concurrency: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = asyncio.Semaphore(concurrency * ADMITTED_PER_SLOT)
        self._admitting: set[str] = set()
        self._runs: dict[str, asyncio.Task] = {}
        self._cancel_reasons: dict[str, str] = {}
        # The last run admitted per serial key: the next one with that key starts after it ends.
        self._serial_tails: dict[str, asyncio.Task] = {}

    def holds(self, task_id: str) -> bool:
        """True while the task is this worker's to run: admitted, or waiting for admission."""
        return task_id in self._runs or task_id in self._admitting

    async def submit(self, run: Run) -> None:
        """Admit the task and start its run, which waits for a free slot while ``queued``.

        The run is created while ``run.event`` is Faust's current event, and asyncio copies
        that context into it: its table writes go to the command's partition.
        """
        command = run.command
        self._admitting.add(command.id)
        try:
            await self._admitted.acquire()
        finally:
            self._admitting.discard(command.id)
        after = self._serial_tails.get(command.serial_key) if command.serial_key else None
        task = asyncio.ensure_future(self._run(run, after))
        self._runs[command.id] = task
        if command.serial_key:
            self._serial_tails[command.serial_key] = task
        task.add_done_callback(lambda done: self._finished(command, done))

    def cancel(self, task_id: str, reason: str) -> bool:
        """Stop the task's run, whether it waits or runs; False when nothing runs it here."""
        run = self._runs.get(task_id)
        if run is None:
            return False
        self._cancel_reasons[task_id] = reason
        run.cancel()
        return True

    def _finished(self, command: Command, task: asyncio.Task) -> None:
        self._runs.pop(command.id, None)
        self._cancel_reasons.pop(command.id, None)
        if command.serial_key and self._serial_tails.get(command.serial_key) is task:
            del self._serial_tails[command.serial_key]
        self._admitted.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s run crashed", command.id, exc_info=task.exception())

    async def _run(self, run: Run, after: asyncio.Task | None) -> None:
        try:
            if after is not None:
                await asyncio.wait([after])  # its outcome is its own; only its end matters here
            await self._attempts(run)
        except asyncio.CancelledError:
            reason = self._cancel_reasons.get(run.command.id)
            if reason is None:
                raise  # the worker is stopping: the task stays as the table has it
            run.record_transition(State.CANCELLED, exit_code=None, detail=reason)

    async def _attempts(self, run: Run) -> None:
        """The remaining attempts: a recovered task resumes where its retries stood."""
        command = run.command
        retry = run.record.retries_used + (run.record.state is State.UP_FOR_RETRY)
        while True:
            if retry:
                await asyncio.sleep(_backoff(command, retry))
            async with self._slots:
                run.record_transition(State.RUNNING, worker=settings.worker_name)
                outcome = await run.runner.run(command)
            retry_left = outcome.state is State.FAILED and retry < command.retries
            final = State.UP_FOR_RETRY if retry_left else outcome.state
            run.record_transition(final, exit_code=outcome.exit_code, detail=outcome.detail)
            if not retry_left:
                return
            retry += 1

    async def on_stop(self) -> None:
        runs = list(self._runs.values())
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


pool = WorkerPool(concurrency=settings.concurrency)


@app.task
async def start_pool() -> None:
    """One pool for every queue: AIRKAFKA_CONCURRENCY bounds the worker, as a Celery worker's does."""
    await app.add_runtime_dependency(pool)


def _backoff(command: Command, retry: int) -> float:
    """Doubling from the first delay, and never over MAX_RETRY_DELAY_S."""
    base = command.retry_delay_s if command.retry_delay_s is not None else settings.default_retry_delay_s
    return min(base * 2.0 ** min(retry - 1, 64), MAX_RETRY_DELAY_S)

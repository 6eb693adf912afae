"""The worker pool: runs accepted tasks, at most ``concurrency`` at once, and records each transition."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field

from faust.types import EventT
from mode import Service

from airkafka_app.contract.commands import Command
from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.core.decisions import after_attempt, handed_back, started
from airkafka_app.worker.core.run_slots import RunSlots
from airkafka_app.worker.core.serial_lines import SerialLines
from airkafka_app.worker.core.task_rules import read_before, retries_done
from airkafka_app.worker.log_publisher import LogPublisher
from airkafka_app.worker.runners import Runner
from airkafka_app.worker.tables.tasks import TaskTable

log = logging.getLogger(__name__)

# Tasks admitted per run slot: running, or waiting for a slot. Past that, intake waits and the
# backlog stays in Kafka; below it, intake keeps reading, so a cancel is not stuck behind the
# tasks it should stop. A task waiting for its retry is not admitted: it waits in the table.
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
    # Faust's current event lives in the context; a run's table writes need its own.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    # Whether it holds a ticket of the admission bound, which a retry's wait gives back.
    ticketed: bool = False
    # Its wait for a ticket, and whether a cancel took it out of that wait.
    ticket: asyncio.Future[bool] | None = None
    withdrawn: bool = False

    def record_transition(self, state: State, **changes) -> None:
        self.save(self.record.to(state, **changes))

    def save(self, record: TaskRecord) -> None:
        """Record the transition to ``record``, decided elsewhere (core/decisions.py)."""
        self.record = self.tasks.save(record, self.event)


class WorkerPool(Service):
    """Runs tasks on ``concurrency`` run slots, each holding its ``pool_slots``, the highest
    ``priority_weight`` first (run_slots.py), and hands them back when the worker stops.

    Admitted runs hold a ticket of the admission bound; beyond it, intake waits. A task whose
    serial key has a run waits behind it without a ticket (serial_lines.py). A task waiting for
    its retry holds neither a ticket nor its command: its run ends ``up_for_retry`` with the time
    it is due (``retry_at``), and only a timer is left here, which asks the partition's owner to
    run it again when due (a recovery request; the sweep does the same for a due retry whose timer
    went with its worker). So a day-long retry wait costs a timer, about 200 bytes.
    """

    def __init__(
        self,
        concurrency: int,
        worker_name: str,
        log_publisher: LogPublisher,
        default_retry_delay_s: float,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._worker_name = worker_name
        self._log_publisher = log_publisher
        self.default_retry_delay_s = default_retry_delay_s
        # A task passed over by as many runs as the worker admits goes next (run_slots.py).
        self._slots = RunSlots(concurrency, patience=concurrency * ADMITTED_PER_SLOT)
        self._admitted = asyncio.Semaphore(concurrency * ADMITTED_PER_SLOT)
        self._admitting: dict[str, Run] = {}  # waiting for a ticket
        # Set while a task waits for a ticket: intake is stopped behind it (cancel_lookout.py).
        self.admission_full = asyncio.Event()
        self._runs: dict[str, tuple[Run, asyncio.Task]] = {}
        self._running: set[str] = set()  # those whose process runs
        self._cancel_reasons: dict[str, str] = {}
        self._serial: SerialLines[Run] = SerialLines()
        self._handed_back: set[str] = set()
        self._parked: dict[str, asyncio.TimerHandle] = {}  # task id -> its retry's timer
        self.draining = False

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def concurrency(self) -> int:
        return self._slots.line.total

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` tasks from now on (an operator's order, control.py); the
        admission bound follows."""
        tickets = (concurrency - self.concurrency) * ADMITTED_PER_SLOT
        self._slots.resize(concurrency)
        for _ in range(max(tickets, 0)):
            self._admitted.release()
        if tickets < 0:
            asyncio.ensure_future(self._withhold(-tickets))

    async def _withhold(self, tickets: int) -> None:
        """Take admission tickets out of use for good, as runs give them back."""
        for _ in range(tickets):
            await self._admitted.acquire()

    def runs(self, task_id: str) -> bool:
        """True while ``cancel`` would end the task's run here: admitted, or waiting for admission."""
        return task_id in self._runs or task_id in self._admitting or self._serial.waits(task_id)

    def holds(self, task_id: str) -> bool:
        """True while the task is this worker's to run: admitted, or waiting for admission."""
        return self.runs(task_id) or task_id in self._parked

    async def submit(self, run: Run) -> None:
        """Admit the task and start its run, which waits for a free slot while ``queued``; or, when
        its serial key has a run, queue it behind that run."""
        key = run.command.serial_key
        if key is None or self._serial.arrive(key, run.command.id, run):
            await self._admit(run)

    async def _admit(self, run: Run) -> None:
        task_id = run.command.id
        self._admitting[task_id] = run
        ticketed = False
        try:
            if not run.withdrawn:
                ticketed = await self._ticket(run)
        finally:
            self._admitting.pop(task_id, None)
            if not self._admitting:
                self.admission_full.clear()
        if run.withdrawn:  # cancelled while it waited: its record says so
            if ticketed:
                self._admitted.release()
            self._line_goes_on(run.command.serial_key)
            return
        run.ticketed = True
        # Started eagerly: up to its first wait (for a slot, or for its process to end) the run
        # goes on in this turn of the loop, and its spawn request leaves before intake reads on.
        task = asyncio.Task(self._run(run), loop=asyncio.get_running_loop(), context=run.context, eager_start=True)
        self._runs[task_id] = (run, task)
        task.add_done_callback(lambda done: self._finished(run, done))

    async def _ticket(self, run: Run) -> bool:
        """A ticket of the admission bound; False when a cancel withdrew the run first."""
        if not self._admitted.locked():
            return await self._admitted.acquire()  # at once
        self.admission_full.set()
        run.ticket = asyncio.ensure_future(self._admitted.acquire())
        try:
            return await run.ticket
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if run.withdrawn and task is not None and not task.cancelling():
                return False
            raise

    def cancel(self, task_id: str, reason: str) -> bool:
        """End the task's run ``cancelled``, whether it waits or runs; False when nothing runs it
        here. A retry's timer is dropped: the caller cancels its record in the table."""
        if (timer := self._parked.pop(task_id, None)) is not None:
            timer.cancel()
            return False
        if (follower := self._serial.withdraw(task_id)) is not None:
            follower.context.run(follower.record_transition, State.CANCELLED, exit_code=None, detail=reason)
            return True
        if (waiting := self._admitting.get(task_id)) is not None:
            waiting.withdrawn = True
            if waiting.ticket is not None:
                waiting.ticket.cancel()
            waiting.context.run(waiting.record_transition, State.CANCELLED, exit_code=None, detail=reason)
            return True
        if (held := self._runs.get(task_id)) is None:
            return False
        self._cancel_reasons[task_id] = reason
        held[1].cancel()
        return True

    def cancel_ahead(self, task_id: str, reason: str, topic: str, partition: int, offset: int) -> bool:
        """A cancel read ahead of intake (cancel_lookout.py), at ``offset`` of ``topic``'s ``partition``:
        end the task's run as ``cancel`` does, when the run is held here for a command read before
        that cancel. False when none is, the cancel then waiting for intake."""
        held = self._runs.get(task_id)
        run = held[0] if held else self._admitting.get(task_id) or self._serial.waiting(task_id)
        if run is None or not read_before(run.event.message, topic, partition, offset):
            return False
        return self.cancel(task_id, reason)

    def _finished(self, run: Run, task: asyncio.Task) -> None:
        task_id, key = run.command.id, run.command.serial_key
        self._runs.pop(task_id, None)
        self._cancel_reasons.pop(task_id, None)
        self._handed_back.discard(task_id)
        self._give_back_ticket(run)
        self._line_goes_on(key)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s run crashed", task_id, exc_info=task.exception())

    def _line_goes_on(self, key: str | None) -> None:
        """A run of ``key`` is over: its next follower, if any, is admitted."""
        if key is not None and (follower := self._serial.after(key, go_on=not self.draining)) is not None:
            self._admitting[follower.command.id] = follower  # held all along, for duplicates
            asyncio.ensure_future(self._admit(follower))

    async def _run(self, run: Run) -> None:
        try:
            await self._attempts(run)
        except asyncio.CancelledError:
            task_id = run.command.id
            if task_id in self._handed_back:
                if (record := handed_back(run.record, self._worker_name)) is not None:
                    run.save(record)
                return
            reason = self._cancel_reasons.get(task_id)
            if reason is None:
                raise  # the worker is stopping at once: the task stays as the table has it
            run.record_transition(State.CANCELLED, exit_code=None, detail=reason)

    async def _attempts(self, run: Run) -> None:
        """The remaining attempts: a recovered task resumes where its retries stood, and a retry
        that is not yet due waits in the table."""
        command = run.command
        retry = retries_done(run.record)
        while True:
            if (wait := run.record.due_in(time.time())) > 0:
                if command.serial_key is None:
                    self._park(run, wait)
                    return
                # Its serial line waits behind it, so it waits here, as its followers do: without a ticket.
                self._give_back_ticket(run)
                await asyncio.sleep(wait)
            taken = await self._slots.acquire(command.pool_slots, command.priority_weight)
            try:
                if self.draining:
                    return  # not started: the next owner finds it queued or up for retry
                run.save(started(run.record, self._worker_name))
                self._running.add(command.id)
                attempt = run.record.attempt
                try:
                    outcome = await run.runner.run(command, self._log_publisher.output(command, attempt))
                finally:
                    self._running.discard(command.id)
                    self._log_publisher.end(command, attempt)
            finally:
                self._slots.release(taken)
            run.save(after_attempt(run.record, command, outcome, retry, self.default_retry_delay_s))
            if run.record.state is not State.UP_FOR_RETRY:
                return
            retry += 1

    def _give_back_ticket(self, run: Run) -> None:
        if run.ticketed:
            run.ticketed = False
            self._admitted.release()

    def _park(self, run: Run, wait: float) -> None:
        """Leave a retry to wait in the table, and ask for it again when it is due."""
        command, tasks = run.command, run.tasks

        def due() -> None:
            if self._parked.pop(command.id, None) is not None:
                request = tasks.recovery_request(command)
                asyncio.ensure_future(tasks.internal.send(**request)).add_done_callback(_log_unsent)

        self._parked[command.id] = asyncio.get_running_loop().call_later(wait, due)
        log.debug("task %s waits %.1fs for its retry", command.id, wait)

    async def drain(self, grace_s: float, cut: asyncio.Event) -> tuple[int, int]:
        """Start nothing more; let the running tasks finish for ``grace_s`` (less if ``cut`` is
        set), then hand back what is left: a running task ends its attempt up for retry, not
        counted as one, and a waiting task stays as it is. (finished, handed back) running tasks."""
        self.draining = True
        running = [self._runs[task_id][1] for task_id in self._running if task_id in self._runs]
        if running:
            waits = [asyncio.ensure_future(asyncio.wait(running)), asyncio.ensure_future(cut.wait())]
            await asyncio.wait(waits, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
        left = [(task_id, task) for task_id, (_, task) in self._runs.items()]
        handed_back = sum(task_id in self._running for task_id, _ in left)
        for task_id, task in left:
            self._handed_back.add(task_id)
            task.cancel()
        await asyncio.gather(*(task for _, task in left), return_exceptions=True)
        return len(running) - handed_back, handed_back

    async def on_stop(self) -> None:
        for timer in self._parked.values():  # the next owner's sweep finds them due
            timer.cancel()
        self._parked.clear()
        runs = [task for _, task in self._runs.values()]
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


def _log_unsent(sent: asyncio.Future) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("a due retry's request not sent (the sweep will find it): %r", sent.exception())

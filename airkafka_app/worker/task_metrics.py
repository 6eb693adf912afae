"""AirKafka's task metrics, in Prometheus' conventions (served by ``metrics``).

Each transition a worker stores or reports passes ``observe`` once, on the worker that made it,
so summing a counter over the workers counts each task once. Labels are bounded: queues come from
the settings, kinds from the runner registry (a command of another kind is a dead letter), and
reasons from the classes below.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from airkafka_app.contract.states import State
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.task_rates import TaskRates

# Seconds: from a `true` on an idle worker (a few ms) to long batch jobs.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)


class CachedLabels:
    """A metric whose labelled children are looked up once: ``labels()`` checks its arguments and
    takes a lock at each call, a tenth of what observing a task costs, and Faust's sensor asks
    for the same children several times per message."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple, Any] = {}

    def labels(self, *args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(kwargs.items()))  # callers name them in one order at each call site
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*args, **kwargs)
        return child

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)


RAN = frozenset({State.SUCCESS, State.FAILED, State.CANCELLED, State.UP_FOR_RETRY})


class TaskMetrics:
    """The task metrics of one worker, in its registry, and its last hour for the dashboard (``rates``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rates = TaskRates()

        def labelled(metric: type[Counter] | type[Histogram], name: str, text: str, labels: list[str], **kw: Any):
            return CachedLabels(metric(name, text, labels, registry=registry, **kw))

        self.ended = labelled(
            Counter,
            "airkafka_tasks",
            "Task attempts that ended, by queue, kind and final state",
            ["queue", "kind", "state"],
        )
        self.retries = labelled(Counter, "airkafka_task_retries", "Attempts that ended up_for_retry", ["queue", "kind"])
        self.queue_wait = labelled(
            Histogram,
            "airkafka_task_queue_wait_seconds",
            "From a task's queueing to its first run",
            ["queue", "kind"],
            buckets=BUCKETS,
        )
        self.run_time = labelled(
            Histogram,
            "airkafka_task_run_seconds",
            "From an attempt's start to its end",
            ["queue", "kind"],
            buckets=BUCKETS,
        )
        self.dead_letters = labelled(
            Counter, "airkafka_dead_letters", "Messages refused, by queue and reason class", ["queue", "reason"]
        )
        self.duplicates = labelled(
            Counter,
            "airkafka_duplicates",
            "Commands ignored as duplicates, by queue and reason class",
            ["queue", "reason"],
        )

    def observe(self, queue: str, record: TaskRecord) -> None:
        kind = str(record.command.get("kind"))
        if record.state is State.RUNNING and record.attempt == record.first_attempt and record.queued_at is not None:
            self.queue_wait.labels(queue, kind).observe(max(0.0, record.updated_at - record.queued_at))
        elif record.state is State.UP_FOR_RETRY:
            self.retries.labels(queue, kind).inc()
        elif record.state.is_terminal:
            self.ended.labels(queue, kind, record.state.value).inc()
        ran = None
        if record.state in RAN and record.started_at is not None:
            # started_at is the last attempt's: an attempt that ended without running again
            # (cancelled or lost while waiting for its retry) counts its previous run's start.
            ran = max(0.0, record.updated_at - record.started_at)
            self.run_time.labels(queue, kind).observe(ran)
        if ran is not None or record.state.is_terminal:
            self.rates.note(queue, record.updated_at, record.state.is_terminal, ran)


def dead_letter_class(reason: str, internal: bool, unexpected: bool) -> str:
    """A reason's class: what an operator does about it differs from one to the next."""
    if unexpected:
        return "error"  # a bug: the log has the traceback at DEBUG
    if internal:
        return "internal"  # a forged or broken message between workers
    if "runner is disabled" in reason:
        return "runner_disabled"  # this worker's setup
    if "AIRKAFKA_SHELL_ALLOW" in reason or "AIRKAFKA_SHELL_ENV_ALLOW" in reason:
        return "not_allowed"
    return "invalid"  # the producer's fault


def duplicate_class(why: str) -> str:
    if why.startswith("message "):
        return "redelivered"  # Kafka delivered the message again
    if why.startswith("already admitted"):
        return "in_flight"
    return "done"  # resubmitted after its end

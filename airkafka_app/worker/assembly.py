"""The worker, assembled: ``build(settings)`` makes the Faust app and every part of the worker,
and wires them, in the order data flows: topics, then each queue's tables, the runners and the
pool that runs their tasks, then what watches and steers them, then the views and commands.

Importing a module of the worker builds nothing; ``faust -A airkafka_app worker`` reaches this
through ``airkafka_app.app``, which builds the worker from the environment on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faust.cli.base import cli as faust_command_line
from mode import ServiceT
from prometheus_client import CollectorRegistry

from airkafka_app.contract.settings import Settings
from airkafka_app.worker import intake
from airkafka_app.worker.application import App, create_app
from airkafka_app.worker.cancel_lookout import CancelLookout
from airkafka_app.worker.control import Control
from airkafka_app.worker.liveness import Heartbeats, Liveness
from airkafka_app.worker.log_publisher import LogPublisher
from airkafka_app.worker.ops import kafka_noise, metrics, retention
from airkafka_app.worker.ops.heap import freeze_startup_heap
from airkafka_app.worker.ops.log_server import LogServer
from airkafka_app.worker.ops.loop_lag import LoopLag
from airkafka_app.worker.ops.shutdown import Worker
from airkafka_app.worker.ops.stall_watchdog import StallWatchdog
from airkafka_app.worker.parts import Parts
from airkafka_app.worker.pool import WorkerPool
from airkafka_app.worker.queues import Queue
from airkafka_app.worker.replay import replay
from airkafka_app.worker.runners import registry
from airkafka_app.worker.tables.counters import CounterTable
from airkafka_app.worker.tables.publisher import TablePublisher
from airkafka_app.worker.tables.tasks import AwaitingReports, TaskTable
from airkafka_app.worker.task_metrics import TaskMetrics
from airkafka_app.worker.topics import Topics
from airkafka_app.worker.web import cluster, dashboard, dead_letters, views


def build(settings: Settings) -> App:
    """A worker with these settings, ready for Faust to run."""
    app = create_app(settings)
    parts = _parts(app, settings)
    app.parts = parts
    app.conf.Worker = Worker  # what `faust -A airkafka_app worker` runs
    intake.install(parts)
    _start_services(parts)
    _start_timers(parts)
    for web in (views, cluster, dead_letters, dashboard):
        web.install(app)
    metrics.install(parts, parts.metrics_registry)
    kafka_noise.install(parts.metrics_registry)
    # `faust -A airkafka_app replay`, as it was before `airkafka replay`.
    faust_command_line.add_command(replay)
    return app


def _parts(app: App, settings: Settings) -> Parts:
    topics = Topics(app, settings)
    metrics_registry = CollectorRegistry()
    task_metrics = TaskMetrics(metrics_registry)
    publisher = TablePublisher(app, settings.state_changes_topic)
    awaiting_report = AwaitingReports()
    queues = {}
    for name in settings.queues:
        internal = topics.internal(name)
        tasks = TaskTable(
            app,
            name,
            internal,
            publisher,
            awaiting_report,
            task_metrics,
            partitions=settings.partitions,
            data_dir=settings.data_dir,
            cluster_key=settings.cluster_key,
        )
        queues[name] = Queue(name, topics.commands(name), internal, tasks, CounterTable(app, name, settings.partitions))
    log_publisher = LogPublisher(topics.logs, settings.partitions)
    pool = WorkerPool(settings.concurrency, settings.worker_name, log_publisher, settings.default_retry_delay_s)
    control = Control(settings, topics.control, pool)
    heartbeats = Heartbeats(settings)
    return Parts(
        settings=settings,
        app=app,
        topics=topics,
        metrics=task_metrics,
        metrics_registry=metrics_registry,
        publisher=publisher,
        awaiting_report=awaiting_report,
        queues=queues,
        runners=registry(settings),
        log_publisher=log_publisher,
        pool=pool,
        control=control,
        heartbeats=heartbeats,
        liveness=Liveness(settings, app, topics.heartbeats, heartbeats, control, pool, queues, awaiting_report),
        lookout=CancelLookout(settings, app, queues, pool),
        watchdog=StallWatchdog(settings, app, publisher, heartbeats, pool, queues, awaiting_report),
        loop_lag=LoopLag(),
    )


def _app_task(app: App, name: str, step: Callable[[], Awaitable[None]]) -> None:
    """``step`` as a Faust app task: run once the tables are recovered, before the streams flow."""
    step.__name__ = step.__qualname__ = name
    app.task(step)


def _start_services(parts: Parts) -> None:
    app, settings = parts.app, parts.settings

    def started_with_app(service: ServiceT) -> Callable[[], Awaitable[None]]:
        async def start() -> None:
            await app.add_runtime_dependency(service)

        return start

    async def flush_before_commits() -> None:
        app.producer.before_flush.append(parts.publisher.flush_and_wait)

    async def start_heartbeats() -> None:
        parts.liveness.read_clean_stop()
        await app.add_runtime_dependency(parts.heartbeats)

    async def start_watchdog() -> None:
        # Not Faust's task: the watch must outlive a stop that hangs.
        asyncio.get_running_loop().create_task(parts.watchdog.watch())
        await parts.watchdog.publish_unsent(parts.topics.state_changes)

    _app_task(app, "flush_before_commits", flush_before_commits)
    # One pool for every queue: AIRKAFKA_CONCURRENCY bounds the worker, as a Celery worker's does.
    for name, service in (
        ("log_publisher", parts.log_publisher),
        ("pool", parts.pool),
        ("lookout", parts.lookout),
        ("control", parts.control),
        ("loop_lag", parts.loop_lag),
    ):
        _app_task(app, f"start_{name}", started_with_app(service))
    _app_task(app, "start_heartbeats", start_heartbeats)
    _app_task(app, "freeze_startup_heap", freeze_startup_heap)
    if settings.airflow_python and settings.airflow_serve_logs:
        _app_task(app, "start_log_server", started_with_app(LogServer(settings.airflow_python)))
    _app_task(app, "start_watchdog", start_watchdog)
    # Before any message is handled: what the table holds of the unsent tasks may be older.
    app.on_worker_init.connect(lambda sender, **kwargs: parts.watchdog.hold_unsent())


def _start_timers(parts: Parts) -> None:
    app, settings = parts.app, parts.settings
    app.timer(settings.heartbeat_s, name="beat")(parts.liveness.beat)
    app.timer(settings.heartbeat_s, name="sweep")(parts.liveness.sweep)
    retention.install(parts)

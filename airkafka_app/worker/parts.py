"""The parts of a worker, as the assembly (``assembly.py``) wires them, in the order data flows:
the topics, the queues with their tables, the runners and the pool that runs their tasks, then
what watches and steers them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust
    from prometheus_client import CollectorRegistry

    from airkafka_app.contract.settings import Settings
    from airkafka_app.worker.cancel_lookout import CancelLookout
    from airkafka_app.worker.control import Control
    from airkafka_app.worker.liveness import Heartbeats, Liveness
    from airkafka_app.worker.log_publisher import LogPublisher
    from airkafka_app.worker.ops.loop_lag import LoopLag
    from airkafka_app.worker.ops.stall_watchdog import StallWatchdog
    from airkafka_app.worker.pool import WorkerPool
    from airkafka_app.worker.queues import Queue
    from airkafka_app.worker.runners import Runner
    from airkafka_app.worker.tables.publisher import TablePublisher
    from airkafka_app.worker.tables.tasks import AwaitingReports
    from airkafka_app.worker.task_metrics import TaskMetrics
    from airkafka_app.worker.topics import Topics


@dataclass
class Parts:
    settings: Settings
    app: faust.App  # the worker's App (application.py), which holds these parts in turn
    topics: Topics
    metrics: TaskMetrics
    metrics_registry: CollectorRegistry
    publisher: TablePublisher
    awaiting_report: AwaitingReports
    queues: Mapping[str, Queue]
    runners: Mapping[str, Runner]
    log_publisher: LogPublisher
    pool: WorkerPool
    control: Control
    heartbeats: Heartbeats
    liveness: Liveness
    lookout: CancelLookout
    watchdog: StallWatchdog
    loop_lag: LoopLag

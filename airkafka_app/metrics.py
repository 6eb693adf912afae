"""``GET /metrics`` for Prometheus: faust-streaming's own sensor for the Kafka side (offsets,
commit latency, rebalances, sends), AirKafka's task metrics (``task_metrics``), and gauges
read when scraped: the tasks in flight in this worker's partitions, and the workers online or
lost as this worker's heartbeats tell. Metrics carry no task id and no secret: the view is
open, as ``/health/`` is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from faust.sensors.prometheus import FaustMetrics, setup_prometheus_sensors
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from airkafka_app.application import app
from airkafka_app.contract.states import IN_FLIGHT
from airkafka_app.liveness import heartbeats
from airkafka_app.queues import queues
from airkafka_app.task_metrics import CachedLabels


class WorkerCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily(
            "airkafka_tasks_in_flight",
            "Tasks queued, running or waiting for a retry, in this worker's partitions",
            labels=["queue", "state"],
        )
        for name, queue in queues.items():
            counts = queue.tasks.counts()
            for state in IN_FLIGHT:
                in_flight.add_metric([name, state.value], counts[state.value])
        yield in_flight
        workers = GaugeMetricFamily(
            "airkafka_workers", "Workers by what their heartbeats tell this one", labels=["status"]
        )
        statuses = Counter(status for status, _ in heartbeats.roster().values())
        for status in ("online", "lost", "stopped"):
            workers.add_metric([status], statuses[status])
        yield workers


setup_prometheus_sensors(app, pattern="/metrics", name_prefix="airkafka_faust")
app.monitor._metrics = FaustMetrics(*map(CachedLabels, app.monitor._metrics))
REGISTRY.register(WorkerCollector())

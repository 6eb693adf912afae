"""``GET /metrics`` for Prometheus: faust-streaming's own sensor for the Kafka side (offsets,
commit latency, rebalances, sends), AirKafka's task metrics (``task_metrics``), and gauges
read when scraped: the tasks in flight in this worker's partitions, and the workers online or
lost as this worker's heartbeats tell. Metrics carry no task id and no secret: the view is
open, as ``/health/`` is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from airkafka_app.contract.states import IN_FLIGHT
from airkafka_app.worker.parts import Parts
from airkafka_app.worker.task_metrics import CachedLabels


class WorkerCollector(Collector):
    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily(
            "airkafka_tasks_in_flight",
            "Tasks queued, running or waiting for a retry, in this worker's partitions",
            labels=["queue", "state"],
        )
        for name, queue in self._parts.queues.items():
            counts = queue.tasks.counts()
            for state in IN_FLIGHT:
                in_flight.add_metric([name, state.value], counts[state.value])
        yield in_flight
        workers = GaugeMetricFamily(
            "airkafka_workers", "Workers by what their heartbeats tell this one", labels=["status"]
        )
        statuses = Counter(status for status, _ in self._parts.heartbeats.roster().values())
        for status in ("online", "lost", "stopped"):
            workers.add_metric([status], statuses[status])
        yield workers


def install(parts: Parts, registry: CollectorRegistry) -> None:
    """Faust's Prometheus sensor, its children looked up once (task_metrics.CachedLabels), the
    worker's gauges, and ``/metrics`` serving them with the task metrics, all from ``registry``."""
    app = parts.app
    app.monitor = PrometheusMonitor(
        metrics=FaustMetrics(*map(CachedLabels, FaustMetrics.create(registry, "airkafka_faust")))
    )
    registry.register(WorkerCollector(parts))

    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.page("/metrics")(metrics)

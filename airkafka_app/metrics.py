"""``GET /metrics`` for Prometheus: faust-streaming's own sensor for the Kafka side (offsets,
commit latency, rebalances, sends), AirKafka's task metrics (``task_metrics``), and gauges
read when scraped: the tasks in flight in this worker's partitions, and the workers online or
lost as this worker's heartbeats tell. Metrics carry no task id and no secret: the view is
open, as ``/health/`` is.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from airkafka_app.application import app
from airkafka_app.liveness import heartbeats
from airkafka_app.queues import queues
from airkafka_app.settings import settings
from airkafka_app.states import IN_FLIGHT


# A lost worker counts this long after its last heartbeat, so that an alert on it ends: its
# tasks were recovered long before.
LOST_SHOWN_S = 3600.0


class WorkerCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_flight = GaugeMetricFamily("airkafka_tasks_in_flight", "Tasks queued, running or waiting for a retry, "
                                      "in this worker's partitions", labels=["queue", "state"])
        for name, queue in queues.items():
            counts = queue.tasks.counts()
            for state in IN_FLIGHT:
                in_flight.add_metric([name, state.value], counts[state.value])
        yield in_flight
        workers = GaugeMetricFamily("airkafka_workers", "Workers by what their heartbeats tell this one",
                                    labels=["status"])
        now, bound = time.time(), settings.worker_lost_after_s
        recent = {w: now - at for w, at in heartbeats.last_seen.items() if now - at <= LOST_SHOWN_S}
        stopped = {w for w in recent if w in heartbeats.stopped}
        online = {w for w, silent in recent.items() if silent <= bound} - stopped
        workers.add_metric(["online"], len(online))
        workers.add_metric(["lost"], len(recent) - len(online) - len(stopped))
        workers.add_metric(["stopped"], len(stopped))
        yield workers


setup_prometheus_sensors(app, pattern="/metrics", name_prefix="airkafka_faust")
REGISTRY.register(WorkerCollector())

"""Airflow's remote task logs, read from Kafka: an ended try's log in the UI, after its worker's
host is gone.

The worker publishes each try's log lines to ``<app id>-logs`` as the try runs
(``log_publisher.py``); Airflow's api-server reads them back through this module's remote log
handler, ``REMOTE_TASK_LOG``, beside Airflow's default logging configuration:

    [logging]
    logging_config_class = airkafka_app.airflow.log_handler.LOGGING_CONFIG

(Airflow 3.3's default configuration refuses a ``remote_base_log_folder`` scheme it does not
know, so a provider's handler is reached only through a configuration class of its own.)
Faust-free: it runs in Airflow's interpreter, with the executor's ``[airkafka]`` settings. It
uploads nothing: the worker, which holds the Kafka credentials, has already sent the log.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from airkafka_app.contract.kafka_connection import confluent_options
from airkafka_app.contract.settings import Settings
from airkafka_app.contract.task_logs import LogAssembly, partition_of

READ_TIMEOUT_S = 10.0
# A log is read from this long before its try started: the worker's clock may differ.
CLOCK_SKEW_S = 60.0


def read_log(name: str, since: datetime | None, timeout_s: float = READ_TIMEOUT_S) -> tuple[str, LogAssembly]:
    """(where it was read, what was read) of the log named ``name``, from ``since`` to the end."""
    settings = Settings()
    topic = settings.logs_topic
    log = LogAssembly(name)
    consumer = Consumer({**confluent_options(settings), "group.id": "airkafka-log-reader", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or not metadata.partitions:
            return f"no topic {topic}", log
        partition = partition_of(name, len(metadata.partitions))
        where = f"Kafka topic {topic}, partition {partition}"
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        start = low
        if since is not None:
            at = int((since.timestamp() - CLOCK_SKEW_S) * 1000)
            found = consumer.offsets_for_times([TopicPartition(topic, partition, at)], timeout=timeout_s)[0].offset
            start = found if found >= 0 else high
        if start >= high:
            return where, log
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        position = start
        while position < high and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    log.add(message.key(), message.value())
                    position = message.offset() + 1
        return where, log
    finally:
        consumer.close()


class KafkaTaskLogs:
    """Airflow's ``RemoteLogIO`` for the scheme ``kafka``."""

    processors: tuple[Any, ...] = ()

    @classmethod
    def from_config(cls) -> KafkaTaskLogs:
        return cls()

    def upload(self, path: os.PathLike | str, ti: Any = None) -> None:
        """Nothing to upload: the worker published the log as the try ran."""

    def read(self, relative_path: str, ti: Any) -> tuple[list[str], list[str] | None]:
        try:
            where, log = read_log(relative_path, getattr(ti, "start_date", None))
        except KafkaException as exc:
            return [f"Kafka: the log could not be read: {exc.args[0].str()}"], None
        lines = log.lines()
        if not lines:
            return [f"{where}: no log of {relative_path}"], None
        return [where], ["\n".join(lines)]


REMOTE_TASK_LOG = KafkaTaskLogs()


def __getattr__(name: str) -> Any:
    # Airflow's own logging configuration, read when Airflow asks for it, not at import.
    if name == "LOGGING_CONFIG":
        from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

        return DEFAULT_LOGGING_CONFIG
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

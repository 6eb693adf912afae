"""The name Airflow is given: ``executor = airkafka_app.executor.KafkaExecutor``."""

from airkafka_app.airflow.executor import KafkaExecutor

__all__ = ["KafkaExecutor"]

"""AirKafka as an Airflow provider: ``airflow providers list`` shows it, and ``airflow config list
--section airkafka`` shows the executor's options with their defaults (``defaults.py``).
Faust-free, and it builds no settings: Airflow loads it through the ``apache_airflow_provider``
entry point while it is still building its own configuration.
"""

from __future__ import annotations

from typing import Any

from airkafka_app.contract.defaults import DEFAULTS

# The options the executor reads, and what each is; the workers read the same as AIRKAFKA_*.
OPTIONS = {
    "AIRKAFKA_BROKER": "Kafka bootstrap servers, ';'-separated kafka://host:port",
    "AIRKAFKA_APP_ID": "The workers' Faust app id: their consumer group and topic prefix",
    "AIRKAFKA_PARTITIONS": "Partitions of the topics the executor creates when missing",
    "AIRKAFKA_REPLICATION": "Replication factor of the topics the executor creates",
    "AIRKAFKA_COMMANDS_TOPIC": "The commands topic of the default queue (other queues: <topic>.<queue>)",
    "AIRKAFKA_STATE_CHANGES_TOPIC": "The topic sync() reads task ends from",
    "AIRKAFKA_DEAD_LETTERS_TOPIC": "The topic of refused commands: a refused airflow command fails its try",
    "AIRKAFKA_QUEUES": "Queues whose commands topics the executor creates at start",
    "AIRKAFKA_EXECUTOR_GROUP": "sync()'s consumer group (empty: one per scheduler host)",
    "AIRKAFKA_EXECUTOR_LOOKBACK_S": "How far back a new consumer group starts reading, in seconds",
    "AIRKAFKA_EXECUTOR_DELIVERY_TIMEOUT_S": "A command not acknowledged by the broker this long fails its try",
    "AIRKAFKA_SECURITY_PROTOCOL": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    "AIRKAFKA_SASL_MECHANISM": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    "AIRKAFKA_SASL_USERNAME": "SASL user name",
    "AIRKAFKA_SASL_PASSWORD": "SASL password",
    "AIRKAFKA_SSL_CAFILE": "CA bundle that verifies the brokers",
    "AIRKAFKA_SSL_CERTFILE": "Client certificate (mutual TLS)",
    "AIRKAFKA_SSL_KEYFILE": "Client key (mutual TLS)",
    "AIRKAFKA_SSL_KEY_PASSWORD": "Password of the client key",
}
SENSITIVE = {"AIRKAFKA_SASL_PASSWORD", "AIRKAFKA_SSL_KEY_PASSWORD"}
NUMBERS = {
    "AIRKAFKA_PARTITIONS": "integer",
    "AIRKAFKA_REPLICATION": "integer",
    "AIRKAFKA_EXECUTOR_LOOKBACK_S": "float",
    "AIRKAFKA_EXECUTOR_DELIVERY_TIMEOUT_S": "float",
}


def _option(name: str, description: str) -> dict[str, Any]:
    return {
        "description": f"{description}. The variable {name}, when set, wins.",
        "version_added": "0.1.0",
        "type": NUMBERS.get(name, "string"),
        "example": None,
        "default": DEFAULTS[name] or None,
        "sensitive": name in SENSITIVE,
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airkafka",
        "name": "AirKafka",
        "description": "Runs Airflow tasks on a Faust worker pool over Apache Kafka: the KafkaExecutor.",
        "executors": ["airkafka_app.executor.KafkaExecutor"],
        "cli": ["airkafka_app.airflow.cli.get_cli_commands"],
        "config": {
            "airkafka": {
                "description": "AirKafka's KafkaExecutor; the workers read the same settings as AIRKAFKA_*.",
                "options": {
                    name.removeprefix("AIRKAFKA_").lower(): _option(name, text) for name, text in OPTIONS.items()
                },
            },
        },
    }

"""Every setting AirKafka reads, in one place, from the environment, when ``Settings()`` is built:
importing this module reads nothing. The worker's assembly builds it once (``worker/assembly.py``).

Faust-free: the executor side imports this too. docs/configuration.md's
table documents each variable and its default. In Airflow's interpreter (the executor), a
variable that is not set is read from Airflow's ``[airkafka]`` section, under its name without
``AIRKAFKA_`` in lower case, so ``AIRFLOW__AIRKAFKA__BROKER``, its ``_CMD`` and ``_SECRET``
forms, ``airflow.cfg`` and secrets backends work too (``provider.py`` declares the section).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from airkafka_app.contract.defaults import DEFAULTS

# A team's executor reads its options from this, its team's conf, and nothing else (``for_team``).
_team_options: ContextVar[Callable[[str], str | None] | None] = ContextVar("airkafka_team_options", default=None)


def _airflow_option(name: str) -> str | None:
    key = name.removeprefix("AIRKAFKA_").lower()
    if (team := _team_options.get()) is not None:
        return team(key)
    # Loaded only in Airflow's interpreter, where Airflow has built its conf before the executor.
    conf = getattr(sys.modules.get("airflow.configuration"), "conf", None)
    if conf is None:
        return None
    return conf.get("airkafka", key, fallback=None)


def _env(name: str, computed_default: str | None = None) -> str:
    """The variable, else Airflow's option, else its default (``defaults.py``, or computed here).
    A team's executor skips the variables, which every team of a scheduler shares."""
    if _team_options.get() is None and (value := os.environ.get(name)) is not None:
        return value
    option = _airflow_option(name)
    if option is not None:
        return option
    return DEFAULTS[name] if computed_default is None else computed_default


def _secret(name: str) -> str:
    """The variable, or else the content of the file ``<name>_FILE`` names (the Docker and
    Kubernetes convention), without its final newline, or else Airflow's option."""
    if _team_options.get() is not None:
        return (_airflow_option(name) or "").removesuffix("\n")
    if value := os.environ.get(name, ""):
        return value
    if path := os.environ.get(f"{name}_FILE", ""):
        try:
            return Path(path).read_text().removesuffix("\n")
        except OSError as exc:
            raise ValueError(f"{name}_FILE: cannot read {path!r}: {exc.strerror}") from None
    return (_airflow_option(name) or "").removesuffix("\n")  # a _CMD option's output ends with one


DEFAULT_QUEUE = "default"
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Queue names become part of topic names, so they keep to Kafka's topic characters.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _flag(name: str) -> bool:
    value = _env(name).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} is {value!r}; use true or false")
    return value in ("true", "1", "yes")


def _names(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def check_queue(name: str) -> str:
    if not QUEUE_NAME.fullmatch(name):
        raise ValueError(f"queue name {name!r} must be 1-100 characters of A-Z, a-z, 0-9, '_' or '-'")
    return name


def per_queue(name: str, queue: str) -> str:
    """A topic's or table's name for ``queue``: the default queue keeps the plain name."""
    return name if check_queue(queue) == DEFAULT_QUEUE else f"{name}.{queue}"


def _queues(value: str) -> tuple[str, ...]:
    try:
        names = tuple(dict.fromkeys(check_queue(part.strip()) for part in value.split(",") if part.strip()))
    except ValueError as exc:
        raise ValueError(f"AIRKAFKA_QUEUES: {exc}") from None
    if not names:
        raise ValueError("AIRKAFKA_QUEUES names no queue")
    return names


@dataclass(frozen=True)
class Settings:
    app_id: str = field(default_factory=lambda: _env("AIRKAFKA_APP_ID"))
    broker: str = field(default_factory=lambda: _env("AIRKAFKA_BROKER"))
    partitions: int = field(default_factory=lambda: int(_env("AIRKAFKA_PARTITIONS")))
    replication: int = field(default_factory=lambda: int(_env("AIRKAFKA_REPLICATION")))
    commands_topic: str = field(default_factory=lambda: _env("AIRKAFKA_COMMANDS_TOPIC"))
    state_changes_topic: str = field(default_factory=lambda: _env("AIRKAFKA_STATE_CHANGES_TOPIC"))
    dead_letters_topic: str = field(default_factory=lambda: _env("AIRKAFKA_DEAD_LETTERS_TOPIC"))
    queues: tuple[str, ...] = field(default_factory=lambda: _queues(_env("AIRKAFKA_QUEUES")))
    # Only workers write it, so it sits with their other topics, under ``<app id>-``.
    heartbeats_topic: str = field(
        default_factory=lambda: _env("AIRKAFKA_HEARTBEATS_TOPIC") or f"{_env('AIRKAFKA_APP_ID')}-heartbeats"
    )
    heartbeat_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_HEARTBEAT_S")))
    worker_lost_after_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_WORKER_LOST_AFTER_S")))
    # The broker's word on a dead worker: its partitions move after this long without a heartbeat.
    session_timeout_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_SESSION_TIMEOUT_S")))
    max_poll_interval_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_MAX_POLL_INTERVAL_S")))
    concurrency: int = field(default_factory=lambda: int(_env("AIRKAFKA_CONCURRENCY")))
    shell_allow: frozenset[str] = field(default_factory=lambda: _names(_env("AIRKAFKA_SHELL_ALLOW")))
    shell_env_allow: frozenset[str] = field(default_factory=lambda: _names(_env("AIRKAFKA_SHELL_ENV_ALLOW")))
    task_env_deny: frozenset[str] = field(default_factory=lambda: _names(_env("AIRKAFKA_TASK_ENV_DENY")))
    # How each task is contained (runners/containment.py), and its limits: a command's own, up to
    # the maximum (0: none), else the default (0: none).
    task_containment: str = field(default_factory=lambda: _env("AIRKAFKA_TASK_CONTAINMENT"))
    # The user and group tasks run as: they then cannot read the worker's /proc, data or venv.
    task_user: str = field(default_factory=lambda: _env("AIRKAFKA_TASK_USER"))
    task_group: str = field(default_factory=lambda: _env("AIRKAFKA_TASK_GROUP"))
    task_timeout_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_TASK_TIMEOUT_S")))
    task_timeout_max_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_TASK_TIMEOUT_MAX_S")))
    task_memory_mb: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_MEMORY_MB")))
    task_memory_max_mb: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_MEMORY_MAX_MB")))
    task_pids: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_PIDS")))
    task_pids_max: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_PIDS_MAX")))
    task_cpu_weight: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_CPU_WEIGHT")))
    task_cpu_weight_max: int = field(default_factory=lambda: int(_env("AIRKAFKA_TASK_CPU_WEIGHT_MAX")))
    data_dir: str = field(default_factory=lambda: _env("AIRKAFKA_DATA_DIR"))
    web_host: str = field(default_factory=lambda: _env("AIRKAFKA_WEB_HOST"))
    web_bind: str = field(default_factory=lambda: _env("AIRKAFKA_WEB_BIND", _env("AIRKAFKA_WEB_HOST")))
    web_port: int = field(default_factory=lambda: int(_env("AIRKAFKA_WEB_PORT")))
    web_token: str = field(default_factory=lambda: _secret("AIRKAFKA_WEB_TOKEN"), repr=False)
    web_auth_reads: bool = field(default_factory=lambda: _flag("AIRKAFKA_WEB_AUTH_READS"))
    # Signs what workers send each other (contract/signing.py); a secret the workers share.
    cluster_key: str = field(default_factory=lambda: _secret("AIRKAFKA_CLUSTER_KEY"), repr=False)
    worker_name: str = field(
        default_factory=lambda: _env("AIRKAFKA_WORKER_NAME", f"{socket.gethostname()}:{os.getpid()}")
    )
    producer_linger_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_PRODUCER_LINGER_S")))
    retention_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_RETENTION_S")))
    # How long the logs topic keeps tasks' output (contract/task_logs.py).
    log_retention_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_LOG_RETENTION_S")))
    shutdown_grace_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_SHUTDOWN_GRACE_S")))
    publish_stall_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_PUBLISH_STALL_S")))
    publish_stall_exit_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_PUBLISH_STALL_EXIT_S")))
    airflow_python: str = field(default_factory=lambda: _env("AIRKAFKA_AIRFLOW_PYTHON"))
    airflow_serve_logs: bool = field(default_factory=lambda: _flag("AIRKAFKA_AIRFLOW_SERVE_LOGS"))
    executor_group: str = field(default_factory=lambda: _env("AIRKAFKA_EXECUTOR_GROUP"))
    executor_lookback_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_EXECUTOR_LOOKBACK_S")))
    executor_delivery_timeout_s: float = field(
        default_factory=lambda: float(_env("AIRKAFKA_EXECUTOR_DELIVERY_TIMEOUT_S"))
    )
    airflow_api_url: str = field(default_factory=lambda: _env("AIRKAFKA_AIRFLOW_API_URL"))
    airflow_username: str = field(default_factory=lambda: _env("AIRKAFKA_AIRFLOW_USERNAME"))
    airflow_password: str = field(default_factory=lambda: _secret("AIRKAFKA_AIRFLOW_PASSWORD"), repr=False)
    trigger_dag_allow: frozenset[str] = field(default_factory=lambda: _names(_env("AIRKAFKA_TRIGGER_DAG_ALLOW")))
    trigger_attempts: int = field(default_factory=lambda: int(_env("AIRKAFKA_TRIGGER_ATTEMPTS")))
    trigger_poll_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_TRIGGER_POLL_S")))
    default_retry_delay_s: float = field(default_factory=lambda: float(_env("AIRKAFKA_RETRY_DELAY_S")))
    # Kafka security, for every client (see kafka_connection.py); named as librdkafka names them.
    security_protocol: str = field(default_factory=lambda: _env("AIRKAFKA_SECURITY_PROTOCOL").upper())
    sasl_mechanism: str = field(default_factory=lambda: _env("AIRKAFKA_SASL_MECHANISM").upper())
    sasl_username: str = field(default_factory=lambda: _env("AIRKAFKA_SASL_USERNAME"))
    sasl_password: str = field(default_factory=lambda: _secret("AIRKAFKA_SASL_PASSWORD"), repr=False)
    ssl_cafile: str = field(default_factory=lambda: _env("AIRKAFKA_SSL_CAFILE"))
    ssl_certfile: str = field(default_factory=lambda: _env("AIRKAFKA_SSL_CERTFILE"))
    ssl_keyfile: str = field(default_factory=lambda: _env("AIRKAFKA_SSL_KEYFILE"))
    ssl_key_password: str = field(default_factory=lambda: _secret("AIRKAFKA_SSL_KEY_PASSWORD"), repr=False)

    def __post_init__(self) -> None:
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ValueError(
                f"AIRKAFKA_SECURITY_PROTOCOL is {self.security_protocol!r}; use one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(
                    f"AIRKAFKA_SASL_MECHANISM is {self.sasl_mechanism!r}; use one of {', '.join(SASL_MECHANISMS)}"
                )
            if not (self.sasl_username and self.sasl_password):
                raise ValueError(
                    f"AIRKAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                    "AIRKAFKA_SASL_USERNAME and AIRKAFKA_SASL_PASSWORD"
                )

    def commands_topic_for(self, queue: str) -> str:
        return per_queue(self.commands_topic, queue)

    @property
    def control_topic(self) -> str:
        """Where a worker sends another one, by name, a cancel of the run it holds."""
        return f"{self.app_id}-control"

    @property
    def logs_topic(self) -> str:
        """Tasks' output, written by the workers, read by Airflow's api-server and the CLI."""
        return f"{self.app_id}-logs"

    def internal_topic_for(self, queue: str) -> str:
        """Where the workers of ``queue`` send each other reports and recovery requests: under the
        app id, with its changelogs, so one ACL on the prefix keeps both to the workers."""
        return per_queue(f"{self.app_id}-internal", queue)

    @property
    def executor_consumer_group(self) -> str:
        """One group per scheduler host: each scheduler must read every state change."""
        return self.executor_group or f"{self.app_id}-executor-{socket.gethostname()}"

    @property
    def web_auth_headers(self) -> dict[str, str]:
        """What a client of the workers' web views sends: the operator's token, if any."""
        return {"Authorization": f"Bearer {self.web_token}"} if self.web_token else {}

    @property
    def worker_url(self) -> str:
        """The web views of the worker these settings describe, as clients default to."""
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def bootstrap_servers(self) -> list[str]:
        """``kafka://a:9092;kafka://b:9092`` (Faust's form) as plain ``host:port`` entries."""
        return [url.strip().removeprefix("kafka://") for url in self.broker.split(";") if url.strip()]


def for_team(options: Callable[[str], str | None]) -> Settings:
    """A team's settings (Airflow 3's multi-team mode): each option as ``options`` gives it, by its
    name in ``[airkafka]`` (from the team's ``AIRFLOW__<TEAM>___AIRKAFKA__<NAME>`` variables or
    ``[<team>=airkafka]`` section), else its default; never from the ``AIRKAFKA_*`` variables."""
    token = _team_options.set(options)
    try:
        return Settings()
    finally:
        _team_options.reset(token)

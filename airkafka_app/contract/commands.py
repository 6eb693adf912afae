"""The command envelope on the commands topic: decoding and validation (Faust-free).

Kind-specific ``args`` are checked by the kind's runner (``airkafka_app.worker.runners``). Every byte
may be hostile: decoding either returns a Command or raises InvalidCommand, whatever the input.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

FIELDS = frozenset(
    {
        "id",
        "kind",
        "args",
        "timeout_s",
        "retries",
        "retry_delay_s",
        "serial_key",
        "limits",
        "priority_weight",
        "pool_slots",
    }
)
# A task's container limits (docs/contract.md): memory in MiB, and processes.
LIMIT_MAX = {"memory_mb": 1 << 30, "pids": 1 << 30, "cpu_weight": 10_000}
LIMIT_FIELDS = frozenset(LIMIT_MAX)
MAX_ID_LENGTH = 255
# The limits of the contract (docs/contract.md).
MAX_COMMAND_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_RETRIES = 100
MAX_TIMEOUT_S = 30 * 24 * 3600.0
MAX_RETRY_DELAY_S = 24 * 3600.0
# Airflow's priority_weight is a 32-bit integer in its database.
MAX_PRIORITY = (1 << 31) - 1
MAX_POOL_SLOTS = 1024
# How much of a hostile value a reason quotes.
SHOWN_CHARS = 80
# A JSON escape of a UTF-16 surrogate: alone, it decodes to a str that cannot be encoded again.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
CANCEL = "cancel"
# Set by `replay --force`: run the command again even though its task succeeded.
REPLAY_HEADER = "airkafka-replay"
FORCE = b"force"
# Headers named so are AirKafka's; a command may carry only the replay header. (Workers of
# earlier versions sent their internal messages as commands with such headers.)
RESERVED_HEADER_PREFIX = "airkafka-"
TRIGGER_DAG = "trigger_dag"
EVENT_FIELDS = frozenset({"command", "params"})


class InvalidCommand(ValueError):
    """The message cannot become a task; the text is the dead letter's reason."""


@dataclass(frozen=True)
class Command:
    id: str
    kind: str
    args: dict[str, Any]
    timeout_s: float | None = None
    retries: int = 0
    retry_delay_s: float | None = None
    # Tasks sharing a serial key run one after another, in the order they were sent.
    serial_key: str | None = None
    # Its container's limits (LIMIT_FIELDS); the worker's defaults fill what is missing.
    limits: dict[str, int] | None = None
    # Among a worker's tasks waiting for a run slot, the highest goes first (run_slots.py).
    priority_weight: int = 0
    # The worker's run slots it holds while it runs, as Airflow's pool_slots.
    pool_slots: int = 1

    @property
    def routing_key(self) -> str:
        """The message key, which picks the partition that owns the task."""
        return _routing_key(self.kind, self.id, self.args, self.serial_key)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, "args": self.args, "retries": self.retries}
        if self.timeout_s is not None:
            data["timeout_s"] = self.timeout_s
        if self.retry_delay_s is not None:
            data["retry_delay_s"] = self.retry_delay_s
        if self.serial_key is not None:
            data["serial_key"] = self.serial_key
        if self.limits:
            data["limits"] = self.limits
        if self.priority_weight:
            data["priority_weight"] = self.priority_weight
        if self.pool_slots != 1:
            data["pool_slots"] = self.pool_slots
        return data

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def _routing_key(kind: str, task_id: str, args: dict[str, Any], serial_key: str | None) -> str:
    # A serial key keeps its tasks on one partition, in order. A cancel travels with its
    # target, to the partition that owns it.
    if kind == CANCEL:
        return args.get("serial_key") or args["target"]
    return serial_key or task_id


def shown(text: str) -> str:
    """A value quoted in a reason, cut short: reasons land in logs and dead letters."""
    return repr(text) if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]!r}... ({len(text)} characters)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_key(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def _refuse_constant(name: str) -> None:
    raise InvalidCommand(f"{name} is not a number JSON allows")


def _nested_deeper(data: Any, limit: int) -> bool:
    level, depth = [data], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        children: list[Any] = []
        for node in level:
            children.extend(
                child
                for child in (node.values() if isinstance(node, dict) else node)
                if isinstance(child, (dict, list))
            )
        level = children
    return False


def _has_lone_surrogate(data: Any) -> bool:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def json_object(value: bytes | None) -> dict[str, Any] | None:
    """The JSON object a record of the workers' own topics holds, or None for anything else."""
    try:
        data = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def loads(text: str) -> Any:
    """JSON as the contract allows it: finite numbers, at most MAX_DEPTH levels, and strings that
    are valid Unicode. Raises InvalidCommand otherwise."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise InvalidCommand(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and numbers over Python's digit limit
        raise InvalidCommand(f"invalid JSON: {exc}") from None
    # Cheap scans first: these walks run only on input that may need them.
    if text.count("{") + text.count("[") > MAX_DEPTH and _nested_deeper(data, MAX_DEPTH):
        raise InvalidCommand(f"JSON nested deeper than {MAX_DEPTH} levels")
    if SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
        raise InvalidCommand("JSON string holds a lone UTF-16 surrogate")
    return data


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    """Parse one Kafka message into a Command, or raise InvalidCommand saying why."""
    if value is None:
        raise InvalidCommand("message has no value")
    if len(value) > MAX_COMMAND_BYTES:
        raise InvalidCommand(f"command of {len(value)} bytes is over the limit of {MAX_COMMAND_BYTES}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("value is not UTF-8") from None
    data = loads(text)
    if not isinstance(data, dict):
        raise InvalidCommand(f"command must be a JSON object, not {type(data).__name__}")
    if "command" in data and "kind" not in data:
        data = _from_event(data, key)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidCommand(f"unknown field(s): {shown(', '.join(unknown))}")

    task_id = data.get("id")
    if not _is_key(task_id):
        raise InvalidCommand(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    kind = data.get("kind")
    if not _is_key(kind):
        raise InvalidCommand(f"'kind' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    args = data.get("args")
    if not isinstance(args, dict):
        raise InvalidCommand("'args' must be a JSON object")
    if kind == CANCEL and (
        "target" not in args
        or set(args) - {"target", "serial_key"}
        or not all(_is_key(value) for value in args.values())
    ):
        raise InvalidCommand(
            'cancel \'args\' must be {"target": "<task id>"}, with the target\'s "serial_key" if it has one'
        )
    serial_key = data.get("serial_key")
    if serial_key is not None and not _is_key(serial_key):
        raise InvalidCommand(f"'serial_key' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    # A cancel may come with any key, its own id's for instance: intake sends it on to its target.
    if key is not None and kind != CANCEL:
        expected_key = _routing_key(kind, task_id, args, serial_key)
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCommand("message key is not UTF-8") from None
        if key_text != expected_key:
            what = "serial_key" if serial_key else "id"
            raise InvalidCommand(f"message key {shown(key_text)} does not match {what} {expected_key!r}")
    timeout_s = data.get("timeout_s")
    if timeout_s is not None and (not _is_number(timeout_s) or not 0 < timeout_s <= MAX_TIMEOUT_S):
        raise InvalidCommand(f"'timeout_s' must be a number of seconds over 0 and at most {MAX_TIMEOUT_S:.0f}")
    retries = data.get("retries", 0)
    if not _is_int(retries) or not 0 <= retries <= MAX_RETRIES:
        raise InvalidCommand(f"'retries' must be an integer from 0 to {MAX_RETRIES}")
    retry_delay_s = data.get("retry_delay_s")
    if retry_delay_s is not None and (not _is_number(retry_delay_s) or not 0 <= retry_delay_s <= MAX_RETRY_DELAY_S):
        raise InvalidCommand(f"'retry_delay_s' must be a number of seconds from 0 to {MAX_RETRY_DELAY_S:.0f}")
    limits = data.get("limits")
    if limits is not None and (
        not isinstance(limits, dict)
        or set(limits) - LIMIT_FIELDS
        or not all(_is_int(v) and 0 < v <= LIMIT_MAX[k] for k, v in limits.items())
    ):
        raise InvalidCommand(
            f"'limits' must map {', '.join(sorted(LIMIT_FIELDS))} to positive integers (cpu_weight at most 10000)"
        )
    priority_weight = data.get("priority_weight", 0)
    if not _is_int(priority_weight) or not -MAX_PRIORITY <= priority_weight <= MAX_PRIORITY:
        raise InvalidCommand(f"'priority_weight' must be an integer from {-MAX_PRIORITY} to {MAX_PRIORITY}")
    pool_slots = data.get("pool_slots", 1)
    if not _is_int(pool_slots) or not 1 <= pool_slots <= MAX_POOL_SLOTS:
        raise InvalidCommand(f"'pool_slots' must be an integer from 1 to {MAX_POOL_SLOTS}")
    return Command(
        task_id, kind, args, timeout_s, retries, retry_delay_s, serial_key, limits, priority_weight, pool_slots
    )


def _from_event(data: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The event-driven dispatcher's shape, ``{"command": "app.<dag_id>", "params": "<JSON>"}``,
    as a ``trigger_dag`` command. It has no id of its own: the message key is its id."""
    unknown = sorted(set(data) - EVENT_FIELDS)
    if unknown:
        raise InvalidCommand(f"unknown event field(s): {shown(', '.join(unknown))}")
    name = data["command"]
    if not isinstance(name, str) or "." not in name or not name.split(".", 1)[1] or len(name) > MAX_ID_LENGTH:
        raise InvalidCommand("event 'command' must look like 'app.<dag_id>'")
    if key is None:
        raise InvalidCommand("an event {command, params} needs a message key: the key is its task id")
    params = data.get("params", "{}")
    try:
        conf = loads(params) if isinstance(params, str) else None
    except InvalidCommand as exc:
        raise InvalidCommand(f"event 'params' is not valid: {exc}") from None
    if not isinstance(conf, dict):
        raise InvalidCommand("event 'params' must be a JSON object encoded as a string")
    try:
        task_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("message key is not UTF-8") from None
    return {"id": task_id, "kind": TRIGGER_DAG, "args": {"dag_id": name.split(".", 1)[1], "conf": conf}}

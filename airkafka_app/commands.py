"""The command envelope on the commands topic: decoding and validation (Faust-free).

Kind-specific ``args`` are checked by the kind's runner (``airkafka_app.runners``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FIELDS = frozenset({"id", "kind", "args", "timeout_s", "retries", "retry_delay_s", "serial_key"})
MAX_ID_LENGTH = 255
CANCEL = "cancel"
# Set by `replay --force`: run the command again even though its task succeeded.
REPLAY_HEADER = "airkafka-replay"
FORCE = b"force"
# Internal headers, set by workers only. Recover: a sweeper asks the owner to check the task
# for a lost worker. Report: a transition, as its record, from a worker that lost the partition.
RECOVER_HEADER = "airkafka-recover"
REPORT_HEADER = "airkafka-report"
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
        return data

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


def _routing_key(kind: str, task_id: str, args: dict[str, Any], serial_key: str | None) -> str:
    # A serial key keeps its tasks on one partition, in order. A cancel travels with its
    # target, to the partition that owns it.
    if kind == CANCEL:
        return args.get("serial_key") or args["target"]
    return serial_key or task_id


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_key(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


def decode_command(key: bytes | None, value: bytes | None) -> Command:
    """Parse one Kafka message into a Command, or raise InvalidCommand saying why."""
    if value is None:
        raise InvalidCommand("message has no value")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("value is not UTF-8") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidCommand(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidCommand(f"command must be a JSON object, not {type(data).__name__}")
    if "command" in data and "kind" not in data:
        data = _from_event(data, key)
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise InvalidCommand(f"unknown field(s): {', '.join(unknown)}")

    task_id = data.get("id")
    if not _is_key(task_id):
        raise InvalidCommand(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InvalidCommand("'kind' must be a non-empty string")
    args = data.get("args")
    if not isinstance(args, dict):
        raise InvalidCommand("'args' must be a JSON object")
    if kind == CANCEL and ("target" not in args or set(args) - {"target", "serial_key"}
                           or not all(_is_key(value) for value in args.values())):
        raise InvalidCommand("cancel 'args' must be {\"target\": \"<task id>\"}, with the target's "
                             "\"serial_key\" if it has one")
    serial_key = data.get("serial_key")
    if serial_key is not None and not _is_key(serial_key):
        raise InvalidCommand(f"'serial_key' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    expected_key = _routing_key(kind, task_id, args, serial_key)
    if key is not None:
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCommand("message key is not UTF-8") from None
        if key_text != expected_key:
            what = "the cancel's target" if kind == CANCEL else "serial_key" if serial_key else "id"
            raise InvalidCommand(f"message key {key_text!r} does not match {what} {expected_key!r}")
    timeout_s = data.get("timeout_s")
    if timeout_s is not None and (not _is_number(timeout_s) or timeout_s <= 0):
        raise InvalidCommand("'timeout_s' must be a positive number")
    retries = data.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise InvalidCommand("'retries' must be a non-negative integer")
    retry_delay_s = data.get("retry_delay_s")
    if retry_delay_s is not None and (not _is_number(retry_delay_s) or retry_delay_s < 0):
        raise InvalidCommand("'retry_delay_s' must be a non-negative number")
    return Command(task_id, kind, args, timeout_s, retries, retry_delay_s, serial_key)


def _from_event(data: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The event-driven dispatcher's shape, ``{"command": "app.<dag_id>", "params": "<JSON>"}``,
    as a ``trigger_dag`` command. It has no id of its own: the message key is its id."""
    unknown = sorted(set(data) - EVENT_FIELDS)
    if unknown:
        raise InvalidCommand(f"unknown event field(s): {', '.join(unknown)}")
    name = data["command"]
    if not isinstance(name, str) or "." not in name or not name.split(".", 1)[1]:
        raise InvalidCommand("event 'command' must look like 'app.<dag_id>'")
    if key is None:
        raise InvalidCommand("an event {command, params} needs a message key: the key is its task id")
    params = data.get("params", "{}")
    try:
        conf = json.loads(params) if isinstance(params, str) else None
    except json.JSONDecodeError as exc:
        raise InvalidCommand(f"event 'params' is not valid JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise InvalidCommand("event 'params' must be a JSON object encoded as a string")
    try:
        task_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidCommand("message key is not UTF-8") from None
    return {"id": task_id, "kind": TRIGGER_DAG, "args": {"dag_id": name.split(".", 1)[1], "conf": conf}}

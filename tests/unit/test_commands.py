import json

import pytest

from airkafka_app.contract.commands import InvalidCommand, decode_command
from airkafka_app.contract.dead_letters import dead_letter


def encode(**fields) -> bytes:
    return json.dumps(fields).encode()


def valid(**overrides) -> dict:
    return {"id": "t1", "kind": "shell", "args": {"argv": ["true"]}, **overrides}


def test_decodes_a_full_command():
    command = decode_command(b"t1", encode(**valid(timeout_s=2.5, retries=3, retry_delay_s=0)))
    assert (command.id, command.kind, command.args) == ("t1", "shell", {"argv": ["true"]})
    assert (command.timeout_s, command.retries, command.retry_delay_s) == (2.5, 3, 0)


def test_keyless_command_is_accepted_with_its_id():
    assert decode_command(None, encode(**valid())).id == "t1"


def test_round_trips_through_encode():
    command = decode_command(
        b"t1", encode(**valid(timeout_s=1, limits={"memory_mb": 64, "pids": 10}, priority_weight=-3, pool_slots=2))
    )
    assert (command.priority_weight, command.pool_slots) == (-3, 2)
    assert decode_command(b"t1", command.encode()) == command


@pytest.mark.parametrize(
    "key, value, reason",
    [
        (b"t1", None, "no value"),
        (b"t1", b"\xff\xfe", "not UTF-8"),
        (b"t1", b"{nope", "invalid JSON"),
        (b"t1", b"[1, 2]", "must be a JSON object, not list"),
        (b"t1", encode(**valid(extra=1)), "unknown field(s): 'extra'"),
        (b"t1", encode(kind="shell", args={}), "'id' must be"),
        (b"t1", encode(**valid(id="")), "'id' must be"),
        (b"t1", encode(**valid(id=7)), "'id' must be"),
        (b"other", encode(**valid()), "does not match id"),
        (b"\xff", encode(**valid()), "key is not UTF-8"),
        (b"t1", encode(**valid(kind=None)), "'kind' must be"),
        (b"t1", encode(**valid(args=["true"])), "'args' must be"),
        (b"t1", encode(**valid(timeout_s=0)), "'timeout_s'"),
        (b"t1", encode(**valid(timeout_s=True)), "'timeout_s'"),
        (b"t1", encode(**valid(retries=-1)), "'retries'"),
        (b"t1", encode(**valid(retries=1.5)), "'retries'"),
        (b"t1", encode(**valid(retry_delay_s="1")), "'retry_delay_s'"),
        (b"t1", encode(**valid(limits={"memory_mb": 0})), "'limits' must map cpu_weight, memory_mb, pids to positive"),
        (b"t1", encode(**valid(limits={"cpu": 1})), "'limits' must map"),
        (b"t1", encode(**valid(limits={"pids": True})), "'limits' must map"),
        (b"t1", encode(**valid(limits=[64])), "'limits' must map"),
        (b"t1", encode(**valid(priority_weight=1.5)), "'priority_weight' must be an integer"),
        (b"t1", encode(**valid(priority_weight=1 << 31)), "'priority_weight' must be an integer"),
        (b"t1", encode(**valid(pool_slots=0)), "'pool_slots' must be an integer from 1 to 1024"),
        (b"t1", encode(**valid(pool_slots=True)), "'pool_slots' must be an integer"),
    ],
)
def test_rejects_with_a_reason(key, value, reason):
    with pytest.raises(InvalidCommand, match=None) as info:
        decode_command(key, value)
    assert reason in str(info.value)


def test_dead_letter_keeps_text_or_base64():
    letter = dead_letter("bad", "cmds", 3, 42, b"k", b"\xff")
    assert letter == {"error": "bad", "topic": "cmds", "partition": 3, "offset": 42, "key": "k", "value_b64": "/w=="}
    assert dead_letter("bad", "cmds", 0, 0, None, b"{}")["value"] == "{}"


def test_a_cancel_is_keyed_by_its_target():
    cancel = {"id": "c1", "kind": "cancel", "args": {"target": "t9"}}
    assert decode_command(b"t9", encode(**cancel)).routing_key == "t9"
    assert decode_command(None, encode(**cancel)).routing_key == "t9"
    assert decode_command(b"c1", encode(**cancel)).routing_key == "t9"  # intake sends it on
    with pytest.raises(InvalidCommand, match="cancel 'args' must be"):
        decode_command(b"t9", encode(id="c1", kind="cancel", args={"target": ""}))


def test_the_dispatcher_event_shape_becomes_a_trigger_dag_command():
    event = {"command": "app.send_email_alert", "params": json.dumps({"to": "ops@example.com"})}
    command = decode_command(b"evt-1", encode(**event))
    assert (command.id, command.kind) == ("evt-1", "trigger_dag")
    assert command.args == {"dag_id": "send_email_alert", "conf": {"to": "ops@example.com"}}


@pytest.mark.parametrize(
    "key, event, reason",
    [
        (None, {"command": "app.x", "params": "{}"}, "needs a message key"),
        (b"k", {"command": "nodot", "params": "{}"}, "must look like 'app.<dag_id>'"),
        (b"k", {"command": "app.x", "params": "{nope"}, "'params' is not valid: invalid JSON"),
        (b"k", {"command": "app.x", "params": "[1]"}, "JSON object encoded as a string"),
        (b"k", {"command": "app.x", "params": {"a": 1}}, "JSON object encoded as a string"),
        (b"k", {"command": "app.x", "params": "{}", "extra": 1}, "unknown event field(s): 'extra'"),
    ],
)
def test_bad_dispatcher_events_are_refused(key, event, reason):
    with pytest.raises(InvalidCommand) as info:
        decode_command(key, encode(**event))
    assert reason in str(info.value)


def test_a_serial_command_is_keyed_by_its_serial_key():
    command = {"id": "run-2", "kind": "shell", "args": {"argv": ["true"]}, "serial_key": "customer-7"}
    decoded = decode_command(b"customer-7", encode(**command))
    assert decoded.serial_key == "customer-7" and decoded.routing_key == "customer-7"
    assert decode_command(decoded.routing_key.encode(), decoded.encode()) == decoded
    assert decode_command(None, encode(**command)).routing_key == "customer-7"
    with pytest.raises(InvalidCommand, match="does not match serial_key 'customer-7'"):
        decode_command(b"run-2", encode(**command))
    with pytest.raises(InvalidCommand, match="'serial_key' must be a non-empty string"):
        decode_command(None, encode(**{**command, "serial_key": ""}))


def test_a_cancel_of_a_serial_task_travels_with_its_serial_key():
    cancel = {"id": "c2", "kind": "cancel", "args": {"target": "run-2", "serial_key": "customer-7"}}
    assert decode_command(b"customer-7", encode(**cancel)).routing_key == "customer-7"
    with pytest.raises(InvalidCommand, match="cancel 'args' must be"):
        decode_command(None, encode(id="c3", kind="cancel", args={"target": "t", "other": "x"}))

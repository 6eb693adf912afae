"""Every input is a command or an InvalidCommand, never another exception: fuzzed with hypothesis.

The decoder and each runner's check run on arbitrary bytes, on arbitrary JSON values, and on
commands whose every field is mutated. Whatever comes out must also survive the steps that
follow a valid command: its routing key, its encoding, and its record's JSON.
"""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airkafka_app.contract.commands import Command, InvalidCommand, decode_command
from airkafka_app.contract.dead_letters import MAX_VALUE_BYTES, dead_letter, encode_dead_letter
from airkafka_app.contract.internal import decode_internal
from airkafka_app.contract.task_record import TaskRecord
from airkafka_app.worker.runners.airflow import AirflowRunner
from airkafka_app.worker.runners.shell import ShellRunner
from airkafka_app.worker.runners.trigger_dag import AirflowApi, TriggerDagRunner

RUNNERS = {
    "shell": ShellRunner(allow={"true", "sh"}, env_allow={"APP_*", "PATH"}),
    "airflow": AirflowRunner("/usr/bin/false"),
    "trigger_dag": TriggerDagRunner(AirflowApi("http://127.0.0.1:1", "", "", 1), 1.0, ["*"]),
}
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(["id", "kind", "args", "timeout_s", "retries", "retry_delay_s", "serial_key", "x"])
kinds = st.sampled_from(["shell", "airflow", "trigger_dag", "cancel"]) | st.text(max_size=5)
arg_names = st.sampled_from(
    ["argv", "env", "cwd", "workload", "external_executor_id", "dag_id", "conf", "wait", "target", "serial_key"]
) | st.text(max_size=4)
texts = st.text() | st.sampled_from(["true", "sh", "\0", "A=B", "PATH", "APP_X", "LD_PRELOAD", "\ud800", "{"])
args = st.dictionaries(
    arg_names, json_values | st.lists(texts, max_size=3) | st.dictionaries(texts, texts, max_size=3) | texts, max_size=4
)


def accepted(key: bytes | None, value: bytes | None) -> Command | None:
    """What intake does up to the run: decode, then the kind's runner checks the args."""
    try:
        command = decode_command(key, value)
        if command.kind in RUNNERS:
            RUNNERS[command.kind].check(command)
    except InvalidCommand as exc:
        assert str(exc)
        return None
    # A valid command survives what follows: its key, its encoding, its record.
    command.routing_key.encode()
    assert decode_command(command.routing_key.encode(), command.encode()) == command
    json.dumps(TaskRecord.new_attempt(command.to_json(), None, "w").to_json()).encode()
    return command


@FUZZ
@given(st.none() | st.binary(max_size=64), st.none() | st.binary(max_size=256))
def test_any_bytes(key, value):
    accepted(key, value)


@FUZZ
@given(json_values)
def test_any_json_value(value):
    accepted(None, json.dumps(value).encode())


@FUZZ
@given(st.dictionaries(fields, json_values, max_size=7), kinds, args, st.booleans())
def test_commands_with_any_field_mutated(envelope, kind, arguments, keyed):
    command = {"id": "t", "kind": kind, "args": arguments, **envelope}
    value = json.dumps(command).encode()
    key = str(command.get("serial_key") or command.get("id")).encode(errors="replace") if keyed else None
    accepted(key, value)


@FUZZ
@given(
    st.binary(max_size=2 * MAX_VALUE_BYTES) | st.text(max_size=MAX_VALUE_BYTES).map(str.encode),
    st.none() | st.binary(max_size=4096),
    st.text(),
)
def test_a_dead_letter_fits_whatever_it_quotes(value, key, error):
    letter = encode_dead_letter(dead_letter(error, "t", 0, 0, key, value))
    assert len(letter) < 512 * 1024
    json.loads(letter)


@FUZZ
@given(
    st.none()
    | st.binary(max_size=128)
    | json_values.map(lambda v: json.dumps({"report": v}).encode())
    | json_values.map(lambda v: json.dumps({"recover": v}).encode())
)
def test_any_internal_message(value):
    try:
        decode_internal(value)
    except InvalidCommand:
        pass


def test_deep_and_huge_inputs_are_refused_not_raised():
    for value in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": 1' + b"0" * 5000 + b"}",
        b"x" * (2 << 20),
        b'{"id": "t", "kind": "shell", "args": {}, "timeout_s": NaN}',
        b'{"id": "t", "kind": "shell", "args": {}, "timeout_s": 1e999}',
        b'{"id": "\\ud800", "kind": "shell", "args": {}}',
    ):
        assert accepted(None, value) is None


def test_a_dead_letter_is_listed_with_its_reason_and_a_safe_start_of_its_value():
    from airkafka_app.contract.dead_letters import SHOWN_VALUE_CHARS, dead_letter, encode_dead_letter, listing

    big = b'{"x": "' + b"a" * 100_000 + b'"}'
    shown = listing(encode_dead_letter(dead_letter("too big", "cmds", 1, 7, b"k1", big)), 1_000_000)
    assert shown["reason"] == "too big" and shown["key"] == "k1" and shown["source"] == "cmds:1@7"
    assert shown["size"] == len(big) and shown["truncated"] and len(shown["value"]) == SHOWN_VALUE_CHARS
    binary = listing(encode_dead_letter(dead_letter("not UTF-8", "cmds", 0, 1, None, b"\xff\xfe")), 0)
    assert binary["value"].startswith("(base64) ") and binary["size"] == 2 and not binary["truncated"]
    assert listing(b"not json", 0) is None and listing(b'{"no": "error"}', 0) is None

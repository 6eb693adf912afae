"""Hostile and broken input on the real broker: every message ends as a task or a dead letter with
its reason, the worker stays up, tasks running beside finish, valid work sent after completes,
and a task never sees the worker's secrets.
"""

import asyncio
import json
import time

import requests
from aiokafka import AIOKafkaProducer

from scripts.local_deployment import Deployment, report, shell
from tests.transitions import published_as

FAST_LOSS = {"AIRKAFKA_HEARTBEAT_S": "1", "AIRKAFKA_WORKER_LOST_AFTER_S": "6"}


def command(task_id: str, **fields) -> bytes:
    return json.dumps({"id": task_id, "kind": "shell", **fields}).encode()


HOSTILE = {
    # key: (value, part of the dead letter's reason)
    b"deep": (
        b'{"id": "deep", "kind": "shell", "args": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
        "nested deeper than 32",
    ),
    b"huge": (b'{"id": "huge", "pad": "' + b"x" * 1_040_000 + b'"}', "unknown field(s): 'pad'"),
    b"nul-argv": (command("nul-argv", args={"argv": ["sh", "-c", "true\u0000"]}), "argv[2] holds a NUL byte"),
    b"nul-env": (command("nul-env", args={"argv": ["true"], "env": {"APP_A": "x\u0000"}}), "holds a NUL byte"),
    b"eq-env": (command("eq-env", args={"argv": ["true"], "env": {"APP_A=B": "x"}}), "env name 'APP_A=B'"),
    b"nul-cwd": (command("nul-cwd", args={"argv": ["true"], "cwd": "/tmp\u0000"}), "cwd holds a NUL byte"),
    b"path": (command("path", args={"argv": ["true"], "env": {"PATH": "/tmp"}}), "could change which program"),
    b"preload": (
        command("preload", args={"argv": ["sh"], "env": {"LD_PRELOAD": "/tmp/x.so"}}),
        "could change which program",
    ),
    b"bash-env": (
        command("bash-env", args={"argv": ["sh"], "env": {"BASH_ENV": "/tmp/x"}}),
        "could change which program",
    ),
    b"nan": (b'{"id": "nan", "kind": "shell", "args": {"argv": ["true"]}, "timeout_s": NaN}', "NaN"),
    b"retries": (command("retries", args={"argv": ["true"]}, retries=10**6), "'retries' must be"),
    b"surrogate": (b'{"id": "\\ud800", "kind": "shell", "args": {"argv": ["true"]}}', "lone UTF-16 surrogate"),
    # 480 KB here, but 1.4 MB in its record, where each character is escaped.
    b"big-record": (
        json.dumps(
            {"id": "big-record", "kind": "shell", "args": {"argv": ["true", *["é" * 60_000] * 4]}}, ensure_ascii=False
        ).encode(),
        "would not fit a changelog message",
    ),
}


def test_hostile_commands_become_dead_letters_beside_running_tasks(deployment):
    worker = deployment.worker("sturdy", AIRKAFKA_SHELL_ENV_ALLOW="APP_*", **FAST_LOSS).start().wait_ready()
    try:
        deployment.send_commands(*(shell(f"beside{n}", "sleep", "3") for n in range(4)))
        deployment.read(deployment.state_changes, lambda r: sum(x["value"]["state"] == "running" for x in r) >= 4)
        deployment.send_to(
            deployment.commands, [(key, value) for key, (value, _) in HOSTILE.items()], max_request_size=2 << 20
        )
        forged = [
            (b"forged", command("forged", args={"argv": ["true"]}), [("airkafka-report", b"{not json")]),
            (b"recover", command("recover", args={"argv": ["true"]}), [("airkafka-recover", b"1")]),
        ]
        deployment.send_to(deployment.commands, forged)
        deployment.send_to(
            deployment.internal,
            [
                (b"r1", b"{not json"),
                (b"r2", b'{"report": {"id": "r2"}}'),
                (b"r3", b'{"recover": {"id": "r3", "kind": "shell"}}'),
                (b"r4", b'{"report": {"id": "r4"}, "recover": {}}'),
            ],
        )
        deployment.send_to(
            deployment.heartbeats, [(b"x", b"{not json"), (b"y", b'{"worker": 1, "at": "now"}'), (b"z", b"[]")]
        )
        after = [shell(f"after{n}", "true") for n in range(20)]
        deployment.send_commands(*after)
        expected = len(HOSTILE) + len(forged) + 4
        letters = {
            letter["value"]["key"]: letter["value"]
            for letter in deployment.read(deployment.dead_letters, lambda r: len(r) >= expected, timeout=90)
        }
        changes = deployment.state_changes_until_terminal(
            [f"beside{n}" for n in range(4)] + [c["id"] for c in after], timeout=90
        )
        for key, (_, reason) in HOSTILE.items():
            assert reason in letters[key.decode()]["error"], (key, letters[key.decode()])
        assert "reserved to AirKafka's workers" in letters["forged"]["error"]
        assert "reserved to AirKafka's workers" in letters["recover"]["error"]
        assert {"r1", "r2", "r3", "r4"} <= letters.keys()
        assert all(letter["error"] for letter in letters.values())
        huge = letters["huge"]
        assert huge["value_length"] == len(HOSTILE[b"huge"][0]) and len(huge["value"]) == 64 * 1024
        assert all(c[-1]["state"] == "success" for c in changes.values()), changes
        assert worker.process.poll() is None and worker.get("/health/")[0] == 200
        assert "heartbeat" in worker.log() and "skipped" in worker.log()
        print(
            f"\n{len(letters)} hostile messages became dead letters beside 4 running tasks; "
            f"{len(after)} commands sent after them succeeded"
        )
    finally:
        worker.stop()


ANCESTORS = (
    'p=$PPID; while [ "$p" -gt 1 ]; do tr "\\0" "\\n" < /proc/$p/environ | grep -a "AIRKAFKA_WEB_TOKEN\\|SECRET\\|TOKEN"; '
    "p=$(cut -d ' ' -f 4 /proc/$p/stat); done; true"
)


def test_a_task_never_sees_the_workers_secrets(deployment):
    secrets = {
        "AIRKAFKA_WEB_TOKEN": "s3cret-web-token",
        "AIRKAFKA_AIRFLOW_PASSWORD": "s3cret-airflow-password",
        "AIRFLOW__API_AUTH__JWT_SECRET": "s3cret-jwt",
        "SERVICE_TOKEN": "s3cret-service-token",
    }
    token = secrets["AIRKAFKA_WEB_TOKEN"]
    worker = (
        deployment.worker(
            "vault",
            AIRKAFKA_SHELL_ALLOW="env,sh",
            AIRKAFKA_SHELL_ENV_ALLOW="APP_*",
            AIRKAFKA_WEB_AUTH_READS="true",
            **secrets,
        )
        .start()
        .wait_ready()
    )
    try:
        deployment.send_commands(
            shell("alone", "env"),
            {
                "id": "visible",
                "kind": "shell",
                "args": {"argv": ["sh", "-c", "env; echo $APP_NOTE"], "env": {"APP_NOTE": "p4ssed-in"}},
            },
            *(shell(f"beside{n}", "env") for n in range(3)),
            # Every ancestor's environment as exec gave it, the worker's included.
            shell("ancestors", "sh", "-c", ANCESTORS),
        )
        ids = ["alone", "visible", *(f"beside{n}" for n in range(3)), "ancestors"]
        changes = deployment.state_changes_until_terminal(ids)
        assert all(c[-1]["state"] == "success" for c in changes.values()), changes
        assert "p4ssed-in" in changes["visible"][-1]["detail"]  # the task saw it
        assert "AIRKAFKA_WEB_TOKEN=" in changes["ancestors"][-1]["detail"]  # the name is left, not the value
        assert "PATH=" in changes["alone"][-1]["detail"]  # and the rest of the worker's environment
        assert worker.get("/tasks/visible/")[0] == worker.get("/stats/")[0] == 401  # reads need the token
        status, record = worker.get("/tasks/visible/", token)
        assert status == 200 and record["command"]["args"]["env"] == {"APP_NOTE": "<redacted>"}
        assert requests.get(f"{worker.url}/table/", timeout=10).status_code == 404  # Faust's raw table pages
        seen = json.dumps([worker.get(f"/tasks/{i}/", token)[1] for i in ids] + [worker.get("/tasks/", token)[1]])
        changelog = deployment.read(f"{deployment.name}-tasks-changelog", lambda r: len(r) >= len(ids))
        everywhere = seen + json.dumps(changes) + json.dumps(changelog, default=repr) + worker.log()
        for name, value in secrets.items():
            assert value not in everywhere, name
        assert "tasks will not inherit" in worker.log() and "AIRKAFKA_WEB_TOKEN" in worker.log()
    finally:
        worker.stop()


def test_a_report_is_stored_whatever_runners_the_owner_has(broker, tmp_path):
    """A report's class is decided before any runner check: its record is stored even when this
    worker could not run the task's program itself."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("owner", **FAST_LOSS).start().wait_ready()
    try:
        detail = "ran on a worker that allows rm"
        rm = shell("elsewhere", "rm", "-f", "/tmp/x", retries=0)
        deployment.send_signed(deployment.internal, [report(rm, "success", "other", detail=detail)])
        deadline = time.monotonic() + 30
        while (found := worker.get("/tasks/elsewhere/"))[0] != 200:
            assert time.monotonic() < deadline, worker.log()[-2000:]
            time.sleep(0.2)
        assert found[1]["state"] == "success" and found[1]["detail"] == detail
        assert worker.get("/stats/")[1]["dead_letters"] == 0
    finally:
        worker.stop()


def test_a_heartbeat_from_the_future_does_not_keep_a_lost_worker_alive(deployment):
    worker = deployment.worker("judge", **FAST_LOSS).start().wait_ready()
    try:
        deployment.send_signed(deployment.internal, [report(shell("orphan", "true", retries=1), "running", "ghost")])
        future = json.dumps({"worker": "ghost", "at": time.time() + 86400}).encode()
        deployment.send_signed(deployment.heartbeats, [(b"ghost", future)])
        changes = deployment.state_changes_until_terminal(["orphan"], timeout=60)
        assert published_as([c["state"] for c in changes["orphan"]], ["up_for_retry", "running", "success"]), changes
        assert changes["orphan"][0]["detail"].startswith("worker ghost lost")
    finally:
        worker.stop()


def test_commands_in_every_compression_kafka_allows_are_run(deployment):
    """A producer may compress with any of Kafka's codecs; one the worker could not read stopped it."""
    worker = deployment.worker("codecs").start().wait_ready()
    try:
        ids = []
        for codec in ("gzip", "snappy", "lz4", "zstd"):
            ids.append(f"packed-{codec}")
            asyncio.run(_send_compressed(deployment, codec, shell(ids[-1], "true")))
        changes = deployment.state_changes_until_terminal(ids)
        assert all(c[-1]["state"] == "success" for c in changes.values())
        assert worker.process.poll() is None
    finally:
        worker.stop()


async def _send_compressed(deployment, codec: str, command: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=deployment.bootstrap, compression_type=codec)
    await producer.start()
    try:
        await producer.send_and_wait(deployment.commands, json.dumps(command).encode(), key=command["id"].encode())
    finally:
        await producer.stop()

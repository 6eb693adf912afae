"""One worker on the real broker: outcomes, bad input, duplicates, retries, concurrency and views."""

import json
import time

import pytest
import requests

from scripts.local_deployment import shell
from tests.processes import is_running
from tests.transitions import published_as

CONCURRENCY = 4
WEB_TOKEN = "web-token-for-tests"


@pytest.fixture(scope="module")
def worker(deployment):
    worker = deployment.worker("w1", AIRKAFKA_CONCURRENCY=str(CONCURRENCY), AIRKAFKA_WEB_TOKEN=WEB_TOKEN)
    worker.start().wait_ready()
    yield worker
    worker.stop()


def states(changes: list[dict]) -> list[str]:
    return [c["state"] for c in changes]


def test_outcomes_are_reported_in_transition_order(deployment, worker):
    deployment.send_commands(
        shell("ok", "true"),
        shell("exit127", "sh", "-c", "echo gone >&2; exit 127"),
        shell("slow", "sleep", "30", timeout_s=0.5),
    )
    changes = deployment.state_changes_until_terminal(["ok", "exit127", "slow"])
    assert published_as(states(changes["ok"]), ["queued", "running", "success"])
    assert published_as(states(changes["exit127"]), ["queued", "running", "failed"])
    assert changes["exit127"][-1]["exit_code"] == 127 and "gone" in changes["exit127"][-1]["detail"]
    assert published_as(states(changes["slow"]), ["queued", "running", "failed"])
    assert changes["slow"][-1]["detail"].startswith("timeout after 0.5s")
    for change in changes["ok"]:
        assert change["worker"] == "w1" and change["attempt"] == 1
    status, record = worker.get("/tasks/exit127/")
    assert status == 200 and record["state"] == "failed" and record["exit_code"] == 127


BAD_INPUTS = [
    (b"nojson", b"{not json", "invalid JSON"),
    (b"latin", "caf\xe9".encode("latin-1"), "value is not UTF-8"),
    (b"array", b"[1]", "must be a JSON object"),
    (b"noid", json.dumps({"kind": "shell", "args": {"argv": ["true"]}}).encode(), "'id' must be"),
    (b"wrongtype", json.dumps({"id": "wrongtype", "kind": "shell", "args": {"argv": "true"}}).encode(), "args.argv"),
    (b"kind", json.dumps({"id": "kind", "kind": "python", "args": {}}).encode(), "unknown kind 'python'"),
    (b"other-key", json.dumps(shell("real-id", "true")).encode(), "does not match id"),
    (b"empty", None, "no value"),
]


def test_every_bad_input_becomes_a_dead_letter_and_the_worker_goes_on(deployment, worker):
    deployment.send([(key, value) for key, value, _ in BAD_INPUTS])
    deployment.send_commands(shell("after-bad", "true"))
    letters = deployment.read(deployment.dead_letters, lambda r: len(r) >= len(BAD_INPUTS))
    by_key = {r["key"]: r["value"] for r in letters}
    for key, _, reason in BAD_INPUTS:
        letter = by_key[key]
        assert reason in letter["error"], (key, letter)
        assert letter["topic"] == deployment.commands and isinstance(letter["offset"], int)
    assert "value_b64" in by_key[b"latin"] and by_key[b"nojson"]["value"] == "{not json"
    assert states(deployment.state_changes_until_terminal(["after-bad"])["after-bad"])[-1] == "success"
    assert worker.get("/stats/")[1]["dead_letters"] >= len(BAD_INPUTS)


def test_refused_program_is_never_executed(deployment, worker, tmp_path):
    target = tmp_path / "must-not-exist"
    command = {"id": "refused", "kind": "shell", "args": {"argv": ["rm", str(target)]}}
    deployment.send_commands(command, shell("refused-touch", "/usr/bin/touch", str(target)))
    letters = deployment.read(
        deployment.dead_letters, lambda r: {b"refused", b"refused-touch"} <= {x["key"] for x in r}
    )
    errors = {r["key"]: r["value"]["error"] for r in letters}
    assert "'rm' is not on AIRKAFKA_SHELL_ALLOW" in errors[b"refused"]
    assert "'/usr/bin/touch' is not on AIRKAFKA_SHELL_ALLOW" in errors[b"refused-touch"]
    assert not target.exists()
    assert worker.get("/tasks/refused/")[0] == 404


def test_keyless_command_is_rekeyed_by_its_id(deployment, worker):
    deployment.send([(None, json.dumps(shell("keyless", "true")).encode())])
    changes = deployment.state_changes_until_terminal(["keyless"])["keyless"]
    assert published_as(states(changes), ["queued", "running", "success"])
    assert worker.get("/tasks/keyless/")[1]["state"] == "success"


def test_duplicates_are_counted_not_run(deployment, worker, tmp_path):
    runs = tmp_path / "runs"
    command = shell("dup", "sh", "-c", f"sleep 1; echo run >> {runs}")
    before = worker.get("/stats/")[1]["duplicates"]
    deployment.send_commands(command, command)  # the second arrives while the first is queued or running
    deployment.state_changes_until_terminal(["dup"])
    deployment.send_commands(command)  # and this one after success
    deployment.send_commands(shell("dup-marker", "true"))
    changes = deployment.state_changes_until_terminal(["dup", "dup-marker"])
    assert published_as(states(changes["dup"]), ["queued", "running", "success"])
    assert runs.read_text() == "run\n"
    assert worker.get("/stats/")[1]["duplicates"] == before + 2


def test_a_failed_task_sent_again_runs_as_its_next_attempt(deployment, worker, tmp_path):
    marker = tmp_path / "second-time"
    command = shell("again", "sh", "-c", f"test -f {marker} || {{ touch {marker}; exit 3; }}")
    deployment.send_commands(command)
    assert deployment.state_changes_until_terminal(["again"])["again"][-1]["exit_code"] == 3
    deployment.send_commands(command)
    changes = deployment.read(
        deployment.state_changes,
        lambda r: [x["value"]["state"] for x in r if x["value"]["id"] == "again"].count("success") == 1,
    )
    attempts = [(c["value"]["state"], c["value"]["attempt"]) for c in changes if c["value"]["id"] == "again"]
    expected = [("queued", 1), ("running", 1), ("failed", 1), ("queued", 2), ("running", 2), ("success", 2)]
    assert published_as(attempts, expected)


def test_retries_show_up_for_retry_then_succeed(deployment, worker, tmp_path):
    marker = tmp_path / "tried"
    command = shell(
        "retry", "sh", "-c", f"test -f {marker} || {{ touch {marker}; exit 1; }}", retries=2, retry_delay_s=0.1
    )
    deployment.send_commands(command)
    changes = deployment.state_changes_until_terminal(["retry"])["retry"]
    expected = [("queued", 1), ("running", 1), ("up_for_retry", 1), ("running", 2), ("success", 2)]
    assert published_as([(c["state"], c["attempt"]) for c in changes], expected)


def test_runs_in_parallel_up_to_the_concurrency_limit(deployment, worker):
    ids = [f"par{i}" for i in range(3 * CONCURRENCY)]
    deployment.send_commands(*(shell(i, "sleep", "0.5") for i in ids))
    deployment.state_changes_until_terminal(ids)
    records = [worker.get(f"/tasks/{i}/")[1] for i in ids]
    edges = sorted([(r["started_at"], 1) for r in records] + [(r["ended_at"], -1) for r in records])
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == CONCURRENCY


def test_views(deployment, worker):
    deployment.send_commands(shell("view-ok", "true"), shell("view-bad", "sh", "-c", "exit 2"))
    deployment.state_changes_until_terminal(["view-ok", "view-bad"])
    status, body = worker.get("/tasks/no-such-task/")
    assert status == 404 and "no-such-task" in body["error"]
    status, body = worker.get("/tasks/?state=failed&limit=500")
    assert status == 200 and {t["state"] for t in body["tasks"]} == {"failed"}
    assert "view-bad" in {t["id"] for t in body["tasks"]} and body["count"] == len(body["tasks"])
    assert len(worker.get("/tasks/?limit=1")[1]["tasks"]) == 1
    assert worker.get("/tasks/?state=bogus")[0] == 400
    stats = worker.get("/stats/")[1]
    assert stats["tasks"]["success"] >= 1 and stats["tasks"]["failed"] >= 1
    assert sum(stats["tasks"].values()) == worker.get("/tasks/?limit=1")[1]["count"]
    health = worker.get("/health/")[1]
    assert {k: health[k] for k in ("status", "worker", "kinds", "partitions")} == {
        "status": "ok",
        "worker": "w1",
        "kinds": ["shell"],
        "partitions": {"default": [0, 1, 2, 3]},
    }
    assert "airflow runner disabled: AIRKAFKA_AIRFLOW_PYTHON is not set" in worker.log()
    assert "trigger_dag runner disabled: AIRKAFKA_TRIGGER_DAG_ALLOW is empty" in worker.log()


def cancel(task_id: str, target: str) -> dict:
    return {"id": task_id, "kind": "cancel", "args": {"target": target}}


def test_cancel_kills_a_running_task_and_its_children(deployment, worker, tmp_path):
    marker = tmp_path / "child.pid"
    deployment.send_commands(shell("long", "sh", "-c", f"sleep 60 & echo $! > {marker}; wait"))
    deployment.read(
        deployment.state_changes,
        lambda r: any(x["value"]["id"] == "long" and x["value"]["state"] == "running" for x in r),
    )
    while not marker.exists() or not marker.read_text().strip():
        time.sleep(0.05)
    deployment.send([(b"long", json.dumps(cancel("stop-long", "long")).encode())])
    changes = deployment.state_changes_until_terminal(["long"])["long"]
    assert published_as(states(changes), ["queued", "running", "cancelled"])
    assert changes[-1]["detail"] == "cancelled by stop-long"
    child = int(marker.read_text())
    deadline = time.monotonic() + 3
    while is_running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(child)


def test_the_cancel_view_needs_the_web_token(deployment, worker):
    deployment.send_commands(shell("web-long", "sleep", "60"))
    deployment.read(
        deployment.state_changes,
        lambda r: any(x["value"]["id"] == "web-long" and x["value"]["state"] == "running" for x in r),
    )
    url = f"{worker.url}/tasks/web-long/cancel/"
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert worker.get("/tasks/web-long/")[1]["state"] == "running"  # reading needs no token
    response = requests.post(url, headers={"Authorization": f"Bearer {WEB_TOKEN}"}, timeout=10)
    assert response.status_code == 202 and response.json()["target"] == "web-long"
    changes = deployment.state_changes_until_terminal(["web-long"])["web-long"]
    assert published_as(states(changes), ["queued", "running", "cancelled"])
    assert changes[-1]["detail"] == f"cancelled by {response.json()['cancel']}"
    assert WEB_TOKEN not in worker.log()


def test_cancel_stops_a_queued_task_before_it_starts(deployment, worker, tmp_path):
    never = tmp_path / "never"
    blockers = [f"block{i}" for i in range(CONCURRENCY)]
    deployment.send_commands(*(shell(b, "sleep", "3") for b in blockers))
    deployment.read(
        deployment.state_changes,
        lambda r: {x["value"]["id"] for x in r if x["value"]["state"] == "running"} >= set(blockers),
    )
    deployment.send_commands(shell("waiting", "touch", str(never)))
    deployment.send(
        [
            (None, json.dumps(cancel("stop-waiting", "waiting")).encode()),  # keyless: re-keyed by target
            (b"nobody", json.dumps(cancel("stop-nobody", "nobody")).encode()),
        ]
    )
    changes = deployment.state_changes_until_terminal(["waiting", *blockers])
    assert published_as(states(changes["waiting"]), ["queued", "cancelled"])
    assert all(states(changes[b])[-1] == "success" for b in blockers)
    assert not never.exists()
    assert worker.get("/tasks/nobody/")[0] == 404

"""Only workers speak for workers, on the real broker: a report, a control order or a heartbeat not
signed with the cluster key is not acted on, whoever may write the topic; and an id of the
Airflow executor's form cannot be taken by another kind of command."""

import json
import time

from airkafka_app.contract import airflow_tasks, signing
from scripts.local_deployment import report, shell


def test_worker_messages_without_the_cluster_key_are_refused_and_signed_ones_obeyed(deployment):
    worker = deployment.worker("guarded").start().wait_ready()
    control = f"{deployment.name}-control"
    try:
        deployment.send_commands(shell("victim", "sleep", "60"))
        deployment.read(deployment.state_changes, lambda r: any(x["value"]["id"] == "victim" for x in r))
        now = time.time()
        forged_end = report(shell("victim", "sleep", "60"), "success", "guarded", detail="forged", updated_at=now + 1)
        order = json.dumps({"to": "guarded", "cancel": "victim", "reason": "forged"}).encode()
        beat = json.dumps({"worker": "guarded", "at": now, "stopped": True}).encode()
        deployment.send_to(deployment.internal, [forged_end])
        deployment.send_to(control, [(b"guarded", order)])
        wrong_key = signing.headers("not-the-cluster-key", deployment.heartbeats, b"guarded", beat)
        deployment.send_to(deployment.heartbeats, [(b"guarded", beat), (b"guarded", beat, wrong_key)])
        letters = deployment.read(deployment.dead_letters, lambda r: any(x["value"]["key"] == "victim" for x in r))
        letter = next(x["value"] for x in letters if x["value"]["key"] == "victim")
        assert "internal message not signed with the cluster key" in letter["error"]
        deadline = time.monotonic() + 30
        while worker.log().count("skipped: not signed with the cluster key") < 3:
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
        status, record = worker.get("/tasks/victim/")
        assert status == 200 and record["state"] == "running", record
        assert worker.get("/cluster/")[1]["workers"][0]["status"] == "online"
        # Signed, the same order is obeyed: the wiring is real.
        deployment.send_signed(control, [(b"guarded", order)])
        changes = deployment.state_changes_until_terminal(["victim"])
        assert (changes["victim"][-1]["state"], changes["victim"][-1]["detail"]) == ("cancelled", "forged")
    finally:
        worker.stop()


def test_an_airflow_executor_id_cannot_be_taken_by_another_command(deployment):
    worker = deployment.worker("ids").start().wait_ready()
    try:
        taken = airflow_tasks.command_id("dag", "task", "run", -1, 1)
        deployment.send_commands(shell(taken, "true"), shell("plain", "true"))
        letters = deployment.read(deployment.dead_letters, lambda r: any(x["value"]["key"] == taken for x in r))
        letter = next(x["value"] for x in letters if x["value"]["key"] == taken)
        assert "reserved to the Airflow executor's airflow commands" in letter["error"]
        assert deployment.state_changes_until_terminal(["plain"])["plain"][-1]["state"] == "success"
        assert worker.get(f"/tasks/{taken}/")[0] == 404
    finally:
        worker.stop()


def test_control_characters_in_an_id_never_reach_the_log_raw(deployment):
    worker = deployment.worker("printable").start().wait_ready()
    hostile = "evil\n[2026-12-06 00:00:00,000] [1] [ERROR] forged\x1b[2J\x07"
    try:
        deployment.send_commands(shell(hostile, "sh", "-c", "exit 3"))
        assert deployment.state_changes_until_terminal([hostile])[hostile][-1]["state"] == "failed"
        worker.stop()
        log = worker.log()
        assert "evil\\x0a[2026-12-06 00:00:00,000] [1] [ERROR] forged\\x1b[2J\\x07" in log, log[-2000:]
        assert "\x1b[2J" not in log and "\x07" not in log
        assert not any(line.startswith("[2026-12-06 00:00:00,000]") for line in log.splitlines())
    finally:
        worker.stop()

"""A hostile task on the real broker, as a worker started as the README shows runs it: nothing it
starts outlives its timeout, its cancel or its own end, whatever session it makes, and it cannot
read the worker's secrets from /proc."""

import time
from pathlib import Path

from scripts.local_deployment import shell
from tests.processes import is_running

ESCAPE = "setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {marker}; "


def escaped_pid(marker: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline, f"{marker} never written"
        time.sleep(0.05)
    return int(marker.read_text())


def assert_ends(pid: int, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        assert time.monotonic() < deadline, f"{what}: pid {pid} still runs"
        time.sleep(0.05)


def test_nothing_a_task_starts_outlives_its_timeout_its_cancel_or_its_own_end(deployment, tmp_path):
    worker = deployment.worker("jail", AIRKAFKA_SHELL_ALLOW="sh").start().wait_ready()
    markers = {name: tmp_path / name for name in ("timeout", "cancel", "daemon")}
    try:
        assert worker.get("/health/")[1]["containment"].startswith("cgroup ("), worker.get("/health/")
        assert "tasks are contained by cgroup" in worker.log()
        assert "shell program 'sh'" in worker.log() and "can run any other program" in worker.log()
        began = time.monotonic()
        deployment.send_commands(
            shell("timeout", "sh", "-c", ESCAPE.format(marker=markers["timeout"]) + "sleep 60", timeout_s=2),
            shell("cancel", "sh", "-c", ESCAPE.format(marker=markers["cancel"]) + "sleep 60"),
            # The grandchild holds the task's output open: the task still ends when sh exits.
            shell("daemon", "sh", "-c", f"(sleep 600 & echo $! > {markers['daemon']}); echo started; exit 0"),
        )
        cancelled = escaped_pid(markers["cancel"])
        deployment.send_commands({"id": "stop", "kind": "cancel", "args": {"target": "cancel"}})
        changes = deployment.state_changes_until_terminal(["timeout", "cancel", "daemon"])
        ended = {task_id: states[-1] for task_id, states in changes.items()}
        assert time.monotonic() - began < 30, "the daemon's task waited for its grandchild"
        assert (ended["timeout"]["state"], ended["timeout"]["detail"]) == ("failed", "timeout after 2s"), ended
        assert ended["cancel"]["state"] == "cancelled", ended
        assert ended["daemon"]["state"] == "success", ended
        assert ended["daemon"]["detail"] == "exit code 0; 1 process it left running killed\nstarted\n", ended
        for name, marker in markers.items():
            assert_ends(escaped_pid(marker) if name != "cancel" else cancelled, name)
        print(
            f"\ntimeout, cancel and a task's own end each killed what it had started, in {time.monotonic() - began:.1f}s"
        )
    finally:
        worker.stop()


def test_tasks_waiting_a_day_for_their_retry_jam_nothing(deployment):
    """At one run slot, four tasks waiting a day for their retry once held every admission ticket:
    nothing sent after them ran, and a cancel of one was never read."""
    worker = deployment.worker("patient", AIRKAFKA_SHELL_ALLOW="false,true", AIRKAFKA_CONCURRENCY="1").start()
    worker.wait_ready()
    try:
        waiting = [shell(f"wait{n}", "false", retries=100, retry_delay_s=86400) for n in range(5)]
        deployment.send_commands(*waiting)
        deployment.read(
            deployment.state_changes,
            lambda r: len({x["value"]["id"] for x in r if x["value"]["state"] == "up_for_retry"}) == 5,
        )
        after = [shell(f"after{n}", "true") for n in range(10)]
        deployment.send_commands(*after, {"id": "stop-wait0", "kind": "cancel", "args": {"target": "wait0"}})
        changes = deployment.state_changes_until_terminal([c["id"] for c in after] + ["wait0"], timeout=30)
        assert all(changes[c["id"]][-1]["state"] == "success" for c in after), changes
        assert changes["wait0"][-1]["state"] == "cancelled", changes["wait0"]
        assert worker.get("/tasks/?state=up_for_retry")[1]["count"] == 4
        print("\n5 tasks waiting a day for their retry at one slot: 10 sent after them ran, and a cancel ended one")
    finally:
        worker.stop()


def test_a_cancel_never_waits_behind_a_full_admission(deployment):
    """At one run slot, four admitted tasks hold every admission ticket and more wait in Kafka behind
    them, so intake stops reading. Cancels of all of them, sent after them, once waited for the
    running task to end; they take effect at once, and the tasks still in Kafka never start."""
    worker = deployment.worker("full", AIRKAFKA_SHELL_ALLOW="sleep", AIRKAFKA_CONCURRENCY="1").start()
    worker.wait_ready()
    try:
        tasks = [shell(f"long{n}", "sleep", "120") for n in range(12)]
        deployment.send_commands(*tasks)
        ids = {t["id"] for t in tasks}
        deployment.read(
            deployment.state_changes,
            lambda r: any(x["value"]["state"] == "running" and x["value"]["id"] in ids for x in r),
        )
        time.sleep(2)  # intake is at the admission bound by now
        read = {t["id"] for t in worker.get("/tasks/?limit=500")[1]["tasks"]} & ids
        assert len(read) <= 5, read  # a running task, three admitted, one waiting for admission
        sent = time.monotonic()
        deployment.send_commands(
            *({"id": f"stop-{t['id']}", "kind": "cancel", "args": {"target": t["id"]}} for t in tasks)
        )
        changes = deployment.state_changes_until_terminal([t["id"] for t in tasks], timeout=60)
        took = time.monotonic() - sent
        assert all(states[-1]["state"] == "cancelled" for states in changes.values()), changes
        unread = [t["id"] for t in tasks if t["id"] not in read]
        assert not any(r["state"] == "running" for t in unread for r in changes[t]), changes
        assert took < 30, f"the cancels took {took:.1f}s"
        print(f"\nintake stopped at the admission bound: 12 cancels behind it took effect in {took:.1f}s")
    finally:
        worker.stop()

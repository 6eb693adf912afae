"""What operators do every day, on the real broker: deploys (SIGTERM), kill -9, cancels after a
rebalance, serial backlogs, standbys. None may fail, duplicate or strand a task. Each test
prints its figures (``pytest -s``).
"""

import json
import signal
import time
from collections import Counter
from pathlib import Path

import requests

from scripts.local_deployment import Deployment, shell, wait_for_split
from tests.integration.test_cli import airkafka
from tests.integration.test_faults import FAST_LOSS, assert_one_end_per_attempt, two_workers
from tests.transitions import published_as

DEPLOY = {**FAST_LOSS, "AIRKAFKA_SHUTDOWN_GRACE_S": "4", "AIRKAFKA_CONCURRENCY": "8"}


def running_states(deployment, count: int) -> None:
    deployment.read(deployment.state_changes, lambda r: sum(x["value"]["state"] == "running" for x in r) >= count)


def task_processes(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                if "\nState:\tZ" not in (proc / "status").read_text():
                    found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_deploy_fails_no_task(broker, tmp_path):
    """SIGTERM with tasks running and retries=0: short ones finish within the grace, long ones and
    waiting ones are handed back, and after the restart every task has succeeded once."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("deployed", **DEPLOY).start().wait_ready()
    try:
        short = [shell(f"short{n}", "sleep", "2.5") for n in range(4)]
        long = [shell(f"long{n}", "sleep", "8") for n in range(4)]
        waiting = [shell(f"wait{n}", "true") for n in range(8)]
        deployment.send_commands(*short, *long)
        running_states(deployment, 8)
        deployment.send_commands(*waiting)
        deployment.read(
            deployment.state_changes,
            lambda r: {x["value"]["id"] for x in r if x["value"]["state"] == "queued"} >= {c["id"] for c in waiting},
        )
        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(timeout=60)
        drained = time.monotonic() - signalled
        assert code == 0, worker.log()[-3000:]
        assert "handed back to their partitions' next owner" in worker.log()
        assert not task_processes("sleep 8")
        worker.start().wait_ready()
        ids = [c["id"] for c in (*short, *long, *waiting)]
        changes = deployment.state_changes_until_terminal(ids, timeout=120)
        took = time.monotonic() - signalled
        assert_one_end_per_attempt(changes)
        assert Counter(c[-1]["state"] for c in changes.values()) == {"success": len(ids)}, changes
        for c in short:
            assert published_as([r["state"] for r in changes[c["id"]]], ["queued", "running", "success"])
        for c in long:
            interrupted = [r for r in changes[c["id"]] if r["state"] == "up_for_retry"]
            assert len(interrupted) == 1 and interrupted[0]["detail"].startswith("interrupted: worker deployed stopped")
        print(
            f"\nSIGTERM with 8 running and 8 waiting (grace 4 s): stopped in {drained:.1f}s, 4 finished, "
            f"4 handed back; all 16 succeeded {took:.1f}s after the signal, each once"
        )
    finally:
        worker.stop()


def test_a_rolling_deploy_hands_tasks_to_the_other_worker(deployment):
    with two_workers(deployment, DEPLOY) as (first, second):
        ids = [f"roll{n}" for n in range(24)]
        deployment.send_commands(*(shell(i, "sleep", "6") for i in ids))
        running_states(deployment, 12)
        signalled = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=60) == 0
        changes = deployment.state_changes_until_terminal(ids, timeout=120)
        took = time.monotonic() - signalled
        assert_one_end_per_attempt(changes)
        assert Counter(c[-1]["state"] for c in changes.values()) == {"success": len(ids)}
        moved = [
            i for i, c in changes.items() if c[-1]["worker"] == "second" and any(r["worker"] == "first" for r in c)
        ]
        assert moved, "no task moved from the stopped worker"
        print(
            f"\nrolling deploy: first stopped with SIGTERM; {len(moved)} of its tasks finished on second; "
            f"all {len(ids)} succeeded {took:.1f}s after the signal"
        )


def test_no_task_outlives_a_killed_worker(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("killed", AIRKAFKA_CONCURRENCY="4").start().wait_ready()
    try:
        deployment.send_commands(shell("alone", "sleep", "61.5"))  # spawned by the worker itself
        running_states(deployment, 1)
        deployment.send_commands(*(shell(f"beside{n}", "sh", "-c", "sleep 61.5; true") for n in range(3)))
        running_states(deployment, 4)
        deadline = time.monotonic() + 15  # "running" is recorded as the process is being started
        while len(task_processes("sleep 61.5")) < 4:
            assert time.monotonic() < deadline, (task_processes("sleep 61.5"), worker.log()[-3000:])
            time.sleep(0.1)
        worker.kill()
        killed = time.monotonic()
        while task_processes("sleep 61.5"):
            assert time.monotonic() - killed < 15, task_processes("sleep 61.5")
            time.sleep(0.1)
        print(f"\nkill -9 of a worker with 4 tasks running: none left {time.monotonic() - killed:.2f}s later")
    finally:
        worker.stop()


def test_followers_of_a_busy_serial_key_do_not_hold_up_intake(broker, tmp_path):
    """4 x concurrency + 1 commands behind one long serial task fill no admission slot: a task of
    another key and a cancel of the head, sent after them, take effect at once."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("serial", AIRKAFKA_CONCURRENCY="2").start().wait_ready()
    try:
        head = shell("head", "sleep", "60", serial_key="k")
        followers = [shell(f"f{n}", "true", serial_key="k") for n in range(4 * 2 + 1)]
        deployment.send_commands(head, *followers)
        running_states(deployment, 1)
        sent = time.monotonic()
        deployment.send_commands(
            shell("other", "true"), {"id": "stop-head", "kind": "cancel", "args": {"target": "head", "serial_key": "k"}}
        )
        early = deployment.state_changes_until_terminal(["other", "head"], timeout=30)
        took = time.monotonic() - sent
        assert early["other"][-1]["state"] == "success" and early["head"][-1]["state"] == "cancelled"
        changes = deployment.state_changes_until_terminal([f["id"] for f in followers], timeout=60)
        ended = [min(r["at"] for r in changes[f["id"]] if r["state"] == "success") for f in followers]
        assert ended == sorted(ended)  # one after another, in the order sent
        print(
            f"\n{len(followers)} followers behind a running serial task: another task and a cancel of the "
            f"head took effect {took:.1f}s after they were sent; the followers then ran in order"
        )
    finally:
        worker.stop()


def test_a_cancel_reaches_a_run_left_on_another_worker_by_a_rebalance(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    first = deployment.worker("first", **FAST_LOSS).start().wait_ready()
    second = None
    try:
        # Each task sleeps for a time of its own, so that its process can be told apart.
        ids = [f"r{n}" for n in range(8)]
        deployment.send_commands(*(shell(i, "sleep", f"60.{n + 11}") for n, i in enumerate(ids)))
        running_states(deployment, len(ids))
        second = deployment.worker("second", **FAST_LOSS).start().wait_ready()
        wait_for_split(first, second)
        moved = [
            i
            for i in ids
            if second.get(f"/tasks/{i}/")[1]["worker"] == "first"
            and i in {t["id"] for t in second.get("/tasks/")[1]["tasks"]}
        ]
        assert moved, "no running task's partition moved to second"
        target = moved[0]
        marker = f"sleep 60.{ids.index(target) + 11}"
        assert task_processes(marker)
        sent = time.monotonic()
        # Keyed by its own id, as any other command: intake sends it on to the target's partition.
        deployment.send(
            [(b"stop-it", json.dumps({"id": "stop-it", "kind": "cancel", "args": {"target": target}}).encode())]
        )
        changes = deployment.state_changes_until_terminal([target], timeout=30)
        took = time.monotonic() - sent
        assert published_as([c["state"] for c in changes[target]], ["queued", "running", "cancelled"]), changes[target]
        assert changes[target][-1]["detail"] == "cancelled by stop-it" and changes[target][-1]["worker"] == "first"
        deadline = time.monotonic() + 10
        while task_processes(marker):
            assert time.monotonic() < deadline, "the cancelled task's process still runs"
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while second.get(f"/tasks/{target}/")[1]["state"] != "cancelled":
            assert time.monotonic() < deadline, second.get(f"/tasks/{target}/")
            time.sleep(0.1)
        print(
            f"\na cancel keyed by its own id, for a run left on first by a rebalance: killed there and "
            f"recorded cancelled once, {took:.1f}s after it was sent"
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()


def owns_commands(worker) -> bool:
    try:
        status, body = worker.get("/health/")
    except requests.RequestException:
        return False  # not serving yet
    return status == 200 and bool(body["partitions"]["default"])


def last_assignment(worker) -> str:
    """The topics in the worker's last assignment, as its log tabulates them."""
    log = worker.log()
    return log[log.rindex("Setting newly assigned partitions") :].split("for group")[0]


def test_a_standby_idle_past_the_poll_interval_takes_over(broker, tmp_path):
    """With one partition and three workers, one has nothing assigned (another holds Faust's leader
    topic): it must stay in the group past the poll interval, and take the partition over when
    the two others are killed."""
    deployment = Deployment(broker.bootstrap, tmp_path, partitions=1)
    env = {**FAST_LOSS, "AIRKAFKA_MAX_POLL_INTERVAL_S": "15"}
    workers = [deployment.worker(name, **env).start() for name in ("w1", "w2", "w3")]
    try:
        deadline = time.monotonic() + 60
        while not any(owns_commands(w) for w in workers):
            assert time.monotonic() < deadline, "no worker owns the commands partition after 60 s"
            time.sleep(0.5)
        time.sleep(35)  # over twice the poll interval
        left = [w.label for w in workers if "LeaveGroup request succeeded" in w.log()]
        assert not left, f"left the group: {left}"
        idle = [
            w for w in workers if deployment.commands not in last_assignment(w) and "leader" not in last_assignment(w)
        ]
        assert idle, [last_assignment(w) for w in workers]
        for worker in workers:
            if worker is not idle[0]:
                worker.kill()
        killed = time.monotonic()
        deployment.send_commands(shell("after", "true"))
        changes = deployment.state_changes_until_terminal(["after"], timeout=90)
        took = time.monotonic() - killed
        assert changes["after"][-1]["state"] == "success" and changes["after"][-1]["worker"] == idle[0].label, (
            idle[0].label,
            changes["after"],
        )
        print(
            f"\na standby with nothing assigned for 35 s (poll interval 15 s) took over {took:.1f}s after "
            "the other workers were killed"
        )
    finally:
        for worker in workers:
            worker.stop()


def test_waiting_tasks_start_by_priority_and_hold_their_pool_slots(broker, tmp_path):
    """At two run slots, a task of two slots runs alone; the tasks that wait meanwhile then start
    highest priority first; a task of more slots than the worker has is refused, saying why."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("ranked", AIRKAFKA_CONCURRENCY="2").start().wait_ready()
    try:
        deployment.send_commands(shell("wide", "sleep", "3", pool_slots=2))
        running_states(deployment, 1)
        deployment.send_commands(
            shell("low", "sleep", "1"),
            shell("high", "sleep", "1", priority_weight=10),
            shell("mid", "sleep", "1", priority_weight=5),
            shell("too-wide", "true", pool_slots=3),
        )
        changes = deployment.state_changes_until_terminal(["wide", "low", "high", "mid"])
        started = {i: next(r["at"] for r in changes[i] if r["state"] == "running") for i in ("low", "high", "mid")}
        wide_ended = changes["wide"][-1]["at"]
        assert changes["wide"][-1]["state"] == "success" and min(started.values()) >= wide_ended, (changes, started)
        assert started["high"] <= started["mid"] < started["low"], started
        letters = deployment.read(deployment.dead_letters, lambda r: len(r) >= 1)
        assert (
            "'pool_slots' 3 is more than this worker's run slots (AIRKAFKA_CONCURRENCY 2)"
            in letters[0]["value"]["error"]
        )
        print(
            f"\nafter a two-slot task, started by priority: high, mid, then low {started['low'] - started['mid']:.1f}s later"
        )
    finally:
        worker.stop()


def test_an_operator_changes_concurrency_maintenance_and_pauses_live(broker, tmp_path):
    """Orders through any worker's POST /control/, from the CLI: a worker's concurrency, its
    maintenance (new tasks wait, saying why; a cancel still ends one; it outlives a restart), and
    a queue's pause, each lifted again."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("operated", AIRKAFKA_CONCURRENCY="1", AIRKAFKA_WEB_TOKEN="op-token").start()
    worker.wait_ready()

    def order(*args: str) -> None:
        done = airkafka(worker, *args, "--worker-url", worker.url)
        assert done.returncode == 0 and done.stdout.startswith("sent "), (done.stdout, done.stderr[-2000:])

    def stats_until(check) -> dict:
        deadline = time.monotonic() + 30
        while not check(stats := worker.get("/stats/")[1]):
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)
        return stats

    def waits(task_id: str, why: str) -> None:
        """Recorded, and it waits, saying why, a few seconds on."""
        time.sleep(3)
        record = worker.get(f"/tasks/{task_id}/")[1]
        assert (record["state"], record["detail"]) == ("queued", f"waiting: {why}"), record

    try:
        refused = requests.post(f"{worker.url}/control/", json={"to": "operated", "concurrency": 3}, timeout=10)
        assert refused.status_code == 401
        order("concurrency", "operated", "3")
        stats_until(lambda s: s["concurrency"] == 3)
        deployment.send_commands(*(shell(f"wide{n}", "sleep", "3") for n in range(3)))
        running_states(deployment, 3)
        assert worker.get("/stats/")[1]["running"] == 3

        order("maintenance", "operated", "--comment", "disk swap")
        stats_until(lambda s: s["maintenance"] == "disk swap")
        deployment.send_commands(shell("during", "true"), shell("dropped", "true"))
        deployment.send_commands({"id": "stop-dropped", "kind": "cancel", "args": {"target": "dropped"}})
        waits("during", "the worker is in maintenance: disk swap")
        row = next(w for w in worker.get("/cluster/")[1]["workers"] if w["worker"] == "operated")
        assert (row["status"], row["maintenance"]) == ("maintenance", "disk swap"), row
        worker.stop()
        worker.start().wait_ready()
        stats_until(lambda s: s["maintenance"] == "disk swap")  # the order outlived the restart
        waits("during", "the worker is in maintenance: disk swap")
        order("maintenance", "operated", "--off")
        ended = deployment.state_changes_until_terminal(["during", "dropped"], timeout=60)
        assert ended["during"][-1]["state"] == "success", ended
        assert published_as([r["state"] for r in ended["dropped"]], ["queued", "cancelled"]), ended[
            "dropped"
        ]  # never ran

        order("pause", "default")
        stats_until(lambda s: s["paused"] == ["default"])
        deployment.send_commands(shell("held", "true"))
        waits("held", "queue default is paused")
        order("pause", "default", "--resume")
        assert deployment.state_changes_until_terminal(["held"])["held"][-1]["state"] == "success"
        print("\nconcurrency 1 -> 3, maintenance through a restart, and a pause, each lifted: all as ordered")
    finally:
        worker.stop()

"""Fault tests on the real broker: killed workers, a restarted broker, garbage input, long tasks.

Each prints its figures. Loss bounds are shortened (heartbeat 1 s, lost after 6 s) so the
tests run in seconds; the defaults are 5 s and 30 s.
"""

import json
import random
import shutil
import time
from collections import Counter
from contextlib import contextmanager

from scripts.local_deployment import TERMINAL, Deployment, shell, wait_for_split
from scripts.local_kafka import start_broker
from tests.transitions import published_as

FAST_LOSS = {"AIRKAFKA_HEARTBEAT_S": "1", "AIRKAFKA_WORKER_LOST_AFTER_S": "6", "AIRKAFKA_SESSION_TIMEOUT_S": "6"}
ENDS_ATTEMPT = TERMINAL | {"up_for_retry"}


def final_states(changes: dict[str, list[dict]]) -> Counter:
    return Counter(c[-1]["state"] for c in changes.values())


def assert_one_end_per_attempt(changes: dict[str, list[dict]]) -> None:
    for task_id, records in changes.items():
        ends = Counter(r["attempt"] for r in records if r["state"] in ENDS_ATTEMPT)
        assert set(ends.values()) == {1}, (task_id, records)
        assert records[-1]["state"] in TERMINAL, (task_id, records)


@contextmanager
def two_workers(deployment: Deployment, env: dict[str, str], names=("first", "second")):
    workers = [deployment.worker(name, **env).start().wait_ready() for name in names]
    try:
        wait_for_split(*workers)
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def settled_assignments(*workers, quiet_s: float, timeout: float = 90.0) -> list[int]:
    """Assignment counts once start-up rebalances have stopped for ``quiet_s``."""

    def counts() -> list[int]:
        return [w.log().count("Setting newly assigned partitions") for w in workers]

    deadline, last, since = time.monotonic() + timeout, counts(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"assignments never settled: {last}"
        time.sleep(1)
        if (now := counts()) != last:
            last, since = now, time.monotonic()
    return last


def wait_for_running(deployment: Deployment, count: int) -> None:
    deployment.read(deployment.state_changes, lambda r: sum(x["value"]["state"] == "running" for x in r) >= count)


def test_a_killed_worker_restarted_with_a_wiped_data_dir_loses_no_task(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("victim", AIRKAFKA_CONCURRENCY="8", **FAST_LOSS).start().wait_ready()
    # Half may retry once, half may not: a lost attempt is retried, or failed when none is left.
    ids = [f"k{i}" for i in range(240)]
    deployment.send_commands(*(shell(i, "sleep", "0.3", retries=n % 2) for n, i in enumerate(ids)))
    wait_for_running(deployment, 40)
    worker.kill()
    killed = time.monotonic()
    shutil.rmtree(worker.data_dir)
    worker.start().wait_ready(timeout=120)
    try:
        changes = deployment.state_changes_until_terminal(ids, timeout=180)
        assert_one_end_per_attempt(changes)
        lost = {i for i, c in changes.items() if any("lost" in r["detail"] for r in c)}
        assert lost, "no attempt was in flight at the kill"
        for i in lost:
            retried = int(i[1:]) % 2 == 1
            assert changes[i][-1]["state"] == ("success" if retried else "failed"), changes[i]
        assert final_states(changes)["success"] == len(ids) - sum(1 for i in lost if int(i[1:]) % 2 == 0)
        print(
            f"\nkill -9 with {len(ids)} tasks: {len(lost)} attempts lost and recovered; all terminal "
            f"{time.monotonic() - killed:.1f}s after the kill; final {dict(final_states(changes))}"
        )
    finally:
        worker.stop()


def test_the_survivor_of_two_workers_finishes_the_killed_ones_tasks(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path, partitions=4)
    with two_workers(deployment, {"AIRKAFKA_CONCURRENCY": "4", **FAST_LOSS}) as (first, second):
        ids = [f"two{i}" for i in range(60)]
        deployment.send_commands(*(shell(i, "sleep", "1", retries=1) for i in ids))
        wait_for_running(deployment, 12)
        first.kill()
        killed = time.monotonic()
        changes = deployment.state_changes_until_terminal(ids, timeout=180)
        took = time.monotonic() - killed
        assert_one_end_per_attempt(changes)
        assert final_states(changes) == {"success": len(ids)}
        lost = [i for i, c in changes.items() if any(r["detail"].startswith("worker first lost") for r in c)]
        assert lost and all(changes[i][-1]["worker"] == "second" for i in lost)
        assert second.get("/health/")[1]["partitions"]["default"] == [0, 1, 2, 3]
        print(
            f"\ntwo workers, one killed: {len(lost)} lost attempts re-run by the survivor; "
            f"all {len(ids)} done {took:.1f}s after the kill"
        )


def test_a_broker_restart_loses_nothing_and_the_worker_recovers_by_itself(tmp_path):
    broker = start_broker(tmp_path / "kafka")
    try:
        deployment = Deployment(broker.bootstrap, tmp_path)
        worker = deployment.worker("steady", AIRKAFKA_CONCURRENCY="8").start().wait_ready()
        try:
            ids = [f"b{i}" for i in range(120)]
            deployment.send_commands(*(shell(i, "sleep", "0.2") for i in ids))
            wait_for_running(deployment, 20)
            broker.stop()
            down = time.monotonic()
            time.sleep(5)
            broker.start()
            up = time.monotonic()
            changes = deployment.state_changes_until_terminal(ids, timeout=180)
            assert_one_end_per_attempt(changes)
            assert final_states(changes) == {"success": len(ids)}
            assert worker.process.poll() is None
            worker.wait_ready()
            # The client's retries while the broker is away: a line a minute, not tens of thousands.
            errors = [line for line in worker.log().splitlines() if "[ERROR]" in line]
            assert len(errors) <= 5, f"{len(errors)} errors, such as {errors[:5]}"
            print(
                f"\nbroker down {up - down:.1f}s mid-run: all {len(ids)} tasks succeeded "
                f"{time.monotonic() - up:.1f}s after it came back"
            )
        finally:
            worker.stop()
    finally:
        broker.stop()


def garbage(rng: random.Random, n: int) -> bytes | None:
    kind = n % 5
    if kind == 0:
        return rng.randbytes(rng.randint(0, 64))
    if kind == 1:
        return json.dumps({"id": f"g{n}", "kind": "shell", "args": {"argv": rng.choice([[], "true", [1]])}}).encode()
    if kind == 2:
        return json.dumps(rng.choice([[n], n, "text", None])).encode()
    if kind == 3:
        return b'{"id": "g' + str(n).encode() + b'", "kind": '  # cut short
    return None


def test_thousands_of_malformed_messages_become_dead_letters_and_valid_ones_complete(deployment):
    worker = deployment.worker("sturdy").start().wait_ready()
    rng = random.Random(7)
    try:
        values = [garbage(rng, n) for n in range(5000)]
        # Some keyless; Kafka takes no message without both key and value.
        bad = [(f"g{n}".encode() if n % 3 or value is None else None, value) for n, value in enumerate(values)]
        good = [shell(f"ok{n}", "true") for n in range(200)]
        mixed = bad + [(c["id"].encode(), json.dumps(c).encode()) for c in good]
        rng.shuffle(mixed)
        started = time.monotonic()
        deployment.send(mixed)
        letters = deployment.read(deployment.dead_letters, lambda r: len(r) >= len(bad), timeout=180)
        changes = deployment.state_changes_until_terminal([c["id"] for c in good], timeout=180)
        assert len(letters) == len(bad)
        assert all(letter["value"]["error"] for letter in letters)
        assert final_states(changes) == {"success": len(good)}
        assert worker.process.poll() is None and worker.get("/stats/")[1]["dead_letters"] == len(bad)
        print(
            f"\n{len(bad)} malformed + {len(good)} valid: {len(letters)} dead letters, "
            f"{len(good)} successes in {time.monotonic() - started:.1f}s"
        )
    finally:
        worker.stop()


def test_a_task_longer_than_the_session_and_poll_intervals_runs_once_without_rebalances(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path, partitions=4)
    # A poll interval under a worker's start-up time (about 8 s here, with no poll while Faust
    # recovers) makes aiokafka leave the group, and it rejoins only on a poll that Faust, with
    # nothing assigned, never makes: the worker stays out. 15 s keeps clear of that.
    env = {**FAST_LOSS, "AIRKAFKA_SESSION_TIMEOUT_S": "6", "AIRKAFKA_MAX_POLL_INTERVAL_S": "15"}
    with two_workers(deployment, env) as (first, second):
        assignments = settled_assignments(first, second, quiet_s=12)
        deployment.send_commands(shell("long", "sleep", "18"), *(shell(f"short{i}", "true") for i in range(20)))
        changes = deployment.state_changes_until_terminal(["long", *(f"short{i}" for i in range(20))], timeout=120)
        assert published_as([c["state"] for c in changes["long"]], ["queued", "running", "success"])
        assert final_states(changes) == {"success": 21}
        assert [w.log().count("Setting newly assigned partitions") for w in (first, second)] == assignments
        took = changes["long"][-1]["at"] - changes["long"][1]["at"]
        print(f"\na {took:.1f}s task with a 6 s session and a 15 s poll interval: one run, no rebalance")

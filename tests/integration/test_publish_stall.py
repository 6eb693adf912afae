"""A worker that cannot publish while the broker answers: it says so, exits for a restart, and the
restart publishes what it left.

The stall is made real: the state-changes topic is deleted on a broker that does not auto-create
topics, so the producer waits for its metadata, and its batches for a leader, for good.
"""

import signal
import time

from scripts.local_deployment import Deployment, shell
from scripts.local_kafka import start_broker

STALL = {"AIRKAFKA_PUBLISH_STALL_S": "2", "AIRKAFKA_PUBLISH_STALL_EXIT_S": "6"}


def wait_for_stall(worker, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = worker.get("/health/")
        if status == 503 and body.get("status") == "stalled":
            return body
        time.sleep(0.2)
    raise TimeoutError(f"no stall reported:\n{worker.log()[-3000:]}")


def test_a_stalled_worker_reports_it_exits_and_its_restart_publishes_what_it_left(tmp_path):
    broker = start_broker(tmp_path / "kafka", config={"auto.create.topics.enable": "false"})
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("stuck", **STALL).start().wait_ready()
    try:
        deployment.send_commands(shell("before", "true"))
        deployment.state_changes_until_terminal(["before"])
        deployment.delete_topic(deployment.state_changes)
        ids = [f"s{i}" for i in range(20)]
        deployment.send_commands(*(shell(i, "true") for i in ids))
        health = wait_for_stall(worker)
        assert deployment.state_changes in health["reason"], health
        assert "publishing stalled while the broker answers" in worker.log()
        stalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)  # a deploy now must not hang
        assert worker.process.wait(timeout=60) == 70
        exited = time.monotonic() - stalled
        assert (worker.data_dir / "unsent.json").exists()
        worker.start().wait_ready()  # it creates the topic again
        changes = deployment.state_changes_until_terminal(ids, timeout=60)
        for task_id in ids:
            assert [c["state"] for c in changes[task_id]][-1] == "success", changes[task_id]
            assert sum(c["state"] == "success" for c in changes[task_id]) == 1, changes[task_id]
        deadline = time.monotonic() + 30  # removed once the broker has acknowledged what it held
        while (worker.data_dir / "unsent.json").exists():
            assert time.monotonic() < deadline, "unsent.json still there"
            time.sleep(0.1)
        # The records follow as reports, which the owner (this worker) stores as it reads them.
        deadline = time.monotonic() + 30
        while not all(worker.get(f"/tasks/{i}/")[1]["state"] == "success" for i in ids):
            assert time.monotonic() < deadline, [worker.get(f"/tasks/{i}/")[1]["state"] for i in ids]
            time.sleep(0.2)
        print(
            f"\nstall reported, worker exited 70 {exited:.1f}s later despite a SIGTERM; "
            f"its restart published all {len(ids)} results"
        )
    finally:
        worker.stop()
        broker.stop()

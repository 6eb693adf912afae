"""Queues served by chosen workers, and serial keys that run their tasks one after another."""

import itertools

import pytest

from scripts.local_deployment import Deployment, shell, wait_for_split
from tests.transitions import published_as


@pytest.fixture(scope="module")
def workers(broker, tmp_path_factory):
    """``plain`` serves the default queue; ``gpu`` serves the default queue and ``gpu``."""
    deployment = Deployment(broker.bootstrap, tmp_path_factory.mktemp("queues"), partitions=4)
    plain = deployment.worker("plain", AIRKAFKA_QUEUES="default").start().wait_ready()
    gpu = deployment.worker("gpu", AIRKAFKA_QUEUES="default,gpu").start().wait_ready()
    try:
        wait_for_split(plain, gpu)
        yield deployment, plain, gpu
    finally:
        plain.stop()
        gpu.stop()


def test_a_queue_runs_only_on_the_workers_that_serve_it(workers):
    deployment, plain, gpu = workers
    assert plain.get("/health/")[1]["partitions"] == {"default": plain.get("/health/")[1]["partitions"]["default"]}
    assert gpu.get("/health/")[1]["partitions"]["gpu"] == [0, 1, 2, 3]
    default_ids = [f"cpu{i}" for i in range(24)]
    gpu_ids = [f"gpu{i}" for i in range(12)]
    deployment.send_commands(*(shell(i, "true") for i in default_ids))
    deployment.send_commands(*(shell(i, "true") for i in gpu_ids), queue="gpu")
    changes = deployment.state_changes_until_terminal(default_ids + gpu_ids)
    assert all(c[-1]["state"] == "success" for c in changes.values())
    assert {changes[i][-1]["worker"] for i in gpu_ids} == {"gpu"}
    assert {changes[i][-1]["worker"] for i in default_ids} == {"plain", "gpu"}
    status, record = plain.get(f"/tasks/{gpu_ids[0]}/?queue=gpu")
    assert status == 404 and record["error"] == "queue 'gpu' is not served by plain"
    status, record = gpu.get(f"/tasks/{gpu_ids[0]}/?queue=gpu")
    assert status == 200 and record["state"] == "success"
    assert gpu.get(f"/tasks/{gpu_ids[0]}/")[0] == 404  # not in the default queue
    stats = gpu.get("/stats/")[1]
    assert stats["queues"]["gpu"]["tasks"]["success"] == len(gpu_ids)
    assert (
        stats["tasks"]["success"]
        == stats["queues"]["gpu"]["tasks"]["success"] + stats["queues"]["default"]["tasks"]["success"]
    )


def test_tasks_with_one_serial_key_run_one_after_another(workers):
    deployment, plain, gpu = workers
    serial = [
        shell("order-1", "sleep", "1", serial_key="customer-7"),
        shell("order-2", "sleep", "0.2", serial_key="customer-7"),
        shell("order-3", "true", serial_key="customer-7"),
    ]
    deployment.send_commands(*serial, shell("other", "true", serial_key="customer-8"))
    ids = [c["id"] for c in serial] + ["other"]
    deployment.state_changes_until_terminal(ids)
    # Every record of a serial key lives where the key routed it; ?key= finds it.
    records = {i: plain.get(f"/tasks/{i}/?key={'customer-8' if i == 'other' else 'customer-7'}") for i in ids}
    assert all(status == 200 and record["state"] == "success" for status, record in records.values())
    order = [records[c["id"]][1] for c in serial]
    for before, after in itertools.pairwise(order):
        assert after["started_at"] >= before["ended_at"], (before, after)
    assert records["other"][1]["ended_at"] < order[0]["ended_at"]  # another key does not wait


def test_a_cancel_with_the_serial_key_reaches_a_task_waiting_its_turn(workers):
    deployment, plain, gpu = workers
    deployment.send_commands(
        shell("long-1", "sleep", "30", serial_key="batch"), shell("next-2", "true", serial_key="batch")
    )
    deployment.read(
        deployment.state_changes,
        lambda r: any(x["value"]["id"] == "long-1" and x["value"]["state"] == "running" for x in r),
    )
    cancels = [
        {"id": f"stop-{t}", "kind": "cancel", "args": {"target": t, "serial_key": "batch"}}
        for t in ("next-2", "long-1")
    ]
    deployment.send_commands(*cancels)
    changes = deployment.state_changes_until_terminal(["long-1", "next-2"])
    assert published_as([c["state"] for c in changes["next-2"]], ["queued", "cancelled"])
    assert changes["next-2"][-1]["detail"] == "cancelled by stop-next-2"
    assert changes["long-1"][-1]["state"] == "cancelled"

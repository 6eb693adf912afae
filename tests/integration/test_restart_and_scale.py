"""State that survives a wiped data directory, and two workers sharing the partitions."""

import asyncio
import shutil
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import AccessType, Rdict

from scripts.local_deployment import Deployment, shell, wait_for_split
from tests.transitions import published_as


def without_rates(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key != "rates"}


def test_table_comes_back_from_the_changelog_after_the_data_dir_is_deleted(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("solo").start().wait_ready()
    exit_codes = {f"keep{n}": n % 2 for n in range(20)}
    ids = list(exit_codes)
    try:
        deployment.send_commands(*(shell(i, "sh", "-c", f"exit {code}") for i, code in exit_codes.items()))
        deployment.send([(b"junk", b"not json")])
        deployment.state_changes_until_terminal(ids)
        # The junk message was sent after the commands, on its own connection: its tasks' state
        # changes can come out before it is counted.
        deadline = time.monotonic() + 30
        while (stats_before := worker.get("/stats/")[1])["dead_letters"] < 1:
            assert time.monotonic() < deadline, stats_before
            time.sleep(0.2)
        before = {i: worker.get(f"/tasks/{i}/")[1] for i in ids}
    finally:
        worker.stop()
    shutil.rmtree(worker.data_dir)
    worker.start().wait_ready()
    try:
        for i in ids:
            status, record = worker.get(f"/tasks/{i}/")
            assert status == 200 and record == before[i]
            assert record["state"] == ("success" if exit_codes[i] == 0 else "failed")
        # The counts come back from the changelog; the last hour's rates are the process's own.
        assert without_rates(worker.get("/stats/")[1]) == without_rates(stats_before)
    finally:
        worker.stop()


def test_two_workers_share_partitions_and_answer_for_every_task(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path, partitions=4)
    first = deployment.worker("first").start().wait_ready()
    second = deployment.worker("second").start().wait_ready()
    try:
        wait_for_split(first, second)
        ids = [f"spread{i}" for i in range(40)]
        deployment.send_commands(*(shell(i, "true") for i in ids))
        changes = deployment.state_changes_until_terminal(ids)
        assert all(c[-1]["state"] == "success" for c in changes.values())
        assert {c[-1]["worker"] for c in changes.values()} == {"first", "second"}
        for i in ids:
            owner = changes[i][-1]["worker"]
            for worker in (first, second):
                status, record = worker.get(f"/tasks/{i}/")
                assert status == 200 and record["state"] == "success" and record["worker"] == owner
    finally:
        first.stop()
        second.stop()


def test_a_commands_topic_with_another_partition_count_stops_the_worker(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path, partitions=4)
    deployment.send([(b"early", b"sent before any worker")])  # the broker auto-creates it with 1 partition
    worker = deployment.worker("misfit").start()
    assert worker.process.wait(60) == 78  # EX_CONFIG: a restart cannot help
    assert f"topic '{deployment.commands}' has 1 partitions but AIRKAFKA_PARTITIONS is 4" in worker.log()


def test_commands_delivered_again_from_the_start_run_nothing_twice(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    exit_codes = {f"again{n}": n % 2 for n in range(20)}
    ids = list(exit_codes)
    worker = deployment.worker("again").start().wait_ready()
    try:
        deployment.send_commands(*(shell(i, "sh", "-c", f"exit {code}") for i, code in exit_codes.items()))
        deployment.state_changes_until_terminal(ids)
    finally:
        worker.stop()
    deployment.rewind_commands()
    worker.start().wait_ready()
    try:
        deadline = time.monotonic() + 60
        while worker.get("/stats/")[1]["duplicates"] < len(ids):
            assert time.monotonic() < deadline, worker.get("/stats/")[1]
            time.sleep(0.5)
        changes = deployment.state_changes_until_terminal(ids)
        # The failed ones too: the message that started their attempt is not a new command.
        end = {i: "success" if code == 0 else "failed" for i, code in exit_codes.items()}
        assert all(
            {r["attempt"] for r in changes[i]} == {1}
            and published_as([r["state"] for r in changes[i]], ["queued", "running", end[i]])
            for i in ids
        ), changes
        assert worker.log().count("delivered again; its attempt 1 is failed") == len(ids) // 2
    finally:
        worker.stop()


def test_a_stopped_worker_has_kept_how_far_each_changelog_partition_is_in_its_store(broker, tmp_path):
    """Recovery reads a partition's changelog from the offset its store kept; the table publisher,
    which sends the changelog records itself, must keep it as Faust does for its own sends."""
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("keeper").start().wait_ready()
    ids = [f"kept{n}" for n in range(40)]
    try:
        deployment.send_commands(*(shell(i, "true") for i in ids))
        deployment.state_changes_until_terminal(ids)
    finally:
        worker.stop()
    changelog = f"{deployment.name}-tasks-changelog"
    ends = asyncio.run(_end_offsets(broker.bootstrap, changelog, deployment.partitions))
    assert any(ends.values()), ends
    for partition, end in ends.items():
        if not end:
            continue
        store = Rdict(
            str(worker.data_dir / "v1" / "tables" / f"tasks-{partition}.db"), access_type=AccessType.read_only()
        )
        try:
            assert store.get(b"__faust\0offset__") == str(end - 1).encode(), (partition, end)
        finally:
            store.close()


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: end for tp, end in ends.items()}

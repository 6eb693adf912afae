"""A table that grows for months: list views page through it, counts come from an index that a
restart rebuilds, and ended records past their retention are deleted with tombstones.
``bench/table_scale.py`` measures the same with a million records."""

import time

from scripts.local_deployment import Deployment, WorkerProcess, shell


def test_views_page_through_the_table_and_old_records_are_deleted(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("keeper", AIRKAFKA_RETENTION_S="8").start().wait_ready()
    try:
        ids = [f"p{n:02d}" for n in range(25)]
        deployment.send_commands(
            *(shell(i, "true") if n % 5 else shell(i, "sh", "-c", "exit 1") for n, i in enumerate(ids))
        )
        changes = deployment.state_changes_until_terminal(ids)
        ended = {i: c[-1]["at"] for i, c in changes.items()}
        pages, cursor = [], None
        while True:
            status, page = worker.get("/tasks/?limit=10" + (f"&cursor={cursor}" if cursor else ""))
            assert status == 200 and page["count"] == 25
            pages.append([t["id"] for t in page["tasks"]])
            if (cursor := page["next"]) is None:
                break
        assert [len(p) for p in pages] == [10, 10, 5]
        assert sum(pages, []) == sorted(ids, key=lambda i: ended[i], reverse=True)
        failed = worker.get("/tasks/?state=failed")[1]
        assert failed["count"] == 5 and {t["id"] for t in failed["tasks"]} == set(ids[::5])
        assert worker.get("/tasks/?limit=501")[0] == worker.get("/tasks/?cursor=nope")[0] == 400
        assert worker.get("/stats/")[1]["tasks"] == {
            "queued": 0,
            "running": 0,
            "success": 20,
            "failed": 5,
            "up_for_retry": 0,
            "cancelled": 0,
        }

        worker.stop()
        worker.start().wait_ready()  # the index is rebuilt from the table
        assert worker.get("/stats/")[1]["tasks"]["success"] == 20 and "indexed: " in worker.log()

        deadline = time.monotonic() + 30
        while worker.get("/stats/")[1]["tasks"]["success"] or worker.get("/stats/")[1]["tasks"]["failed"]:
            assert time.monotonic() < deadline, worker.get("/stats/")
            time.sleep(0.5)
        assert all(worker.get(f"/tasks/{i}/")[0] == 404 for i in ids)
        tombstones = deployment.read(
            f"{deployment.name}-tasks-changelog",
            lambda r: {x["key"] for x in r if x["value"] is None} >= {i.encode() for i in ids},
        )
        assert len({x["key"] for x in tombstones if x["value"] is None}) == 25
        assert "records of queue default ended over 8s ago deleted" in worker.log()
    finally:
        worker.stop()


def test_a_deploy_during_a_retention_pass_stops_cleanly_and_sends_every_tombstone(broker, tmp_path):
    history = 40_000
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("keeper", AIRKAFKA_RETENTION_S="8")  # a pass every 2 s
    worker.start().wait_ready()
    worker.stop()
    deployment.write_history(history, span_s=10 * 24 * 3600)  # every task ended over 8 s ago
    worker.start().wait_ready(timeout=300)

    def stored(worker: WorkerProcess) -> int:
        return sum(worker.get("/stats/")[1]["tasks"].values())

    deadline = time.monotonic() + 30
    while stored(worker) == history:
        assert time.monotonic() < deadline, "retention's pass did not begin"
        time.sleep(0.01)
    signalled = time.monotonic()
    worker.stop()  # SIGTERM, in the pass
    stopped = time.monotonic() - signalled
    log = worker.log()
    assert worker.process.returncode == 0, log[-5000:]
    assert "not sent" not in log and "crash" not in log, log[-5000:]

    # Each record the pass deleted has its tombstone on the changelog, and no other one has.
    keeper = deployment.worker("keeper", AIRKAFKA_RETENTION_S="864000")  # the same data directory
    keeper.start().wait_ready(timeout=300)
    left = stored(keeper)
    keeper.stop()
    assert 0 < left < history, "the pass did not end with the worker, or ended before the signal"
    changelog = deployment.read(f"{deployment.name}-tasks-changelog", lambda r: len(r) >= 2 * history - left)
    latest = {record["key"]: record["value"] for record in changelog}
    assert len(changelog) == 2 * history - left and sum(v is not None for v in latest.values()) == left
    print(f"\nSIGTERM in a retention pass, {history - left} of {history} records deleted: stopped in {stopped:.1f}s")

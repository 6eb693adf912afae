"""A table that grows for months: list views page through it, counts come from an index that a
restart rebuilds, and ended records past their retention are deleted with tombstones.
``bench/table_scale.py`` measures the same with a million records."""

import time

from scripts.local_deployment import Deployment, shell


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

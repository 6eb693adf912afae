from airkafka_app.contract.heartbeats import SHOWN_S, Beat, roster, worker_status
from airkafka_app.worker.web.cluster_merge import merge_queues, merge_tasks, merge_workers


def test_worker_status_by_silence_and_stop():
    assert worker_status(1.0, False, 6.0) == "online"
    assert worker_status(7.0, False, 6.0) == "lost"
    assert worker_status(1.0, True, 6.0) == "stopped"
    assert worker_status(1.0, False, 6.0, maintenance=True) == "maintenance"
    assert worker_status(7.0, False, 6.0, maintenance=True) == "lost"


def test_roster_forgets_workers_silent_for_an_hour():
    last = {
        "a": Beat("a", 1000.0),
        "b": Beat("b", 990.0, stopped=True),
        "m": Beat("m", 999.0, maintenance="disk swap"),
        "old": Beat("old", 1000.0 - SHOWN_S - 1),
    }
    assert roster(last, 1000.0, 6.0) == {"a": ("online", 0.0), "b": ("stopped", 10.0), "m": ("maintenance", 1.0)}


def test_workers_merge_heartbeats_with_answers():
    answers = {
        "http://a:1": {
            "worker": "a",
            "running": 2,
            "partitions": {"default": [0, 1]},
            "tasks": {"running": 2},
            "concurrency": 4,
            "maintenance": None,
        },
        "http://c:1": {"error": "ClientConnectorError: refused"},
    }
    rows = merge_workers(answers, {"a": ("online", 0.5), "b": ("lost", 30.0)})
    assert rows == [
        {
            "worker": "a",
            "status": "online",
            "last_seen_s_ago": 0.5,
            "url": "http://a:1",
            "running": 2,
            "partitions": {"default": [0, 1]},
            "tasks": {"running": 2},
            "concurrency": 4,
            "maintenance": None,
        },
        {"worker": "b", "status": "lost", "last_seen_s_ago": 30.0},
        {"worker": None, "status": "unreachable", "url": "http://c:1", "error": "ClientConnectorError: refused"},
    ]


def test_a_worker_in_maintenance_says_so_before_its_next_heartbeat():
    rows = merge_workers({"http://a:1": {"worker": "a", "maintenance": "disk swap"}}, {"a": ("online", 0.5)})
    assert (rows[0]["status"], rows[0]["maintenance"]) == ("maintenance", "disk swap")


def test_a_member_not_yet_heard_is_online():
    rows = merge_workers({"http://n:1": {"worker": "new", "running": 0}}, {})
    assert rows[0]["worker"] == "new" and rows[0]["status"] == "online" and rows[0]["last_seen_s_ago"] is None


def test_queues_sum_states_and_counters_over_members():
    answers = {
        "u1": {"queues": {"default": {"tasks": {"success": 2, "failed": 1}, "dead_letters": 1}}},
        "u2": {"queues": {"default": {"tasks": {"success": 3}, "dead_letters": 0}, "gpu": {"tasks": {"queued": 1}}}},
        "u3": {"error": "timeout"},
    }
    assert merge_queues(answers) == {"default": {"success": 5, "failed": 1, "dead_letters": 1}, "gpu": {"queued": 1}}


def test_tasks_merge_newest_first_by_worker_and_limit():
    answers = {
        "u1": {
            "tasks": [{"id": "a", "updated_at": 3.0, "worker": "w1"}, {"id": "b", "updated_at": 1.0, "worker": "w1"}]
        },
        "u2": {"tasks": [{"id": "c", "updated_at": 2.0, "worker": "w2"}, "junk", {"id": "d", "updated_at": "x"}]},
        "u3": {"error": "HTTP 401: missing or wrong bearer token"},
    }
    merged = merge_tasks(answers, None, 3)
    assert [t["id"] for t in merged["tasks"]] == ["a", "c", "b"]
    assert merged["errors"] == {"u3": "HTTP 401: missing or wrong bearer token"}
    assert [t["id"] for t in merge_tasks(answers, "w2", 10)["tasks"]] == ["c"]


def test_a_broken_answer_adds_nothing_and_fails_nothing():
    junk = {
        "u1": {"worker": "a", "queues": "x", "tasks": 7},
        "u2": {"worker": 5, "queues": {"default": "x", "gpu": {"tasks": [1], "dead_letters": True}}},
        "u3": {"queues": {"default": {"tasks": {"success": "many", "failed": 2}}}, "tasks": "abc"},
    }
    assert merge_queues(junk) == {"default": {"failed": 2}, "gpu": {}}
    assert merge_tasks(junk, None, 10) == {"tasks": [], "errors": {}}
    assert [row["status"] for row in merge_workers(junk, {})] == ["online", "unreachable", "unreachable"]

"""How the cluster views merge the members' answers: plain functions, without Faust. An answer
that is not what a worker of this version gives (a broken or foreign member) adds nothing,
rather than failing the view."""

from __future__ import annotations

from collections import Counter
from typing import Any


def merge_workers(answers: dict[str, dict[str, Any]], roster: dict[str, tuple[str, float]]) -> list[dict[str, Any]]:
    """One row per worker: the heartbeats' status, and what the worker answered, if it is a member."""
    rows: dict[str, dict[str, Any]] = {
        worker: {"worker": worker, "status": status, "last_seen_s_ago": round(silent, 1)}
        for worker, (status, silent) in roster.items()
    }
    for url, answer in answers.items():
        name = answer.get("worker")
        if not isinstance(name, str):
            rows[url] = {"worker": None, "status": "unreachable", "url": url, "error": answer.get("error")}
            continue
        row = rows.setdefault(name, {"worker": name, "status": "online", "last_seen_s_ago": None})
        row.update(
            {field: answer.get(field) for field in ("running", "partitions", "tasks", "concurrency", "maintenance")},
            url=url,
        )
        if row["status"] == "online" and answer.get("maintenance") is not None:
            row["status"] = "maintenance"  # its own word, newer than its last heartbeat
    return sorted(rows.values(), key=lambda row: (row["worker"] is None, row["worker"] or row["url"]))


def merge_queues(answers: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Queue -> counts by state and the intake counters, summed over the members."""
    merged: dict[str, Counter[str]] = {}
    for answer in answers.values():
        for name, counts in _mapping(answer.get("queues")).items():
            counts = _mapping(counts)
            total = merged.setdefault(name, Counter())
            for field, value in [*_mapping(counts.get("tasks")).items(), *counts.items()]:
                if _is_count(value):
                    total[field] += value
    return {name: dict(counts) for name, counts in sorted(merged.items())}


def merge_tasks(answers: dict[str, dict[str, Any]], worker: str | None, limit: int) -> dict[str, Any]:
    """The newest ``limit`` tasks of all answers, those of ``worker`` only if given, and the errors."""
    tasks = [
        task
        for answer in answers.values()
        for task in _listed(answer.get("tasks"))
        if isinstance(task, dict) and (worker is None or task.get("worker") == worker)
    ]
    tasks.sort(key=_changed_at, reverse=True)
    errors = {url: answer["error"] for url, answer in answers.items() if "error" in answer}
    return {"tasks": tasks[:limit], "errors": errors}


def _changed_at(task: dict[str, Any]) -> float:
    at = task.get("updated_at")
    return float(at) if isinstance(at, (int, float)) else 0.0


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

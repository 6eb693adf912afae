"""GET /metrics on a real worker: Faust's Kafka-side metrics and AirKafka's task metrics, and the
liveness view."""

import re
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.local_deployment import Deployment, shell

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def scrape(worker) -> dict[tuple[str, tuple], float]:
    response = requests.get(worker.url + "/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_tasks_dead_letters_duplicates_and_workers(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("metered").start().wait_ready()
    try:
        before = scrape(worker)
        ok = shell("m-ok", "true")
        deployment.send_commands(ok, shell("m-bad", "sh", "-c", "exit 3"), shell("m-slow", "sleep", "30"), ok)
        deployment.send(
            [(b"m-junk", b"{not json"), (b"m-rm", b'{"id": "m-rm", "kind": "shell", "args": {"argv": ["rm"]}}')]
        )
        changes = deployment.state_changes_until_terminal(["m-ok", "m-bad"])
        assert {(c["queue"], c["kind"]) for c in changes["m-ok"]} == {("default", "shell")}
        deployment.read(deployment.dead_letters, lambda r: len(r) >= 2)
        samples = scrape(worker)
        for state, count in (("success", 1), ("failed", 1)):
            assert value(samples, "airkafka_tasks_total", queue="default", kind="shell", state=state) == count
        assert value(samples, "airkafka_task_run_seconds_count", queue="default", kind="shell") == 2
        assert value(samples, "airkafka_task_queue_wait_seconds_count", queue="default", kind="shell") == 3
        assert value(samples, "airkafka_dead_letters_total", queue="default", reason="invalid") == 1
        assert value(samples, "airkafka_dead_letters_total", queue="default", reason="not_allowed") == 1
        assert sum(v for (name, _), v in samples.items() if name == "airkafka_duplicates_total") == 1
        assert value(samples, "airkafka_tasks_in_flight", queue="default", state="running") == 1
        deadline = time.monotonic() + 20  # the first heartbeat goes out AIRKAFKA_HEARTBEAT_S after start
        while value(scrape(worker), "airkafka_workers", status="online") != 1:
            assert time.monotonic() < deadline, scrape(worker)
            time.sleep(0.5)
        # Faust's own sensor: messages received per topic since the first scrape, and the
        # offsets that give the consumer lag per partition.
        received = "airkafka_faust_messages_received_per_topic_total"
        assert (
            value(samples, received, topic=deployment.commands) - value(before, received, topic=deployment.commands)
            >= 6
        )
        ends = [
            value(samples, "airkafka_faust_topic_partition_end_offset", topic=deployment.commands, partition=str(p))
            for p in range(4)
        ]
        assert sum(ends) >= 6
        assert requests.get(worker.url + "/live/", timeout=10).json()["status"] == "alive"
        # The shipped dashboard and alert rules use only metrics a worker exports.
        exported = {name for name, _ in scrape(worker)}
        for path in DEPLOY.iterdir():
            used = set(re.findall(r"airkafka_[a-z_]+", path.read_text())) - {"airkafka"}
            assert used and used <= exported, (path.name, used - exported)
    finally:
        worker.stop()

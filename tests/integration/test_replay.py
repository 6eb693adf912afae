"""`faust -A airkafka_app replay` against a worker on the real broker."""

import json
import subprocess

import pytest
from aiokafka.partitioner import DefaultPartitioner

from scripts.local_deployment import FAUST, shell
from tests.integration.test_airflow_executor import airflow_command
from tests.transitions import published_as

AIRKAFKA = FAUST.parent / "airkafka"


@pytest.fixture(scope="module")
def worker(deployment):
    worker = deployment.worker("replayer").start().wait_ready()
    yield worker
    worker.stop()


def replay(deployment, worker, *flags: str, **env: str) -> str:
    result = subprocess.run(
        [str(AIRKAFKA), "replay", "--worker-url", worker.url, *flags],
        env=deployment.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=worker.workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def attempts(records: list[dict], task_id: str, attempt: int | None = None) -> list[tuple[str, int]]:
    """The task's (state, attempt) pairs read, of one attempt or of all."""
    pairs = [(r["value"]["state"], r["value"]["attempt"]) for r in records if r["value"]["id"] == task_id]
    return [pair for pair in pairs if attempt in (None, pair[1])]


def until_attempts(task_id: str, state: str, wanted: list[int]):
    return lambda records: [a for s, a in attempts(records, task_id) if s == state] == wanted


def test_replay_reruns_failures_skips_successes_and_forces_on_request(deployment, worker):
    deployment.send_commands(shell("r-ok", "true"), shell("r-bad", "sh", "-c", "exit 5"))
    deployment.send([(b"r-junk", b"not json")])
    deployment.state_changes_until_terminal(["r-ok", "r-bad"])

    planned = replay(deployment, worker, "--dry-run")
    assert "would replay 'r-bad'" in planned and "would replay 'r-ok'" not in planned
    assert "already successful" in planned and "invalid (was dead-lettered)" in planned

    replay(deployment, worker)
    records = deployment.read(deployment.state_changes, until_attempts("r-bad", "failed", [1, 2]))
    assert published_as(attempts(records, "r-bad", 2), [("queued", 2), ("running", 2), ("failed", 2)])
    assert published_as(attempts(records, "r-ok"), [("queued", 1), ("running", 1), ("success", 1)])

    replay(deployment, worker, "--force", "--only-failed")  # only failed tasks, even with --force
    records = deployment.read(deployment.state_changes, until_attempts("r-bad", "failed", [1, 2, 3]))
    assert published_as(attempts(records, "r-ok"), [("queued", 1), ("running", 1), ("success", 1)])

    # The producer's default partitioner put r-ok here; replay only that partition, forced.
    partition = DefaultPartitioner()(b"r-ok", list(range(deployment.partitions)), list(range(deployment.partitions)))
    replay(deployment, worker, "--force", "--partition", str(partition))
    records = deployment.read(deployment.state_changes, until_attempts("r-ok", "success", [1, 2]))
    assert published_as(attempts(records, "r-ok", 2), [("queued", 2), ("running", 2), ("success", 2)])


def test_replay_finds_ids_with_slashes_and_reads_keyless_messages(deployment, worker):
    failing = shell("dir/task 1", "sh", "-c", "exit 3")
    deployment.send_commands(failing)
    deployment.send([(None, json.dumps(shell("keyless/2", "sh", "-c", "exit 4")).encode())])
    deployment.state_changes_until_terminal(["dir/task 1", "keyless/2"])

    planned = replay(deployment, worker, "--dry-run")
    assert "would replay 'dir/task 1'" in planned and "would replay 'keyless/2'" in planned

    replay(deployment, worker)
    records = deployment.read(deployment.state_changes, until_attempts("dir/task 1", "failed", [1, 2]))
    assert attempts(records, "dir/task 1")[-1] == ("failed", 2)


def test_replay_never_sends_a_refused_command_again_unless_its_task_is_named(deployment, worker, tmp_path):
    marker = tmp_path / "ran"
    # Decodable, so only the worker can refuse it: its program is not on the allowlist.
    deployment.send_commands(shell("r-refused", "touchy", str(marker)), shell("r-fine", "true"))
    deployment.read(deployment.dead_letters, lambda r: any(x["value"]["key"] == "r-refused" for x in r))
    deployment.state_changes_until_terminal(["r-fine"])

    planned = replay(deployment, worker, "--dry-run", "--force")
    assert "would replay 'r-refused'" not in planned and "refused (dead letter)" in planned

    named = replay(deployment, worker, "--dry-run", "--id", "r-refused")
    assert "would replay 'r-refused'" in named and "would replay 'r-fine'" not in named


def test_replay_leaves_an_airflow_try_to_airflow(deployment, worker):
    """An Airflow try's state is Airflow's: replayed behind its back, a try Airflow had seen
    succeed was run again, refused by Airflow, and listed failed here."""
    try_command = airflow_command("replayed_dag", "t", "run-1", "executor-id")
    deployment.send_commands(try_command)  # this worker has no Airflow: a dead letter
    deployment.read(deployment.dead_letters, lambda r: any(x["value"]["key"] == try_command["id"] for x in r))
    planned = replay(deployment, worker, "--dry-run", "--force", "--id", try_command["id"])
    assert "clear it in Airflow" in planned and f"would replay '{try_command['id']}'" not in planned

"""The ``airkafka`` console script on a real worker: submit (and wait for the end, exiting with the
task's code), tasks, task, logs, workers and dead-letters."""

import json
import subprocess
import sys
from pathlib import Path

from scripts.local_deployment import Deployment

AIRKAFKA = Path(sys.executable).parent / "airkafka"


def airkafka(worker, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AIRKAFKA), *args],
        env=worker.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=worker.workdir,
    )


def test_submit_waits_and_exits_with_the_task_code_and_tasks_lists_them(broker, tmp_path):
    deployment = Deployment(broker.bootstrap, tmp_path)
    worker = deployment.worker("cli").start().wait_ready()
    url = ["--worker-url", worker.url]
    try:
        failed = airkafka(worker, "submit", "--id", "c-bad", "--wait", "--", "sh", "-c", "echo no >&2; exit 3")
        assert failed.returncode == 3, failed.stderr[-2000:]
        assert "c-bad failed" in failed.stdout
        ok = airkafka(worker, "--json", "submit", "--wait", "--id", "c-ok", "true")
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert json.loads(ok.stdout.strip().splitlines()[-1])["state"] == "success"
        refused = airkafka(worker, "submit", "--wait", "--", "rm", "-rf", "/tmp/x")
        assert refused.returncode == 1 and "dead_letter" in refused.stdout and "AIRKAFKA_SHELL_ALLOW" in refused.stdout
        sent = airkafka(
            worker, "submit", "-", stdin=json.dumps({"id": "c-stdin", "kind": "shell", "args": {"argv": ["true"]}})
        )
        assert sent.returncode == 0 and sent.stdout.startswith("sent c-stdin to "), sent.stderr[-2000:]
        invalid = airkafka(worker, "submit", "-", stdin='{"id": "x"}')
        assert invalid.returncode != 0 and "not sent: 'kind' must be" in invalid.stderr
        deployment.state_changes_until_terminal(["c-stdin"])

        listed = airkafka(worker, "--json", "tasks", "--state", "failed", *url)
        assert [(t["id"], t["exit_code"]) for t in json.loads(listed.stdout)] == [("c-bad", 3)], listed.stderr
        everything = airkafka(worker, "tasks", *url)
        assert all(name in everything.stdout for name in ("c-bad", "c-ok", "c-stdin"))
        # One line per task, under a line of headers, whatever its detail holds.
        assert len(everything.stdout.splitlines()) == 1 + len(
            json.loads(airkafka(worker, "--json", "tasks", *url).stdout)
        )
        searched = airkafka(worker, "--json", "tasks", "--search", "C-STD", *url)
        assert [t["id"] for t in json.loads(searched.stdout)] == ["c-stdin"], searched.stderr
        assert json.loads(airkafka(worker, "--json", "tasks", "--dag-id", "etl", *url).stdout) == []
        none = airkafka(worker, "tasks", "--state", "running", *url)
        assert none.returncode == 0 and none.stdout == "no running tasks in queue default\n", none.stdout
        workers = airkafka(worker, "--json", "workers", *url)
        assert [(w["worker"], w["status"]) for w in json.loads(workers.stdout)] == [("cli", "online")], workers.stderr
        letters = airkafka(worker, "dead-letters", *url)
        assert letters.returncode == 0 and "AIRKAFKA_SHELL_ALLOW" in letters.stdout, letters.stderr[-2000:]
        shown = airkafka(worker, "task", "c-ok", *url)
        assert json.loads(shown.stdout)["state"] == "success"
        unknown = airkafka(worker, "task", "nope", *url)
        assert unknown.returncode != 0 and "HTTP 404" in unknown.stderr

        said = airkafka(worker, "logs", "c-bad")
        assert said.returncode == 0 and said.stdout == "no\n", (said.stdout, said.stderr[-2000:])
        script = "echo one; sleep 2; echo two; printf '\\033[31mred\\n'"
        assert airkafka(worker, "submit", "--id", "c-talks", "--", "sh", "-c", script).returncode == 0
        followed = airkafka(worker, "logs", "--follow", "c-talks", *url)
        assert followed.stdout == "one\ntwo\n\\x1b[31mred\n", (followed.stdout, followed.stderr[-2000:])
    finally:
        worker.stop()

"""The cluster dashboard at ``/``, in Debian's chromium driven by Playwright, on two real workers:
it lists both, follows tasks to their end without a reload, shows a failure's detail, cancels
and replays with the token, shows hostile text as text, and shows a killed worker lost."""

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from scripts.local_deployment import Deployment, shell, wait_for_split

CHROMIUM = Path("/usr/bin/chromium")
# The flags this machine's closed network needs: without them Chromium's own connections fail.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "dashboard-token"
FAST_LOSS = {
    "AIRKAFKA_HEARTBEAT_S": "1",
    "AIRKAFKA_WORKER_LOST_AFTER_S": "6",
    "AIRKAFKA_SESSION_TIMEOUT_S": "6",
    "AIRKAFKA_WEB_TOKEN": TOKEN,
}
HOSTILE_ID = "<img src=x onerror=document.title='owned'>"
# Columns: task, DAG, Airflow task, run, try, kind, state...; and task, DAG, ..., worker, exit code.
FEED_STATE, FAILED_EXIT_CODE = 6, 6
AIRFLOW_TRY = {
    "dag_id": "nightly_etl",
    "task_id": "load",
    "run_id": "scheduled__2026-12-06",
    "map_index": 3,
    "try_number": 2,
}
# An Airflow try's output as the record keeps it: the last 4 KiB of its log's JSON records, the first cut.
AIRFLOW_DETAIL = "\n".join(
    [
        "exit code 1",
        'ed": "2026-12-06T10:00:00Z"}',
        '{"timestamp": "2026-12-06T10:00:01Z", "level": "info", "logger": "task", "event": "loading rows"}',
        '{"timestamp": "2026-12-06T10:00:02Z", "level": "error", "logger": "task", "event": "table locked"}',
    ]
)


def airflow_record(task_id: str) -> bytes:
    """A failed Airflow try's record, as the changelog holds it."""
    now = time.time()
    command = {"id": task_id, "kind": "airflow", "args": {"workload": "{}", "external_executor_id": None}}
    record = {
        **{"id": task_id, "state": "failed", "attempt": 1, "command": command, "worker": "earlier"},
        **{"exit_code": 1, "detail": AIRFLOW_DETAIL, "queued_at": now - 9, "started_at": now - 8, "ended_at": now - 5},
        **{"updated_at": now - 5, "first_attempt": 1, "source": "0:0", "airflow": AIRFLOW_TRY},
    }
    return json.dumps(record).encode()


@pytest.fixture
def page():
    assert CHROMIUM.exists(), "Debian's chromium is missing: make test installs it (apt-get install chromium)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def send(deployment: Deployment, *commands: dict) -> None:
    """Playwright's sync API keeps an event loop running in this thread; the producer needs its own."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(deployment.send_commands, *commands).result()


def feed_state(page: Page, task_id: str):
    return page.locator(f'#feed tr[data-task="{task_id}"] td').nth(FEED_STATE)


def task_state(page: Page):
    return page.locator("#task-fields tr").filter(has_text="State").locator("td").nth(1)


def test_dashboard_follows_the_cluster(broker, tmp_path, page):
    deployment = Deployment(broker.bootstrap, tmp_path)
    a = deployment.worker("dash-a", **FAST_LOSS)
    a.start().wait_ready()  # its topics made, an Airflow try's record goes in its changelog
    a.stop()
    airflow_id = f"af-{'a1' * 20}"
    with ThreadPoolExecutor(1) as thread:  # out of Playwright's event loop, as send() is
        changelog = f"{deployment.name}-tasks-changelog"
        thread.submit(deployment.send_to, changelog, [(airflow_id.encode(), airflow_record(airflow_id))]).result()
    a.start()
    b = deployment.worker("dash-b", **FAST_LOSS).start()
    try:
        a.wait_ready()
        b.wait_ready()
        wait_for_split(a, b)
        page.goto(a.url + "/")
        workers = page.locator("#workers tbody tr")
        for name in ("dash-a", "dash-b"):
            expect(workers.filter(has_text=name).locator("td").nth(1)).to_have_text("online", timeout=20_000)

        send(
            deployment,
            shell("d-ok", "sleep", "1"),
            shell("d-bad", "sh", "-c", "echo boom >&2; exit 3"),
            shell("d-long", "sleep", "300"),
            shell(HOSTILE_ID, "true"),
            shell("d-refused", "rm", "-rf", "/tmp/nothing"),  # not on the allowlist: a dead letter
        )
        expect(feed_state(page, "d-ok")).to_have_text("success", timeout=30_000)
        page.reload()  # the last hour is the workers': drawn at once after a reload
        expect(page.locator("#chart-ended rect.bar")).not_to_have_count(0, timeout=10_000)
        expect(page.locator("#chart-runtime circle.p50")).not_to_have_count(0)
        rate = page.locator('#queues tr[data-queue="default"] td').nth(8)
        expect(rate).not_to_have_text("0", timeout=10_000)
        failed = page.locator('#failed tr[data-task="d-bad"]')
        expect(failed).to_contain_text("boom", timeout=30_000)
        expect(failed.locator("td").nth(FAILED_EXIT_CODE)).to_have_text("3")
        hostile = page.locator("#feed tbody tr").filter(has_text=HOSTILE_ID)
        expect(hostile.locator("td").nth(FEED_STATE)).to_have_text("success", timeout=30_000)
        assert page.locator("#feed img").count() == 0 and page.title() == "AirKafka"
        letter = page.locator("#dead-letters tbody tr").filter(has_text="d-refused")
        expect(letter).to_contain_text("AIRKAFKA_SHELL_ALLOW", timeout=30_000)
        expect(letter.locator("td").nth(4)).to_contain_text('"argv"')

        # An Airflow try shows its DAG, task, run and try; the lists filter by DAG and by any id.
        row = page.locator(f'#failed tr[data-task="{airflow_id}"] td')
        expect(row.nth(1)).to_have_text("nightly_etl", timeout=30_000)
        assert [row.nth(n).text_content() for n in (2, 3, 4)] == ["load [3]", "scheduled__2026-12-06", "2"]
        expect(row.nth(8)).to_contain_text("ERROR task: table locked")  # its log, readable
        page.fill("#feed-dag", "nightly_etl")
        expect(page.locator("#feed tbody tr")).to_have_count(1)
        expect(page.locator(f'#feed tr[data-task="{airflow_id}"]')).to_have_count(1)
        page.fill("#feed-dag", "")
        page.fill("#feed-search", "D-BA")  # any part of an id, case aside
        expect(page.locator("#feed tbody tr")).to_have_count(1)
        expect(page.locator('#feed tr[data-task="d-bad"]')).to_have_count(1)
        page.fill("#feed-search", "")
        page.locator(f'#failed tr[data-task="{airflow_id}"] a').click()
        expect(task_state(page)).to_have_text("failed", timeout=10_000)
        expect(page.locator("#task-fields tr").filter(has_text="DAG")).to_contain_text("nightly_etl")
        detail = page.locator("#task-detail")
        expect(detail).to_contain_text("ERROR task: table locked")
        assert (
            '{"' not in detail.text_content() and 'ed": ' not in detail.text_content()
        )  # readable, cut record left out
        link = page.locator("#task-log-link a").get_attribute("href")
        assert "/dags/nightly_etl/runs/scheduled__2026-12-06/tasks/load/mapped/3?try_number=2" in link, link
        expect(page.locator("#task-attempts-section")).to_be_hidden()  # no earlier attempt
        page.goto(a.url + "/#/task/default/no-such-task")
        expect(page.locator("#task-detail")).to_contain_text("no task no-such-task in queue default")
        expect(page.locator("#task-fields tr")).to_have_count(0)  # not the task shown before
        expect(page.locator("#cancel")).to_be_disabled()

        page.goto(a.url + "/")
        page.locator('#feed tr[data-task="d-long"] a').click()
        expect(task_state(page)).to_have_text("running", timeout=30_000)
        page.locator("#cancel").click()  # no token typed yet
        expect(page.locator("#action-result")).to_contain_text("refused: missing or wrong bearer token")
        page.fill("#token", TOKEN)
        page.locator("#cancel").click()
        expect(page.locator("#action-result")).to_contain_text("cancel sent")
        expect(task_state(page)).to_have_text("cancelled", timeout=30_000)
        expect(page.locator("#cancel")).to_be_disabled()  # nothing left to cancel

        page.goto(a.url + "/#/task/default/d-ok")
        expect(task_state(page)).to_have_text("success", timeout=10_000)
        page.reload()  # opened at a task's address: its queue is selected, its run timed
        expect(page.locator("#queue")).to_have_value("default", timeout=10_000)
        expect(page.locator("#task-fields tr").filter(has_text="Duration")).to_contain_text(" s")
        page.once("dialog", lambda dialog: dialog.dismiss())  # asked before a forced replay
        page.locator("#replay").click()
        expect(page.locator("#action-result")).to_have_text("replay not sent")

        page.goto(a.url + "/#/task/default/d-bad")
        expect(task_state(page)).to_have_text("failed", timeout=10_000)
        page.locator("#replay").click()
        expect(page.locator("#action-result")).to_contain_text("replay sent")
        attempt = page.locator("#task-fields tr").filter(has_text=re.compile("^Attempt")).locator("td").nth(1)
        expect(attempt).to_have_text("2", timeout=30_000)
        expect(task_state(page)).to_have_text("failed", timeout=30_000)
        earlier = page.locator("#task-attempts tbody tr")
        expect(earlier).to_have_count(1)
        expect(earlier.locator("td").nth(1)).to_have_text("failed")
        expect(earlier.locator("td").nth(6)).to_contain_text("boom")

        page.goto(a.url + "/")
        page.once("dialog", lambda dialog: dialog.accept("disk swap"))
        workers.filter(has_text="dash-a").get_by_role("button", name="Maintenance…").click()
        expect(page.locator("#worker-action")).to_contain_text("dash-a in maintenance: sent")
        expect(workers.filter(has_text="dash-a").locator("td").nth(1)).to_have_text("maintenance", timeout=20_000)
        expect(workers.filter(has_text="dash-a").locator("td").nth(2)).to_have_text("disk swap")
        workers.filter(has_text="dash-a").get_by_role("button", name="End maintenance").click()
        expect(workers.filter(has_text="dash-a").locator("td").nth(1)).to_have_text("online", timeout=20_000)
        b.kill()
        expect(workers.filter(has_text="dash-b").locator("td").nth(1)).to_have_text("lost", timeout=30_000)
        expect(workers.filter(has_text="dash-a").locator("td").nth(1)).to_have_text("online")
    finally:
        a.stop()
        b.kill()

"""Regenerate the dashboard's screenshots in docs/: the overview (dashboard.png), an Airflow try's
page (dashboard-task.png) and the dead letters (dashboard-dead-letters.png). A local broker, two
workers, a mix of tasks, and Debian's chromium. ``python scripts/dashboard_screenshot.py [dir]``"""

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from scripts.local_deployment import Deployment, shell, wait_for_split
from scripts.local_kafka import start_broker
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS, airflow_record

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "docs")
AIRFLOW_ID = "af-" + "5e" * 20


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="airkafka-shot-"))
    broker = start_broker(root / "kafka")
    deployment = Deployment(broker.bootstrap, root)
    workers = [deployment.worker(name, AIRKAFKA_WEB_TOKEN="t") for name in ("worker-a", "worker-b")]
    try:
        workers[0].start().wait_ready()  # its topics made, an Airflow try's record is written
        workers[0].stop()
        deployment.send_to(f"{deployment.name}-tasks-changelog", [(AIRFLOW_ID.encode(), airflow_record(AIRFLOW_ID))])
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        wait_for_split(*workers)
        for wave in range(3):  # a few minutes' worth on the charts
            deployment.send_commands(*(shell(f"job-{wave}-{n}", "sleep", f"0.{n % 9}") for n in range(40)))
            time.sleep(2)
        deployment.send_commands(
            shell("nightly-export", "sh", "-c", "echo 'export: connection refused' >&2; exit 2"),
            shell("long-backfill", "sleep", "600"),
            shell("cleanup", "rm", "-rf", "/var/tmp/old"),  # not on the allowlist: a dead letter
        )
        deployment.send([(b"broken-1", b'{"id": "broken-1", "kind": '), (b"broken-2", b"\xff\xfe not utf-8")])
        time.sleep(4)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(workers[0].url + "/")
            page.wait_for_selector('#feed tr[data-task="nightly-export"]')
            page.wait_for_selector("#dead-letters tbody tr")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(OUT / "dashboard.png"))
            page.locator("#dead-letters").screenshot(path=str(OUT / "dashboard-dead-letters.png"))
            page.goto(f"{workers[0].url}/#/task/default/{AIRFLOW_ID}")
            page.wait_for_selector("#task-fields tr")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "dashboard-task.png"))
            browser.close()
        print(OUT)
    finally:
        for worker in workers:
            worker.kill()
        broker.stop()


if __name__ == "__main__":
    main()

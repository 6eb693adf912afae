"""Regenerate docs/dashboard.png: a local broker, two workers, a mix of tasks, and the dashboard in
Debian's chromium. ``python scripts/dashboard_screenshot.py [out.png]``"""

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from scripts.local_deployment import Deployment, shell, wait_for_split
from scripts.local_kafka import start_broker
from tests.integration.test_dashboard import CHROMIUM, CHROMIUM_ARGS

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "docs" / "dashboard.png")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="airkafka-shot-"))
    broker = start_broker(root / "kafka")
    deployment = Deployment(broker.bootstrap, root)
    workers = [deployment.worker(name, AIRKAFKA_WEB_TOKEN="t") for name in ("worker-a", "worker-b")]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        wait_for_split(*workers)
        commands = [shell(f"job-{n}", "sleep", str(n % 4)) for n in range(24)]
        commands += [
            shell("nightly-export", "sh", "-c", "echo 'export: connection refused' >&2; exit 2"),
            shell("long-backfill", "sleep", "600"),
        ]
        deployment.send_commands(*commands)
        time.sleep(4)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(workers[0].url + "/")
            page.wait_for_selector('#feed tr[data-task="nightly-export"]')
            page.wait_for_timeout(2500)  # two polls: the rate column fills
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
        print(OUT)
    finally:
        for worker in workers:
            worker.kill()
        broker.stop()


if __name__ == "__main__":
    main()

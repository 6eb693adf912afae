"""Importing any module of the package builds nothing and reads no setting: the worker is
assembled by ``worker/assembly.build`` from a settings object, and only then.

Checked in a fresh interpreter with a clean environment, importing every module that does not
need Airflow itself (the Airflow side's are read by test_layout.py): no Faust app, service, topic,
table or agent is made, no ``Settings`` is built, no Prometheus metric is registered, no command
line command is added, no ``AIRKAFKA_*`` or Airflow variable is read, no thread is started.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, json, os, pkgutil, sys, threading

import faust, mode
from faust.cli import base as cli_base
from prometheus_client import REGISTRY

import airkafka_app.contract.settings as settings_module

made = []

def watch(cls, what):
    original = cls.__init__
    def init(self, *args, **kwargs):
        made.append(what)
        original(self, *args, **kwargs)
    cls.__init__ = init

watch(faust.App, "faust.App")
watch(mode.Service, "a mode Service")
watch(faust.Topic, "a Faust topic")
watch(settings_module.Settings, "Settings")

read = []

class Environ(dict):
    def _seen(self, key):
        if str(key).startswith(("AIRKAFKA_", "AIRFLOW__AIRKAFKA")):
            read.append(key)
    def __getitem__(self, key):
        self._seen(key)
        return super().__getitem__(key)
    def get(self, key, default=None):
        self._seen(key)
        return super().get(key, default)
    def __contains__(self, key):
        self._seen(key)
        return super().__contains__(key)

os.environ = Environ(os.environ)
collectors = set(REGISTRY._collector_to_names)
commands = set(cli_base.cli.commands)
threads = threading.active_count()

imported, skipped = [], []
import airkafka_app
for info in pkgutil.walk_packages(airkafka_app.__path__, "airkafka_app."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        if exc.name.split(".")[0] != "airflow":
            raise
        skipped.append(info.name)
        continue
    imported.append(info.name)

print(json.dumps({
    "imported": imported,
    "skipped": skipped,
    "made": made,
    "read": read,
    "metrics": len(set(REGISTRY._collector_to_names) - collectors),
    "commands": sorted(set(cli_base.cli.commands) - commands),
    "threads": threading.active_count() - threads,
    "app_built": airkafka_app._app is not None,
}))
"""


def probe() -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRKAFKA_", "AIRFLOW"))}
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_every_module_builds_nothing_and_reads_no_setting():
    found = probe()
    # The probe saw the worker's modules, not an empty walk.
    assert {"airkafka_app.worker.assembly", "airkafka_app.worker.intake", "airkafka_app.worker.web.views"} <= set(
        found["imported"]
    )
    # Those that need Airflow itself, and only those.
    assert found["skipped"] == ["airkafka_app.airflow.executor", "airkafka_app.executor"]
    assert found["made"] == []
    assert found["read"] == []
    assert found["metrics"] == 0
    assert found["commands"] == []
    assert found["threads"] == 0
    assert found["app_built"] is False


def test_the_probe_sees_a_build():
    """What the probe counts does move when a worker is built."""
    script = PROBE.replace(
        "print(json.dumps({",
        "from airkafka_app.worker.assembly import build\nbuild(settings_module.Settings())\nprint(json.dumps({",
    )
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AIRKAFKA_", "AIRFLOW"))}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "faust.App" in found["made"] and "Settings" in found["made"]
    assert "AIRKAFKA_BROKER" in found["read"]
    assert found["commands"] == ["replay"]  # `faust -A airkafka_app replay`; the others are airkafka's

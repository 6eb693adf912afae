"""The modules that run in Airflow's interpreter, where Faust cannot be installed, import without
Faust, mode or aiokafka: a stray import here would break the scheduler, and only the slow Airflow
tests would notice."""
import subprocess
import sys

import pytest

CONTRACT = ["airkafka_app", "airkafka_app.settings", "airkafka_app.defaults", "airkafka_app.commands",
            "airkafka_app.states", "airkafka_app.task_record", "airkafka_app.dead_letters",
            "airkafka_app.airflow_tasks", "airkafka_app.internal", "airkafka_app.kafka_connection",
            "airkafka_app.heartbeats", "airkafka_app.provider", "airkafka_app.provider_cli"]
BLOCKED = ("faust", "mode", "aiokafka")
PROBE = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # importing it now raises ModuleNotFoundError
import importlib
importlib.import_module({module!r})
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None)
assert not leaked, leaked
"""


@pytest.mark.parametrize("module", CONTRACT)
def test_a_contract_module_imports_without_faust(module):
    done = subprocess.run([sys.executable, "-c", PROBE.format(blocked=BLOCKED, module=module)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_probe_fails_on_a_faust_module():
    done = subprocess.run([sys.executable, "-c", PROBE.format(blocked=BLOCKED, module="airkafka_app.topics")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "import of faust halted" in done.stderr

"""The boundaries of the code, checked without a broker.

- What runs in Airflow's interpreter, where Faust cannot be installed, imports without Faust,
  mode or aiokafka: a stray import would break the scheduler, and only the slow Airflow tests
  would notice. Checked by importing each module with those three blocked.
- The contract imports nothing of the package outside itself.
- Data flows one way, commands → agents → tables → state changes: nothing imports the agents,
  the tables and the runners reach neither the agents nor the pool, and nothing but the web
  side imports the web side. The package's parts import each other without a cycle.
"""

import ast
import subprocess
import sys
from collections import defaultdict
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airkafka_app"
CONTRACT = sorted(
    f"airkafka_app.contract.{p.stem}" for p in (PACKAGE / "contract").glob("*.py") if p.stem != "__init__"
)
# What Airflow's interpreter imports; the executor and the log handler need Airflow itself, so
# they are checked only by reading their imports.
AIRFLOW_SIDE = [
    "airkafka_app",
    "airkafka_app.contract",
    *CONTRACT,
    "airkafka_app.provider",
    "airkafka_app.provider_cli",
    "airkafka_app.console",
    "airkafka_app.web.cluster_merge",
]
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


def probe(module: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(blocked=BLOCKED, module=module)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("module", AIRFLOW_SIDE)
def test_what_airflow_imports_imports_without_faust(module):
    done = probe(module)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_probe_fails_on_a_faust_module():
    done = probe("airkafka_app.topics")
    assert done.returncode != 0 and "import of faust halted" in done.stderr


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(prefix: str = "airkafka_app") -> dict[str, set[str]]:
    """Module -> the modules it imports whose names start with ``prefix``, wherever in its body."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from airkafka_app import topics` imports a module; `from x.y import name` imports x.y.
                names |= {
                    f"{node.module}.{alias.name}"
                    if (PACKAGE.parent / node.module.replace(".", "/") / f"{alias.name}.py").exists()
                    else node.module
                    for alias in node.names
                }
        found[module_name(path)] = {name for name in names if name.startswith(prefix)}
    return found


def part(module: str) -> str:
    """A subpackage, or a module of the package's top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module


def offenders(rule) -> list[tuple[str, str]]:
    return sorted((module, name) for module, names in imports().items() for name in names if rule(module, name))


def test_the_rules_see_the_imports():
    graph = imports()
    assert "airkafka_app.contract.settings" in graph["airkafka_app.worker_pool"]
    assert "airkafka_app.topics" in graph["airkafka_app.queues"]  # `from airkafka_app import topics`
    assert "airkafka_app.tables.tasks" in graph["airkafka_app.worker_pool"]


def test_the_airflow_side_reads_no_faust_module_even_lazily():
    side = {*AIRFLOW_SIDE, "airkafka_app.executor", "airkafka_app.airflow_logs"}
    everything = imports("")
    assert sorted((m, n) for m in side for n in everything[m] if n.split(".")[0] in BLOCKED) == []
    assert sorted((m, n) for m in side for n in imports()[m] if n not in side and m != "airkafka_app") == []


def test_the_contract_imports_only_the_contract():
    assert offenders(lambda m, n: part(m) == "contract" and part(n) != "contract") == []


def test_the_kafka_plumbing_imports_only_the_contract():
    assert offenders(lambda m, n: part(m) == "kafka" and part(n) not in ("contract", "kafka")) == []


def test_nothing_reaches_back_up_the_flow():
    upstream = {"agents", "worker_pool", "web", "cli", "replay"}
    assert (
        offenders(lambda m, n: part(m) in ("tables", "runners") and part(n) in upstream | {"tables"} - {part(m)}) == []
    )
    assert offenders(lambda m, n: part(n) == "agents" and m != "airkafka_app" and part(m) != "agents") == []
    assert offenders(lambda m, n: part(n) == "web" and m != "airkafka_app" and part(m) != "web") == []


def test_the_parts_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, names in imports().items():
        if module == "airkafka_app":  # the registration of everything, on first use of `app`
            continue
        graph[part(module)] |= {part(name) for name in names if part(name) not in (part(module), "airkafka_app")}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as cycle:
        pytest.fail(f"import cycle between the package's parts: {cycle.args[1]}")

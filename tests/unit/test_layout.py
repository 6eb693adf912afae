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
    "airkafka_app.airflow.provider",
    "airkafka_app.airflow.cli",
    "airkafka_app.airflow.ends",
    "airkafka_app.console",
    "airkafka_app.worker.web.cluster_merge",
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
    done = probe("airkafka_app.worker.topics")
    assert done.returncode != 0 and "import of faust halted" in done.stderr


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run_time_nodes(tree: ast.AST):
    """The nodes of a module, but for those under ``if TYPE_CHECKING:``: imports for annotations
    load nothing at run time."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        yield node
        yield from _run_time_nodes(node)


def imports(prefix: str = "airkafka_app") -> dict[str, set[str]]:
    """Module -> the modules it imports whose names start with ``prefix``, wherever in its body."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        names: set[str] = set()
        for node in _run_time_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                # `from airkafka_app.worker import topics` imports a module; `from x.y import name` imports x.y.
                names |= {
                    f"{node.module}.{alias.name}"
                    if (PACKAGE.parent / node.module.replace(".", "/") / f"{alias.name}.py").exists()
                    else node.module
                    for alias in node.names
                }
        found[module_name(path)] = {name for name in names if name.startswith(prefix)}
    return found


def part(module: str) -> str:
    """A part of the tree: ``contract``, ``airflow``, one of the worker's subpackages or
    top-level modules (``worker.pool``, ``worker.tables``), or a module of the package's top level."""
    parts = module.split(".")[1:]
    if parts[:1] == ["worker"] and len(parts) > 1:
        return f"worker.{parts[1]}"
    return parts[0] if parts else module


def offenders(rule) -> list[tuple[str, str]]:
    return sorted((module, name) for module, names in imports().items() for name in names if rule(module, name))


def test_the_rules_see_the_imports():
    graph = imports()
    assert "airkafka_app.contract.settings" in graph["airkafka_app.worker.control"]
    # `from airkafka_app.worker import task_metrics` imports a module
    assert "airkafka_app.worker.task_metrics" in graph["airkafka_app.worker.intake"]
    assert "airkafka_app.worker.tables.tasks" in graph["airkafka_app.worker.pool"]
    # imports for annotations only are left out
    assert "airkafka_app.worker.queues" not in graph["airkafka_app.worker.liveness"]


def test_the_airflow_side_reads_no_faust_module_even_lazily():
    side = {*AIRFLOW_SIDE, "airkafka_app.airflow.executor", "airkafka_app.airflow.log_handler"}
    everything = imports("")
    assert sorted((m, n) for m in side for n in everything[m] if n.split(".")[0] in BLOCKED) == []
    # The package's `app` and the `airkafka` script load the worker when they are used: in Airflow's
    # venv the script says which packages are missing (test_packaging.py).
    starters = {"airkafka_app", "airkafka_app.console"}
    assert sorted((m, n) for m in side - starters for n in imports()[m] if n not in side) == []


def test_the_contract_imports_only_the_contract():
    assert offenders(lambda m, n: part(m) == "contract" and part(n) != "contract") == []


def test_the_airflow_side_imports_only_itself_and_the_contract():
    assert offenders(lambda m, n: part(m) == "airflow" and part(n) not in ("airflow", "contract")) == []


def test_the_decisions_and_the_kafka_plumbing_import_only_the_contract():
    for inner in ("worker.core", "worker.kafka"):
        assert offenders(lambda m, n, inner=inner: part(m) == inner and part(n) not in ("contract", inner)) == []


def test_nothing_reaches_back_up_the_flow():
    upstream = {"worker.intake", "worker.pool", "worker.web", "worker.cli", "worker.replay", "worker.assembly"}
    below = ("worker.tables", "worker.runners")
    assert offenders(lambda m, n: part(m) in below and part(n) in upstream | set(below) - {part(m)}) == []
    # Only the assembly wires the agents and the web side in.
    for wired in ("worker.intake", "worker.web"):
        assert offenders(lambda m, n, w=wired: part(n) == w and part(m) not in (w, "worker.assembly")) == []


def test_the_parts_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, names in imports().items():
        if module == "airkafka_app":  # the app, built on first use of `app`
            continue
        graph[part(module)] |= {part(name) for name in names if part(name) not in (part(module), "airkafka_app")}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as cycle:
        pytest.fail(f"import cycle between the package's parts: {cycle.args[1]}")


def test_a_handful_of_modules_sit_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "console.py", "executor.py"]

"""docs/configuration.md's table and defaults.py agree: every variable is documented once, with
the default the code uses."""

import re
from pathlib import Path

from airkafka_app.contract.defaults import DEFAULTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(AIRKAFKA_\w+)` \| ([^|]+) \|", re.M)
# Empty in DEFAULTS, computed where they are read: the table shows what they become.
COMPUTED = {"AIRKAFKA_EXECUTOR_GROUP", "AIRKAFKA_WEB_BIND", "AIRKAFKA_WORKER_NAME", "AIRKAFKA_HEARTBEATS_TOPIC"}


def documented() -> dict[str, str]:
    rows = ROW.findall(DOC.read_text())
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a variable documented twice"
    return {name: cell.strip() for name, cell in rows}


def test_every_setting_is_documented_and_nothing_else():
    assert set(documented()) == set(DEFAULTS) | COMPUTED


def test_the_documented_defaults_are_the_code_s():
    for name, cell in documented().items():
        if name in COMPUTED:
            continue
        if DEFAULTS[name] == "":
            assert cell.startswith("*(empty"), (name, cell)
        else:
            assert re.match(r"`([^`]*)`", cell).group(1) == DEFAULTS[name], (name, cell, DEFAULTS[name])

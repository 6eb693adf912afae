"""A plain (not editable) install must carry every module the worker imports."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_every_module_of_the_package(tmp_path):
    # A copy, because setuptools would reuse a stale build/ directory of the work tree.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
    )
    (wheel,) = tmp_path.glob("airkafka-*.whl")
    packaged = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    sources = {str(p.relative_to(ROOT)) for p in (ROOT / "airkafka_app").rglob("*.py")}
    assert sources - packaged == set()

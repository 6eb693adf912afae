"""What a task's process environment holds: the worker's, less its secrets, plus the command's env.

The worker takes its settings, secrets included, from its environment at start-up, then removes
from that environment every variable on ``AIRKAFKA_TASK_ENV_DENY``, so that neither its task
processes nor its spawn and fork servers inherit them. A command's ``env`` may set only the
names ``AIRKAFKA_SHELL_ENV_ALLOW`` admits, and never one that chooses which program runs or
injects code into it, even when a pattern on the allowlist matches it.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from airkafka_app.contract.commands import InvalidCommand, shown

# Names that pick the program, the libraries it loads, or code its interpreter runs first.
PROGRAM_CHANGING = (
    "PATH",
    "LD_*",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "PYTHON*",
    "PERL5*",
    "PERLLIB",
    "PERLIO*",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "MALLOC_*",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LUA_*",
    "TCLLIBPATH",
    "GIT_*",
    "BROWSER",
)
PR_SET_DUMPABLE = 4
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Linux's MAX_ARG_STRLEN: the longest argument or NAME=value string exec accepts.
MAX_ARG_BYTES = 128 * 1024


def matches(name: str, patterns: Iterable[str]) -> bool:
    """``name`` against shell-style patterns, ignoring case: ``AIRKAFKA_*``, ``*SECRET*``."""
    upper = name.upper()
    return any(fnmatchcase(upper, pattern.upper()) for pattern in patterns)


def scrub(deny: Iterable[str]) -> list[str]:
    """Remove the denied variables from this process's environment, and their values from the
    environment it started with; their names, sorted.

    ``unsetenv`` forgets a variable, but its bytes stay where exec put them, which any process
    allowed to trace this one reads as ``/proc/<pid>/environ``; so they are overwritten there too,
    and the process is made non-dumpable, which keeps its /proc files from processes of its user
    that lack CAP_SYS_PTRACE (tasks of a worker that does not run as root, say).
    """
    removed = sorted(name for name in os.environ if matches(name, deny))
    for name in removed:
        del os.environ[name]
    _wipe_initial_environment(deny)
    _set_not_dumpable()
    return removed


def _wipe_initial_environment(deny: Iterable[str]) -> None:
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    # env_start and env_end are the 50th and 51st fields of stat(5); these fields start at the 3rd.
    start, end = int(fields[47]), int(fields[48])
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        block = mem.read(end - start)
        offset = 0
        for entry in block.split(b"\0"):
            name, sep, value = entry.partition(b"=")
            if sep and value and matches(name.decode(errors="replace"), deny):
                mem.seek(start + offset + len(name) + 1)
                mem.write(b"\0" * len(value))
            offset += len(entry) + 1


def _set_not_dumpable() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def check_text(what: str, text: str) -> None:
    """An argument, a name, a value or a directory that exec can take."""
    if "\0" in text:
        raise InvalidCommand(f"{what} holds a NUL byte")
    if len(text) * 4 > MAX_ARG_BYTES and len(text.encode()) > MAX_ARG_BYTES:
        raise InvalidCommand(f"{what} is over {MAX_ARG_BYTES} bytes")


def check_env(env: Mapping[str, str], allow: Iterable[str]) -> None:
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name):
            raise InvalidCommand(f"env name {shown(name)} must be letters, digits and '_', not starting with a digit")
        if matches(name, PROGRAM_CHANGING):
            raise InvalidCommand(f"env name {name!r} could change which program runs, or what it runs first")
        if not matches(name, allow):
            raise InvalidCommand(f"env name {name!r} is not on AIRKAFKA_SHELL_ENV_ALLOW")
        check_text(f"env {name!r}", value)

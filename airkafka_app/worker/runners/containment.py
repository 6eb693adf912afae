"""Containers for tasks: whatever a task starts, in whatever session, ends with it.

A process group is no container: ``setsid`` leaves it, and a daemonised grandchild outlives
its task and holds its output open. So each task runs in a container of its own:

- ``cgroup``: a cgroup v2 group per task, under the spawning process's own, killed whole by
  ``cgroup.kill``, which no process can leave. Limits go where their controllers are: the v2
  group itself when the worker's cgroup delegates them, else a writable v1 hierarchy of that
  controller (hybrid hosts). A task killed by its memory limit is told by ``memory.events``
  (v2) or ``memory.oom_control`` (v1).
- ``subreaper``: without a usable cgroup v2, the spawning process becomes a child subreaper
  (``PR_SET_CHILD_SUBREAPER``): what a task leaves behind is re-parented to it rather than to
  init, and killed, with every process in the task's session and under its process; limits are
  rlimits. A process that both leaves the task's session and loses its parent is killed when
  any task ends, since nothing tells which task it came from.

Standard library only: the Airflow fork server loads it too, in Airflow's interpreter.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MODES = ("auto", "cgroup", "subreaper")
# The controllers of a task's limits.
CONTROLLERS = ("memory", "pids", "cpu")
PR_SET_CHILD_SUBREAPER = 36
MOUNTINFO = Path("/proc/self/mountinfo")
# Processes the spawning process adds to a group while it spawns in it: itself.
SPAWNER_PIDS = 1


@dataclass(frozen=True)
class Limits:
    """A task's limits; 0 is none."""

    memory_mb: int = 0
    pids: int = 0
    cpu_weight: int = 0  # cgroup v2's scale: 1 to 10000, 100 is a process's share by default


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _own_cgroups() -> dict[str, str]:
    """Hierarchy ('' for v2, else its controllers) -> this process's cgroup path in it."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    return own


def _mounts() -> dict[str, Path]:
    """Hierarchy ('' for v2, else its controllers as /proc/self/cgroup names them) -> mount point."""
    return {hierarchy: point for hierarchy, (point, _) in _mount_options(MOUNTINFO.read_text()).items()}


def _mount_options(mountinfo: str) -> dict[str, tuple[Path, set[str]]]:
    """Hierarchy ('' for v2, else its controllers) -> mount point and super options."""
    found: dict[str, tuple[Path, set[str]]] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options, root = fields[sep + 1], fields[sep + 3], fields[3]
        if root != "/":
            continue
        if fstype == "cgroup2":
            found.setdefault("", (Path(fields[4]), set(options.split(","))))
        elif fstype == "cgroup":
            # Super options: rw or ro, the controllers, flags; a named hierarchy as name=...
            names = [o for o in options.split(",") if o not in ("rw", "ro") and ("=" not in o or o.startswith("name="))]
            if names:
                found.setdefault(",".join(names), (Path(fields[4]), set(options.split(","))))
    return found


def slow_migrations(mountinfo: str | None = None) -> str | None:
    """Why moving a process into a cgroup may take milliseconds, or None.

    A move takes the kernel's cgroup threadgroup lock for writing, which waits for an RCU grace
    period when no move happened in the last few milliseconds: the first task after an idle
    spell then starts 5 to 25 ms late (p99 27 ms against 3.4, measured in docs/benchmark.md).
    The cgroup2 mount option ``favordynmods`` (Linux 6.0+) keeps the lock ready for writers.
    """
    mount = _mount_options(MOUNTINFO.read_text() if mountinfo is None else mountinfo).get("")
    if mount is None or "favordynmods" in mount[1]:
        return None
    return (
        f"cgroup2 at {mount[0]} is mounted without favordynmods: a task that starts after an idle spell "
        f"can wait 5 to 25 ms to enter its cgroup (mount -o remount,favordynmods {mount[0]}, Linux 6.0+)"
    )


class _Hierarchies:
    """The spawning process's own cgroup in v2 and in the writable v1 memory, pids and cpu hierarchies."""

    def __init__(self) -> None:
        own, mounts = _own_cgroups(), _mounts()
        if "" not in own or "" not in mounts:
            raise OSError("no cgroup v2 hierarchy is mounted")
        self.v2 = mounts[""] / own[""].lstrip("/")
        self.v1: dict[str, Path] = {}
        for controllers, path in own.items():
            for controller in CONTROLLERS:
                if controller in controllers.split(",") and controllers in mounts:
                    home = mounts[controllers] / path.lstrip("/")
                    if os.access(home, os.W_OK):
                        self.v1[controller] = home
        available = set((self.v2 / "cgroup.controllers").read_text().split())
        self.v2_controllers: set[str] = set()
        for controller in set(CONTROLLERS) & available:
            with contextlib.suppress(OSError):  # a cgroup with processes of its own cannot delegate
                _write(self.v2 / "cgroup.subtree_control", f"+{controller}")
                self.v2_controllers.add(controller)

    def where(self, controller: str) -> str | None:
        if controller in self.v2_controllers:
            return "v2"
        return "v1" if controller in self.v1 else None


class Group:
    """One task's cgroup: in v2 always, and in a v1 hierarchy only while a task's limit needs it.
    Reused once it is empty; each file is written only when its value changes, since a task
    without limits should cost the spawner no more than moving in and out of one group."""

    def __init__(self, parents: dict[str, Path], name: str, hierarchies: _Hierarchies) -> None:
        self.dirs = {key: parent / name for key, parent in parents.items()}
        self.hierarchies = hierarchies
        self.dirs["v2"].mkdir(exist_ok=True)
        # Opened once: each spawn writes it and each end reads it, and open and close cost as much.
        self._procs = os.open(self.dirs["v2"] / "cgroup.procs", os.O_RDWR)
        self.limits = self._applied = Limits()
        self.entered: list[str] = ["v2"]  # the hierarchies the current task is in
        self.killed = False  # its processes may still be dying
        self._oom_before = 0

    def prepare(self, limits: Limits) -> None:
        """Before the spawn: where the task goes, and its pids limit, which counts the spawner
        while it spawns inside."""
        self.limits, self.killed = limits, False
        needed = {"memory": limits.memory_mb, "pids": limits.pids, "cpu": limits.cpu_weight}
        self.entered = ["v2"] + [c for c, on in needed.items() if on and self.hierarchies.where(c) == "v1"]
        for key in self.entered:
            self.dirs[key].mkdir(exist_ok=True)
        if limits.memory_mb:
            self._oom_before = self.oom_kills()
        if limits.pids or self._applied.pids:
            self._set("pids", "pids.max", str(limits.pids + SPAWNER_PIDS) if limits.pids else "max")

    def started(self) -> None:
        """Once the task runs: its memory limit, set only now so that the spawner's own
        allocations never meet it, and its pids limit without the spawner."""
        mb = self.limits.memory_mb
        if mb != self._applied.memory_mb:
            self._set("memory", "memory.max", str(mb << 20) if mb else "max")
        if self.limits.pids:
            self._set("pids", "pids.max", str(self.limits.pids))
        if (weight := self.limits.cpu_weight) != self._applied.cpu_weight:
            self._set("cpu", "cpu.weight", str(weight or 100))
        self._applied = self.limits

    def _set(self, controller: str, name: str, value: str) -> None:
        where = self.hierarchies.where(controller)
        if where == "v2":
            _write(self.dirs["v2"] / name, value)
        elif where == "v1" and self.dirs[controller].exists():
            if name == "cpu.weight":  # v1's shares: 1024 is a process's share by default
                name, value = "cpu.shares", str(max(2, int(value) * 1024 // 100))
            elif name == "memory.max":
                name, value = "memory.limit_in_bytes", "-1" if value == "max" else value
            _write(self.dirs[controller] / name, value)

    def enter(self) -> None:
        """Move the calling process in, so that what it spawns now starts inside."""
        os.write(self._procs, b"0")
        for key in self.entered[1:]:
            _write(self.dirs[key] / "cgroup.procs", "0")

    def processes(self) -> int:
        return len(os.pread(self._procs, 1 << 16, 0).split())

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(FileNotFoundError):
            _write(self.dirs["v2"] / "cgroup.kill", "1")

    def oom_kills(self) -> int:
        where = self.hierarchies.where("memory")
        path = {"v2": "memory.events", "v1": "memory.oom_control"}.get(where or "")
        if path is None:
            return 0
        for line in (self.dirs["v2" if where == "v2" else "memory"] / path).read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
        return 0

    def oom_killed(self) -> bool:
        return bool(self.limits.memory_mb) and self.oom_kills() > self._oom_before

    def remove(self) -> None:
        os.close(self._procs)
        for path in self.dirs.values():
            with contextlib.suppress(OSError):
                path.rmdir()


class Cgroups:
    """Task groups under a parent of the spawning process's own: ``airkafka-<pid>``."""

    mode = "cgroup"

    def __init__(self) -> None:
        self.hierarchies = _Hierarchies()
        name = f"airkafka-{os.getpid()}"
        self.parents = {"v2": self.hierarchies.v2 / name} | {c: p / name for c, p in self.hierarchies.v1.items()}
        self.homes = {"v2": self.hierarchies.v2} | self.hierarchies.v1
        self._home_procs = os.open(self.hierarchies.v2 / "cgroup.procs", os.O_WRONLY)
        self._sweep_stale()
        for path in self.parents.values():
            path.mkdir(exist_ok=True)
        if self.hierarchies.v2_controllers:
            _write(
                self.parents["v2"] / "cgroup.subtree_control",
                " ".join(f"+{c}" for c in self.hierarchies.v2_controllers),
            )
        if not (self.parents["v2"] / "cgroup.kill").exists():
            self.close()
            raise OSError("cgroup.kill is missing (Linux 5.14 or later has it)")
        self._free: list[Group] = []
        self._made = 0

    def _sweep_stale(self) -> None:
        """Kill what the tasks of a spawner killed with its worker left running: a kill -9 of both
        gives the spawner no chance to, and its groups stay behind, not its processes."""
        for home in self.homes.values():
            for parent in home.glob("airkafka-*"):
                pid = parent.name.removeprefix("airkafka-")
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    _remove_parents([parent])

    def describe(self) -> str:
        limits = [f"{c} {self.hierarchies.where(c)}" for c in CONTROLLERS if self.hierarchies.where(c)]
        return f"cgroup ({self.parents['v2']}; limits: {', '.join(limits) or 'none'})"

    def group(self) -> Group:
        while self._free:
            group = self._free.pop()
            if not group.killed or not group.processes():
                return group
            group.remove()  # still dying: a new one instead
        self._made += 1
        return Group(self.parents, f"task-{self._made}", self.hierarchies)

    def spawn_in(self, group: Group, spawn):
        """``spawn()`` with the calling process inside ``group``; what it starts stays there."""
        group.enter()
        try:
            return spawn()
        finally:
            self.leave(group)

    def leave(self, group: Group) -> None:
        """Move the calling process out of ``group``, back to where the spawner lives."""
        os.write(self._home_procs, b"0")
        for key in group.entered[1:]:
            _write(self.homes[key] / "cgroup.procs", "0")

    def release(self, group: Group) -> None:
        self._free.append(group)

    def close(self) -> None:
        """Kill every task group and remove them: at the spawner's end, or after a failed start."""
        _remove_parents(self.parents.values())


def _remove_parents(parents: Iterable[Path]) -> None:
    """Kill the task groups under each parent, v2's first, and remove them and their parents."""
    for parent in parents:
        for child in parent.glob("task-*"):
            with contextlib.suppress(OSError):  # a v1 group has no cgroup.kill: v2's killed its processes
                _write(child / "cgroup.kill", "1")
            _remove_when_empty(child)
        with contextlib.suppress(OSError):
            parent.rmdir()


def _remove_when_empty(path: Path, tries: int = 100) -> None:
    """A killed group empties within moments; until then it cannot be removed."""
    for _ in range(tries):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, session id), of every process now."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue  # it ended
            fields = stat.rpartition(")")[2].split()
            found[int(entry.name)] = (int(fields[1]), int(fields[3]))
    return found


def _set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


class Subreaper:
    """The fallback: this process adopts what tasks leave behind; a task's session and its
    descendants are killed with it. Each task must start in a session of its own."""

    mode = "subreaper"

    def __init__(self) -> None:
        _set_subreaper()

    def describe(self) -> str:
        return "subreaper (no usable cgroup v2: a task's processes are found by session and parent; limits are rlimits)"

    def left_behind(self, running: set[int]) -> bool:
        """Whether a task that ended left anything: what it left is re-parented here, so this
        process then has children that are no running task's. One read, not a scan of /proc."""
        children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
        return any(int(pid) not in running for pid in children)

    def kill_tree(self, task_pid: int | None, running: set[int]) -> int:
        """Kill the task's session, its descendants, and adopted orphans from no running task's
        session (with no task: every descendant of this process); again until none is left, since
        a process may fork while this runs. How many: a killed process that is still seen on the
        next pass, not yet dead or reaped, is counted once."""
        me, killed = os.getpid(), set[int]()
        for _ in range(100):
            processes = _processes()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _) in processes.items():
                children.setdefault(ppid, []).append(pid)
            roots = [] if task_pid is None else [task_pid]
            roots += [
                pid
                for pid in children.get(me, [])
                if pid not in running and processes[pid][1] not in running and pid != task_pid
            ]
            targets = {pid for pid, (_, sid) in processes.items() if sid == task_pid and pid != me}
            while roots:
                pid = roots.pop()
                if pid in processes and pid != me:
                    targets.add(pid)
                    roots.extend(children.get(pid, []))
            targets.discard(task_pid)  # its own process is the caller's to end and reap
            if not targets:
                return len(killed)
            for pid in targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed |= targets
            self.reap_adopted(running)
        return len(killed)

    @staticmethod
    def reap_adopted(running: set[int]) -> None:
        """Reap the adopted processes that have ended; the tasks' own are reaped by their callers."""
        me = os.getpid()
        for pid, (ppid, _) in _processes().items():
            if ppid == me and pid not in running:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    @staticmethod
    def set_limits(pid: int, limits: Limits) -> None:
        with contextlib.suppress(ProcessLookupError, ValueError):
            if limits.memory_mb:
                size = limits.memory_mb << 20
                resource.prlimit(pid, resource.RLIMIT_AS, (size, size))


class Runs:
    """For a process that runs one task after another itself, as an Airflow supervisor does: each
    run inside a container, and what a run left behind killed at its end. Made by the spawner,
    ``start`` is called in the process that runs the tasks, once."""

    def __init__(self, containment: Cgroups | Subreaper, group: Group | None) -> None:
        self.containment = containment
        self.group = group

    def start(self) -> None:
        if self.group is None:
            _set_subreaper()  # what its runs leave is re-parented to it, to be killed

    def begin(self) -> None:
        if self.group is not None:
            self.group.enter()

    def end(self) -> int:
        """After a run: kill what it left behind; how many processes that was."""
        if self.group is None:
            assert isinstance(self.containment, Subreaper)
            return self.containment.kill_tree(None, set())
        assert isinstance(self.containment, Cgroups)
        self.containment.leave(self.group)
        if left := self.group.processes():
            self.group.kill()
            _wait_until_empty(self.group)
        return left

    def kill(self) -> None:
        """The whole run, the process that runs it included; from the spawner."""
        if self.group is not None:
            self.group.kill()


def _wait_until_empty(group: Group, tries: int = 200) -> None:
    """Killed processes leave their group within moments; the next run must not meet them."""
    for _ in range(tries):
        if not group.processes():
            return
        time.sleep(0.005)


def open_containment(mode: str) -> Cgroups | Subreaper:
    """The containment ``mode`` names; ``auto`` is cgroup where it works, else the subreaper."""
    if mode not in MODES:
        raise ValueError(f"containment mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "subreaper":
        return Subreaper()
    try:
        return Cgroups()
    except OSError:
        if mode == "cgroup":
            raise
    return Subreaper()

"""Tasks that share a serial key run one after another, in the order they came. The first of a
key runs; the others wait in its line, in memory, holding no admission slot, so that a long run
cannot fill the bound with its followers and hold up intake. Faust-free, unit-tested."""

from __future__ import annotations

from collections import deque


class SerialLines[T]:
    def __init__(self) -> None:
        self._lines: dict[str, deque[tuple[str, T]]] = {}  # key -> those waiting behind its run
        self._key_of: dict[str, str] = {}  # task id -> the key it waits behind

    def arrive(self, key: str, task_id: str, item: T) -> bool:
        """True when the task may run now, its key having no run; otherwise it joins the key's line."""
        if key in self._lines:
            self._lines[key].append((task_id, item))
            self._key_of[task_id] = key
            return False
        self._lines[key] = deque()
        return True

    def waits(self, task_id: str) -> bool:
        return task_id in self._key_of

    def waiting(self, task_id: str) -> T | None:
        """The task's item while it waits in a line."""
        if (key := self._key_of.get(task_id)) is None:
            return None
        return next(item for waiting_id, item in self._lines[key] if waiting_id == task_id)

    def withdraw(self, task_id: str) -> T | None:
        """Take a waiting task out of its line, as a cancel does; None when it does not wait."""
        if (key := self._key_of.pop(task_id, None)) is None:
            return None
        line = self._lines[key]
        entry = next(entry for entry in line if entry[0] == task_id)
        line.remove(entry)
        return entry[1]

    def after(self, key: str, go_on: bool) -> T | None:
        """The key's run ended: the next task to run, which now heads the line. Without ``go_on``
        (the worker is stopping), or with nobody waiting, the line ends and its tasks are
        forgotten here: their records stay queued for the partition's next owner."""
        line = self._lines.get(key)
        if line is None:
            return None
        if line and go_on:
            task_id, item = line.popleft()
            del self._key_of[task_id]
            return item
        for task_id, _ in self._lines.pop(key):
            del self._key_of[task_id]
        return None

"""Cancels read ahead of intake (cancel_lookout.py) of tasks whose commands intake has not read
yet. Each is spent when intake reads the task's command, which it then records ``cancelled``
without running it if the cancel comes after it, or the cancel itself. Faust-free, unit-tested."""

from __future__ import annotations

# Past this many, a cancel of a task not read yet waits for intake; each costs about 200 bytes.
MAX_EARLY_CANCELS = 10_000


class EarlyCancels:
    """Each noted cancel with where it was read: only a command before it, in its partition, is
    cancelled by it."""

    def __init__(self, limit: int = MAX_EARLY_CANCELS) -> None:
        self._limit = limit
        self._by_target: dict[str, tuple[int, int, str]] = {}  # task id -> (partition, offset, reason)

    def __len__(self) -> int:
        return len(self._by_target)

    def note(self, target: str, partition: int, offset: int, reason: str) -> bool:
        """Remember a cancel read at ``offset``; False when too many are remembered already."""
        if len(self._by_target) >= self._limit and target not in self._by_target:
            return False
        self._by_target[target] = (partition, offset, reason)
        return True

    def take(self, task_id: str, partition: int, offset: int) -> str | None:
        """Intake reads the task's command at ``offset``: the reason of a cancel that comes after
        it in that partition, or None. Either way the note is spent."""
        if (noted := self._by_target.pop(task_id, None)) is None:
            return None
        cancel_partition, cancel_offset, reason = noted
        return reason if cancel_partition == partition and offset < cancel_offset else None

    def reached(self, target: str) -> None:
        """Intake reads a cancel of ``target`` itself: it acts on it in order."""
        self._by_target.pop(target, None)

"""What the tests may expect to read of a task's transitions on the state-changes topic."""

from __future__ import annotations

from airkafka_app.contract.states import PASSING, State


def published_as(seen: list, expected: list) -> bool:
    """Whether ``seen`` is ``expected`` as a worker may publish it: in order, with only passing
    states (``queued``, ``running``) left out. Items are states, or tuples whose first item is
    the state (with the attempt, say)."""
    matched = 0
    for item in expected:
        if matched < len(seen) and seen[matched] == item:
            matched += 1
        elif State(item[0] if isinstance(item, tuple) else item) not in PASSING:
            return False
    return matched == len(seen)

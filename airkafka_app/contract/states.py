"""Task states and the transitions between them (Faust-free)."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({State.SUCCESS, State.FAILED, State.CANCELLED})
# Accepted and not ended: some worker owes this task a run.
IN_FLIGHT = frozenset({State.QUEUED, State.RUNNING, State.UP_FOR_RETRY})
# States whose state change may be left out when the task's next transition is published with it:
# a reader is promised every other state, in order (docs/contract.md).
PASSING = frozenset({State.QUEUED, State.RUNNING})

# A resubmitted failed or cancelled task starts over as a new attempt; a successful one only
# through a forced replay. A waiting task fails without running when it cannot be run.
ALLOWED: dict[State | None, frozenset[State]] = {
    None: frozenset({State.QUEUED}),
    State.QUEUED: frozenset({State.RUNNING, State.FAILED, State.CANCELLED}),
    State.RUNNING: frozenset({State.SUCCESS, State.FAILED, State.UP_FOR_RETRY, State.CANCELLED}),
    State.UP_FOR_RETRY: frozenset({State.RUNNING, State.FAILED, State.CANCELLED}),
    State.FAILED: frozenset({State.QUEUED}),
    State.CANCELLED: frozenset({State.QUEUED}),
    State.SUCCESS: frozenset({State.QUEUED}),
}

# A command for an id in one of these states is a duplicate and is not run again.
NOT_RERUN = IN_FLIGHT | {State.SUCCESS}


class IllegalTransition(ValueError):
    pass


def check_transition(current: State | None, new: State) -> None:
    if new not in ALLOWED[current]:
        raise IllegalTransition(f"{current.value if current else 'new'} -> {new.value}")

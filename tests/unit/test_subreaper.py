"""The subreaper's sweep of what a task left behind (runners/containment.py), on a scripted /proc."""

import os
import signal

from airkafka_app.worker.runners import containment


def test_a_process_still_dying_on_the_next_pass_is_counted_once(monkeypatch):
    """A killed process stays in /proc until it is dead and reaped; the sweep sees it again on its
    next pass and kills it again, but it left one process behind, not two."""
    me = os.getpid()
    scans = iter(
        [
            {me: (1, me), 4242: (me, 4242)},  # the orphan a task left, adopted
            {me: (1, me), 4242: (me, 4242)},  # killed, not reaped yet
            {me: (1, me)},
        ]
    )
    killed = []
    monkeypatch.setattr(containment, "_processes", lambda: next(scans))
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append((pid, sig)))
    monkeypatch.setattr(containment.Subreaper, "reap_adopted", staticmethod(lambda running: None))
    reaper = object.__new__(containment.Subreaper)  # without prctl: nothing is adopted here
    assert reaper.kill_tree(None, set()) == 1
    assert killed == [(4242, signal.SIGKILL), (4242, signal.SIGKILL)]

import pytest

from airkafka_app.contract.heartbeats import parse_beat
from airkafka_app.contract.settings import Settings
from airkafka_app.worker import liveness


@pytest.fixture
def settings(monkeypatch):
    monkeypatch.setenv("AIRKAFKA_WORKER_NAME", "me")
    monkeypatch.setenv("AIRKAFKA_HEARTBEAT_S", "1")
    monkeypatch.setenv("AIRKAFKA_WORKER_LOST_AFTER_S", "10")
    return Settings()


@pytest.fixture
def heartbeats(settings):
    beats = liveness.Heartbeats(settings)
    beats.caught_up.set()
    return beats


def beat_both(beats, start: float, end: float, other: bool = True) -> None:
    for at in range(int(start), int(end) + 1):
        beats._observe("me", float(at))
        if other:
            beats._observe("other", float(at))


def test_a_silent_worker_is_lost_after_the_bound(heartbeats):
    beat_both(heartbeats, 0, 20)
    beat_both(heartbeats, 21, 30, other=False)
    assert not heartbeats.is_lost("other")
    beat_both(heartbeats, 31, 31, other=False)
    assert heartbeats.is_lost("other") and heartbeats.is_lost("never-seen")
    assert not heartbeats.is_lost("me")


def test_a_broker_outage_makes_nobody_lost(heartbeats):
    beat_both(heartbeats, 0, 20)
    beat_both(heartbeats, 60, 61, other=False)  # 40 s without any heartbeat, then only ours
    assert not heartbeats.is_lost("other")


def test_nobody_is_judged_before_catching_up_or_hearing_itself_for_the_bound(heartbeats):
    beat_both(heartbeats, 0, 5, other=False)
    assert not heartbeats.is_lost("other")
    heartbeats.caught_up.clear()
    beat_both(heartbeats, 6, 30, other=False)
    assert not heartbeats.is_lost("other")


def test_a_worker_that_says_it_stopped_is_lost_at_once_until_it_beats_again(heartbeats):
    beat_both(heartbeats, 0, 2)
    heartbeats._observe("other", 3.0, stopped=True)
    assert heartbeats.is_lost("other")
    heartbeats._observe("other", 4.0)  # restarted under the same name
    assert not heartbeats.is_lost("other")


def test_a_heartbeat_from_the_future_counts_as_now(heartbeats):
    beat_both(heartbeats, 0, 20)
    heartbeats._observe("other", 1e12)
    beat_both(heartbeats, 21, 30, other=False)
    assert heartbeats.last_seen["other"] < 1e11


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"{",
        b"[]",
        b'{"worker": 1, "at": 2}',
        b'{"worker": "w", "at": NaN}',
        b'{"worker": "w", "at": true}',
        b'{"worker": "", "at": 1}',
        b"\xff",
    ],
)
def test_a_malformed_heartbeat_is_none(value):
    assert parse_beat(value) is None


def test_a_heartbeat_parses_with_its_stop_marker():
    assert parse_beat(b'{"worker": "w", "at": 1.5}') == ("w", 1.5, False, None, None)
    assert parse_beat(b'{"worker": "w", "at": 2, "stopped": true}') == ("w", 2.0, True, None, None)
    assert parse_beat(b'{"worker": "w", "at": 2, "maintenance": "disk swap"}').maintenance == "disk swap"
    assert parse_beat(b'{"worker": "w", "at": 2, "url": "http://h:6066"}').url == "http://h:6066"


def test_a_run_whose_end_is_reported_is_no_orphan_of_its_own_worker(settings, heartbeats):
    """A run that ended while its partition moved sent its end as a report: until the report is
    stored, the table still shows its start, and this worker, the owner again, must not take
    that for a task it lost."""
    import time
    from types import SimpleNamespace

    from airkafka_app.contract.orders import Mode
    from airkafka_app.contract.states import State
    from airkafka_app.contract.task_record import TaskRecord
    from airkafka_app.worker.tables.tasks import AwaitingReports

    command = {"id": "r1", "kind": "shell", "args": {"argv": ["true"]}, "retries": 0}
    running = TaskRecord.new_attempt(command, None, "me").to(State.RUNNING)
    running = running.__class__(**{**vars(running), "updated_at": time.time() - 60})
    awaiting = AwaitingReports()
    control = SimpleNamespace(mode=Mode(concurrency=1))
    judge = liveness.Liveness(settings, None, None, heartbeats, control, None, {}, awaiting)
    assert judge.is_orphan(running, "default")  # silent past the bound, and nothing says otherwise
    awaiting.note(running.to(State.SUCCESS, exit_code=0))
    assert not judge.is_orphan(running, "default")

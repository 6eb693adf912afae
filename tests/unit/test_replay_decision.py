import pytest

from airkafka_app.worker.core.task_rules import AIRFLOW_REPLAY, replay_decision


@pytest.mark.parametrize(
    "state, only_failed, force, outcome",
    [
        (None, False, False, "replayed"),
        ("failed", False, False, "replayed"),
        ("cancelled", True, False, "replayed"),
        ("success", False, False, "skipped: already successful"),
        ("success", False, True, "replayed"),
        ("success", True, True, "skipped: not failed"),
        (None, True, False, "skipped: not failed"),
        ("running", False, True, "skipped: in progress"),
        ("queued", False, False, "skipped: in progress"),
        ("up_for_retry", False, False, "skipped: in progress"),
    ],
)
def test_what_a_replay_does_with_each_state(state, only_failed, force, outcome):
    assert replay_decision(state, only_failed=only_failed, force=force) == outcome


@pytest.mark.parametrize("force", [False, True])
def test_a_refused_message_is_never_replayed_whatever_the_flags(force):
    assert replay_decision(None, only_failed=False, force=force, refused=True) == "skipped: refused (dead letter)"


@pytest.mark.parametrize("state", [None, "failed", "success", "running"])
def test_an_airflow_try_is_never_replayed_whatever_its_state_or_the_flags(state):
    for force in (False, True):
        assert replay_decision(state, only_failed=False, force=force, kind="airflow") == AIRFLOW_REPLAY
    assert replay_decision(state, only_failed=False, force=False, kind="shell") != AIRFLOW_REPLAY

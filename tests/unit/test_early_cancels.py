from types import SimpleNamespace

from airkafka_app.worker.core.early_cancels import EarlyCancels
from airkafka_app.worker.core.serial_lines import SerialLines
from airkafka_app.worker.core.task_rules import read_before


def test_a_command_read_before_its_noted_cancel_is_cancelled_once():
    early = EarlyCancels()
    assert early.note("t", partition=3, offset=10, reason="cancelled by c")
    assert early.take("t", partition=3, offset=7) == "cancelled by c"
    assert early.take("t", partition=3, offset=8) is None and not early


def test_a_command_after_the_cancel_or_elsewhere_runs():
    early = EarlyCancels()
    early.note("t", 3, 10, "cancelled by c")
    assert early.take("t", 3, 11) is None  # sent after the cancel, as a replay is
    early.note("t", 3, 10, "cancelled by c")
    assert early.take("t", 2, 5) is None  # another partition's command: re-keyed after the cancel


def test_intake_reaching_the_cancel_spends_its_note():
    early = EarlyCancels()
    early.note("t", 3, 10, "cancelled by c")
    early.reached("t")
    assert early.take("t", 3, 7) is None


def test_notes_are_bounded():
    early = EarlyCancels(limit=2)
    assert early.note("a", 0, 1, "r") and early.note("b", 0, 2, "r")
    assert not early.note("c", 0, 3, "r") and len(early) == 2
    assert early.note("a", 0, 4, "r")  # a note already held is updated


def test_a_cancel_read_ahead_applies_to_runs_of_commands_before_it_in_its_partition():
    message = SimpleNamespace(topic="commands", partition=1, offset=5)
    assert read_before(message, "commands", 1, 6)
    assert not read_before(message, "commands", 1, 5)
    assert not read_before(message, "commands", 2, 6)
    assert not read_before(message, "internal", 1, 6)  # a recovered run's request


def test_a_waiting_follower_can_be_looked_up():
    lines = SerialLines()
    lines.arrive("k", "a", "A")
    lines.arrive("k", "b", "B")
    assert lines.waiting("b") == "B" and lines.waiting("a") is None and lines.waiting("x") is None

from airkafka_app.worker.core.serial_lines import SerialLines


def test_tasks_of_a_key_run_one_after_another_in_order():
    lines = SerialLines()
    assert lines.arrive("k", "a", "A")
    assert not lines.arrive("k", "b", "B") and not lines.arrive("k", "c", "C")
    assert lines.arrive("other", "x", "X")  # another key does not wait
    assert lines.waits("b") and not lines.waits("a")
    assert lines.after("k", go_on=True) == "B" and not lines.waits("b")
    assert lines.after("k", go_on=True) == "C"
    assert lines.after("k", go_on=True) is None  # the line ends
    assert lines.arrive("k", "d", "D")  # a new run heads a new line


def test_a_cancel_withdraws_a_waiting_task_only():
    lines = SerialLines()
    lines.arrive("k", "a", "A")
    lines.arrive("k", "b", "B")
    lines.arrive("k", "c", "C")
    assert lines.withdraw("a") is None  # it runs: the pool cancels it
    assert lines.withdraw("b") == "B" and lines.withdraw("b") is None
    assert lines.after("k", go_on=True) == "C"


def test_a_stopping_worker_ends_the_lines_and_forgets_who_waited():
    lines = SerialLines()
    lines.arrive("k", "a", "A")
    lines.arrive("k", "b", "B")
    assert lines.after("k", go_on=False) is None
    assert not lines.waits("b") and lines.arrive("k", "e", "E")
    assert lines.after("unknown", go_on=True) is None

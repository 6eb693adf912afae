from collections import Counter

from airkafka_app.worker.task_rates import MINUTES, TaskRates, bin_of, merge_rates, percentile, upper_edge

NOW = 1_800_000_000.0  # a minute's start
MINUTE = 60


def test_bins_hold_their_times_within_a_factor_of_root_two():
    for seconds in (0.0005, 0.003, 0.25, 7.0, 3600.0):
        edge = upper_edge(bin_of(seconds))
        assert seconds <= edge < max(seconds, 0.001) * 1.4143


def test_percentiles_read_the_bins():
    runs = Counter({bin_of(0.01): 98, bin_of(2.0): 2})
    assert percentile(runs, 0.5) == upper_edge(bin_of(0.01))
    assert percentile(runs, 0.99) == upper_edge(bin_of(2.0))
    assert percentile(Counter(), 0.5) is None


def test_two_workers_minutes_add_up_and_the_hour_moves_on():
    a, b = TaskRates(), TaskRates()
    a.note("default", NOW - 2 * MINUTE + 5, ended=True, run_s=0.01)
    a.note("default", NOW + 1, ended=True, run_s=0.01)
    b.note("default", NOW + 2, ended=True, run_s=2.0)
    b.note("default", NOW + 3, ended=False, run_s=0.02)  # up for retry: a run, not an end
    a.note("default", NOW - 2 * MINUTES * MINUTE, ended=True, run_s=None)  # two hours ago
    merged = merge_rates([a.snapshot(NOW + 30), b.snapshot(NOW + 30), "garbage", {"x": {"y": 1}}], NOW + 30)
    series = merged["default"]
    assert len(series["minutes"]) == MINUTES and series["minutes"][-1] == NOW
    assert series["ended"][-1] == 2 and series["ended"][-3] == 1 and sum(series["ended"]) == 3
    assert series["p50_s"][-1] == upper_edge(bin_of(0.02)) and series["p99_s"][-1] == upper_edge(bin_of(2.0))
    assert series["p50_s"][-2] is None
    assert series["per_minute"] == round(3 / 4.5, 1)  # over 4 whole minutes and half of this one


def test_a_worker_keeps_an_hour_only():
    rates = TaskRates()
    for minute in range(3 * MINUTES):
        rates.note("q", NOW + minute * MINUTE, ended=True, run_s=None)
    snapshot = rates.snapshot(NOW + 3 * MINUTES * MINUTE)
    assert len(snapshot["q"]) <= MINUTES

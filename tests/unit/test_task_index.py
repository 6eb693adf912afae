"""The task index on a RocksDB of its own: counts, newest-first pages, oldest-first expiry, and a
rebuild from the table while the table is written."""

import asyncio
import itertools
import json

from rocksdict import Options, Rdict

from airkafka_app.contract.states import State
from airkafka_app.worker.tables import task_index
from airkafka_app.worker.tables.task_index import Entry, TaskIndex


def record(key: str, state: State, at: float) -> bytes:
    return json.dumps({"id": key, "state": state.value, "updated_at": at}).encode()


def test_counts_follow_each_records_latest_state(tmp_path):
    index = TaskIndex(tmp_path / "index")
    index.note(0, b"a", State.QUEUED, 1.0)
    index.note(0, b"a", State.RUNNING, 2.0)
    index.note(0, b"a", State.SUCCESS, 3.0)
    index.note(1, b"b", State.FAILED, 4.0)
    assert +index.counts[0] == {State.SUCCESS: 1} and +index.counts[1] == {State.FAILED: 1}
    index.forget(0, b"a")
    assert +index.counts[0] == {}
    assert [e.key for e in index.of([0, 1], list(State))] == [b"b"]


def test_pages_come_newest_first_across_partitions_without_repeats(tmp_path):
    index = TaskIndex(tmp_path / "index")
    for n in range(25):
        index.note(n % 3, b"t%02d" % n, State.FAILED if n % 2 else State.SUCCESS, 100.0 + n)
    pages, after = [], None
    while page := list(itertools.islice(index.newest([0, 1, 2], [State.SUCCESS, State.FAILED], after), 10)):
        pages.append([entry.key for entry in page])
        after = page[-1]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert sum(pages, []) == [b"t%02d" % n for n in reversed(range(25))]
    assert [e.key for e in itertools.islice(index.newest([0, 1, 2], [State.FAILED], None), 3)] == [
        b"t23",
        b"t21",
        b"t19",
    ]


def test_oldest_stops_at_the_time_given(tmp_path):
    index = TaskIndex(tmp_path / "index")
    for n in range(5):
        index.note(0, b"k%d" % n, State.SUCCESS, 10.0 + n)
    assert [e.key for e in index.oldest(0, State.SUCCESS, 12.5)] == [b"k0", b"k1", b"k2"]


def test_a_rebuild_counts_each_record_once_while_the_table_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(task_index, "SLICE_S", 0.0)  # yield after every record
    table = Rdict(str(tmp_path / "table"), options=Options(raw_mode=True))
    for n in range(50):
        table[b"k%02d" % n] = record(f"k{n:02d}", State.RUNNING, 1.0 + n)
    table[task_index.FAUST_OFFSET_KEY] = b"123"
    index = TaskIndex(tmp_path / "index")
    index.note(0, b"stale", State.FAILED, 1.0)  # from before the partition was lost

    async def scenario():
        rebuild = asyncio.ensure_future(index.rebuild(0, table))
        for n in (0, 49, 25, 10):  # written as the rebuild goes: behind it, ahead of it
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            table[b"k%02d" % n] = record(f"k{n:02d}", State.SUCCESS, 100.0 + n)
            index.note(0, b"k%02d" % n, State.SUCCESS, 100.0 + n)
        return await rebuild

    asyncio.run(scenario())
    assert +index.counts[0] == {State.RUNNING: 46, State.SUCCESS: 4}
    assert sorted(e.key for e in index.of([0], [State.SUCCESS])) == [b"k00", b"k10", b"k25", b"k49"]
    assert len(list(index.of([0], list(State)))) == 50
    assert index.rebuilding == []


def test_a_dropped_partition_leaves_nothing(tmp_path):
    index = TaskIndex(tmp_path / "index")
    index.note(3, b"x", State.SUCCESS, 1.0)
    index.note(4, b"y", State.SUCCESS, 1.0)
    index.drop(3)
    assert 3 not in index.counts and [e.key for e in index.of([3, 4], list(State))] == [b"y"]
    assert Entry(1, b"a", 0, State.QUEUED) < Entry(1, b"b", 5, State.FAILED)

"""Where a queue's task records stand, by state and time: the views, the sweep and retention read
only what they need, never the whole table, which grows by a million records in half an hour.

The index is a RocksDB of its own per table (``<data dir>/index/<table>``), not backed by a
changelog: Faust's recovery writes the table around it, so a partition assigned anew is indexed
again from the table, before the streams resume and a slice at a time, so that the event loop
waits at most about ``SLICE_S`` for it. Two key spaces, per partition:

- ``S`` + partition + state + time + task key: each state's records, oldest first;
- ``K`` + partition + task key -> state + time: where a record stands in the first.

Record counts per partition and state are kept in memory, from the same writes. The writes
wait in memory and go to RocksDB in one batch, before any read and every ``MAX_PENDING``: a
task's transitions, a few milliseconds apart, cost a dict update each rather than four RocksDB
calls.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import logging
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from airkafka_app.contract.states import State

log = logging.getLogger(__name__)

CODES = {state: bytes([n]) for n, state in enumerate(State)}
STATES = {code: state for state, code in CODES.items()}
SLICE_S = 0.01
# Faust's own key in each partition's RocksDB: the changelog offset it has applied.
FAUST_OFFSET_KEY = b"__faust\0offset__"
TIME_BYTES = 8
MAX_PENDING = 4096


@functools.cache
def _partition(partition: int) -> bytes:
    return struct.pack(">H", partition)


def micros(at: float) -> int:
    return max(0, int(at * 1_000_000))


@dataclass(frozen=True, order=True)
class Entry:
    """A record's place: its time (µs) and task key order the entries of one state."""

    at: int
    key: bytes
    partition: int = field(compare=False)
    state: State = field(compare=False)


@dataclass
class _Rebuild:
    position: bytes | None = None  # the last table key indexed
    written: set[bytes] = field(default_factory=set)  # keys written since it began


class TaskIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: Rdict | None = None
        self.counts: dict[int, Counter[State]] = {}
        self._rebuilding: dict[int, _Rebuild] = {}
        self._pending: dict[bytes, bytes | None] = {}  # key -> value, None to delete

    @property
    def db(self) -> Rdict:
        """Opened at first use: a CLI command that imports the app must not lock it."""
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = Rdict(str(self.path), options=Options(raw_mode=True))
            unlogged = WriteOptions()
            unlogged.disable_wal = True  # rebuilt from the table whenever it could be stale
            self._db.set_write_options(unlogged)
        return self._db

    @property
    def rebuilding(self) -> list[int]:
        return sorted(self._rebuilding)

    def note(self, partition: int, key: bytes, state: State, at: float) -> None:
        """A record written to the table's ``partition``."""
        part = _partition(partition)
        by_key = b"K" + part + key
        rebuild = self._rebuilding.get(partition)
        if rebuild is not None and key not in rebuild.written and (rebuild.position is None or key > rebuild.position):
            old = None  # not indexed yet, and the rebuild will pass it by
        else:
            old = self._pending[by_key] if by_key in self._pending else self.db.get(by_key)
        counts = self.counts.get(partition)
        if counts is None:
            counts = self.counts[partition] = Counter()
        if old is not None:
            self._pending[b"S" + part + old + key] = None
            counts[STATES[old[:1]]] -= 1
        self._put(part, key, state, at, counts)
        if rebuild is not None:
            rebuild.written.add(key)

    def _put(self, part: bytes, key: bytes, state: State, at: float, counts: Counter[State]) -> None:
        place = CODES[state] + struct.pack(">Q", micros(at))
        self._pending[b"S" + part + place + key] = b""
        self._pending[b"K" + part + key] = place
        counts[state] += 1
        if len(self._pending) >= MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        """Write what waits: before any read, so that reads see every write."""
        if not self._pending:
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in self._pending.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db.write(batch)
        self._pending.clear()

    def forget(self, partition: int, key: bytes) -> None:
        """A record deleted from the table."""
        by_key = b"K" + _partition(partition) + key
        place = self._pending[by_key] if by_key in self._pending else self.db.get(by_key)
        if place is not None:
            self._pending[b"S" + _partition(partition) + place + key] = None
            self._pending[by_key] = None
            self.counts[partition][STATES[place[:1]]] -= 1
            if len(self._pending) >= MAX_PENDING:
                self.flush()

    def drop(self, partition: int) -> None:
        """The partition is no longer this worker's."""
        self.flush()
        for space in (b"S", b"K"):
            self.db.delete_range(space + _partition(partition), space + _partition(partition + 1))
        self.counts.pop(partition, None)

    async def rebuild(self, partition: int, table: Rdict) -> int:
        """Index the partition anew from the table's RocksDB, a slice at a time; records indexed."""
        self.drop(partition)
        counts = self.counts[partition] = Counter()
        rebuild = self._rebuilding[partition] = _Rebuild()
        loop = asyncio.get_running_loop()
        indexed = 0
        try:
            while True:
                deadline = loop.time() + SLICE_S
                finished = True
                items = table.items(from_key=rebuild.position) if rebuild.position is not None else table.items()
                for key, value in items:
                    if key == rebuild.position or key == FAUST_OFFSET_KEY:
                        continue
                    rebuild.position = key
                    if key not in rebuild.written:
                        try:
                            record = json.loads(value)
                            self._put(_partition(partition), key, State(record["state"]), record["updated_at"], counts)
                            indexed += 1
                        except (ValueError, KeyError, TypeError) as exc:
                            log.error("record %r of partition %d not indexed: %r", key[:100], partition, exc)
                    if loop.time() > deadline:
                        finished = False
                        break
                if finished:
                    return indexed
                await asyncio.sleep(0)
        finally:
            del self._rebuilding[partition]

    def _entries(
        self,
        partition: int,
        state: State,
        *,
        newest_first: bool,
        after: Entry | None = None,
        before_at: int | None = None,
    ) -> Iterator[Entry]:
        """A state's entries in a partition, newest or oldest first, strictly past ``after``."""
        self.flush()
        prefix = b"S" + _partition(partition) + CODES[state]
        if after is not None:
            start = prefix + struct.pack(">Q", after.at) + after.key
        else:
            start = prefix + (b"\xff" * (TIME_BYTES + 1) if newest_first else b"")
        # A forward read is bounded where the state's keys end: past there, it would step over
        # every tombstone beyond, such as the oldest records' that retention leaves, before it
        # found the next live key. (A backward read meets the newest, live end of the state
        # below; rocksdict 0.3 does not apply a lower bound to it.)
        bounds = ReadOptions()
        if not newest_first:
            bounds.set_iterate_upper_bound(prefix[:-1] + bytes([prefix[-1] + 1]))
        for key in self.db.keys(backwards=newest_first, from_key=start, read_opt=bounds):
            if not key.startswith(prefix):
                return
            at, task_key = (
                struct.unpack(">Q", key[len(prefix) : len(prefix) + TIME_BYTES])[0],
                key[len(prefix) + TIME_BYTES :],
            )
            if after is not None and (at, task_key) == (after.at, after.key):
                continue
            if before_at is not None and at >= before_at:
                return
            yield Entry(at, task_key, partition, state)

    def newest(self, partitions: Iterable[int], states: Iterable[State], after: Entry | None) -> Iterator[Entry]:
        """The entries of these states, newest first, older than ``after``; read as they are taken."""
        return heapq.merge(
            *(self._entries(p, s, newest_first=True, after=after) for p in partitions for s in states), reverse=True
        )

    def oldest(self, partition: int, state: State, before: float, after: Entry | None = None) -> Iterator[Entry]:
        """The partition's entries of ``state`` with a time before ``before``, oldest first, past
        ``after``: a reader that deletes as it goes resumes there, rather than seeking again
        over the tombstones of what it deleted."""
        return self._entries(partition, state, newest_first=False, after=after, before_at=micros(before))

    def of(self, partitions: Iterable[int], states: Iterable[State]) -> Iterator[Entry]:
        for partition in partitions:
            for state in states:
                yield from self._entries(partition, state, newest_first=False)

"""A worker's run slots (``AIRKAFKA_CONCURRENCY``), handed to the admitted tasks that wait for one
by priority: the highest ``priority_weight`` first, in arrival order among equals. A task holds
its ``pool_slots`` while it runs, as in an Airflow pool.

The head of the line waits until its slots are free; nothing behind it goes first, so that a
task of many slots is not starved by tasks of one. Nor is a low priority starved by a stream of
higher ones: each time a task goes before the longest-waiting one, that one is passed over, and
once passed over ``patience`` times it goes next, whatever its priority. So a task waits for at
most ``patience`` runs started after it arrived, beyond those ahead of it anyway.

``SlotLine`` decides, Faust-free and unit-tested; ``RunSlots`` carries it out on the event loop.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(order=True)
class _Waiter:
    rank: tuple[int, int]  # (-priority, arrival): the heap's order
    slots: int = field(compare=False)
    passed_over: int = field(default=0, compare=False)
    gone: bool = field(default=False, compare=False)


class SlotLine:
    """Who of the waiting tasks, each known by an arrival number, goes next."""

    def __init__(self, total: int, patience: int) -> None:
        self.total = self.free = total
        self.patience = patience
        self._heap: list[_Waiter] = []
        self._by_arrival: OrderedDict[int, _Waiter] = OrderedDict()
        self._arrivals = 0

    def __len__(self) -> int:
        return len(self._by_arrival)

    def arrive(self, priority: int, slots: int) -> int:
        """A task waits for ``slots``; its arrival number."""
        self._arrivals += 1
        waiter = _Waiter((-priority, self._arrivals), slots)
        heapq.heappush(self._heap, waiter)
        self._by_arrival[self._arrivals] = waiter
        return self._arrivals

    def leave(self, arrival: int) -> None:
        """A waiting task is gone (cancelled)."""
        if (waiter := self._by_arrival.pop(arrival, None)) is not None:
            waiter.gone = True

    def take(self, slots: int) -> bool:
        """Slots for a task that would not wait: only when nobody waits and they are free."""
        if self._by_arrival or slots > self.free:
            return False
        self.free -= slots
        return True

    def give_back(self, slots: int) -> None:
        self.free += slots

    def next(self) -> int | None:
        """The arrival number of the task that goes now, its slots taken; None when none can."""
        while self._heap and self._heap[0].gone:
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        oldest_arrival, oldest = next(iter(self._by_arrival.items()))
        chosen = oldest if oldest.passed_over >= self.patience else self._heap[0]
        if chosen.slots > self.free:
            return None
        if chosen is not oldest:
            oldest.passed_over += 1
        self.free -= chosen.slots
        chosen.gone = True
        arrival = chosen.rank[1]
        del self._by_arrival[arrival]
        return arrival


class RunSlots:
    """``acquire``/``release`` of a task's slots, in ``SlotLine``'s order."""

    def __init__(self, total: int, patience: int) -> None:
        self.line = SlotLine(total, patience)
        self._waiting: dict[int, tuple[asyncio.Future[None], int]] = {}  # arrival -> (its grant, its slots)

    def resize(self, total: int) -> None:
        """``total`` slots from now on; running tasks keep theirs, so fewer take effect as they end."""
        self.line.free += total - self.line.total
        self.line.total = total
        self._serve()

    async def acquire(self, slots: int, priority: int) -> int:
        """Wait for the task's slots; the slots taken, to give back: no more than there are, since
        the total may have shrunk below a task's pool_slots since it was admitted."""
        slots = min(slots, self.line.total)
        if self.line.take(slots):
            return slots
        arrival = self.line.arrive(priority, slots)
        granted = asyncio.get_running_loop().create_future()
        self._waiting[arrival] = (granted, slots)
        self._serve()
        try:
            await granted
        except asyncio.CancelledError:
            self._waiting.pop(arrival, None)
            if granted.done() and not granted.cancelled():
                self.release(slots)  # granted as it was cancelled
            else:
                self.line.leave(arrival)
                self._serve()  # the head may have been this one, holding up smaller ones
            raise
        return slots

    def release(self, slots: int) -> None:
        self.line.give_back(slots)
        self._serve()

    def _serve(self) -> None:
        while (arrival := self.line.next()) is not None:
            granted, slots = self._waiting.pop(arrival)
            if granted.cancelled():
                # Its task is being cancelled (a drain cancels them all at once) and has not yet
                # left the line: the slots go back.
                self.line.give_back(slots)
            else:
                granted.set_result(None)

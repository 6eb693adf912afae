import asyncio

from hypothesis import given
from hypothesis import strategies as st

from airkafka_app.worker.core.run_slots import RunSlots, SlotLine


def test_the_highest_priority_goes_first_and_arrival_order_among_equals():
    line = SlotLine(total=1, patience=100)
    assert line.take(1)
    low, high1, mid, high2 = (line.arrive(p, 1) for p in (0, 5, 3, 5))
    order = []
    for _ in range(4):
        line.give_back(1)
        order.append(line.next())
    assert order == [high1, high2, mid, low]


def test_a_task_of_many_slots_is_not_overtaken_by_smaller_ones_behind_it():
    line = SlotLine(total=4, patience=100)
    assert line.take(3)
    big = line.arrive(priority=9, slots=4)
    small = line.arrive(priority=1, slots=1)
    assert line.next() is None  # one slot is free, and the head needs four
    line.give_back(3)
    assert line.next() == big and line.next() is None
    line.give_back(4)
    assert line.next() == small


def test_a_low_priority_goes_next_once_passed_over_patience_times():
    line = SlotLine(total=1, patience=3)
    assert line.take(1)
    low = line.arrive(priority=0, slots=1)
    started = []
    for _ in range(5):
        line.arrive(priority=10, slots=1)  # a constant stream of higher ones
        line.give_back(1)
        started.append(line.next())
    assert started.index(low) == 3, started


def test_a_task_that_leaves_the_line_is_never_chosen():
    line = SlotLine(total=1, patience=100)
    assert line.take(1)
    gone, stays = line.arrive(5, 1), line.arrive(0, 1)
    line.leave(gone)
    line.give_back(1)
    assert line.next() == stays and len(line) == 0


@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(1, 3), st.booleans()), max_size=40), st.integers(1, 4))
def test_slots_are_never_over_given_and_every_task_ends_up_running(tasks, patience):
    line = SlotLine(total=3, patience=patience)
    running: dict[int, int] = {}
    waiting = {}
    for n, (priority, slots, finish_one) in enumerate(tasks):
        if line.take(slots):
            running[-n - 1] = slots  # never waited: no arrival number
        else:
            waiting[line.arrive(priority, slots)] = slots
        if finish_one and running:
            line.give_back(running.pop(next(iter(running))))
        while (arrival := line.next()) is not None:
            running[arrival] = waiting.pop(arrival)
        assert sum(running.values()) + line.free == 3
    while running:
        line.give_back(running.pop(next(iter(running))))
        while (arrival := line.next()) is not None:
            running[arrival] = waiting.pop(arrival)
    assert not waiting and line.free == 3


def test_a_cancelled_wait_takes_no_slot_and_lets_the_next_one_go():
    async def scenario():
        slots = RunSlots(total=2, patience=100)
        await slots.acquire(1, 0)
        big = asyncio.ensure_future(slots.acquire(2, 9))
        small = asyncio.ensure_future(slots.acquire(1, 0))
        await asyncio.sleep(0)
        assert not big.done() and not small.done()  # the big one heads the line
        big.cancel()
        await asyncio.wait_for(small, 1)
        assert slots.line.free == 0
        slots.release(1)
        slots.release(1)
        assert slots.line.free == 2

    asyncio.run(scenario())


def test_slots_freed_while_waiters_are_being_cancelled_go_back():
    """A drain cancels every run at once: a running one gives its slot back before the waiting
    ones have handled their cancellation."""

    async def scenario():
        slots = RunSlots(total=1, patience=100)
        await slots.acquire(1, 0)
        waiters = [asyncio.ensure_future(slots.acquire(1, 0)) for _ in range(3)]
        await asyncio.sleep(0)
        for waiter in waiters:
            waiter.cancel()  # their grants are cancelled now; their tasks run later
        slots.release(1)
        await asyncio.gather(*waiters, return_exceptions=True)
        assert slots.line.free == 1 and len(slots.line) == 0

    asyncio.run(scenario())

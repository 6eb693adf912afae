from airkafka_app.worker.tables.publisher import leave_out_passing, take_batch


def records(n: int, start: int = 0) -> dict:
    return {("table", b"k%d" % i): (i % 4, b"r%d" % i) for i in range(start, start + n)}


def changes(n: int) -> list:
    return [(b"c%d" % i, b"s%d" % i, False) for i in range(n)]


def test_what_fits_goes_in_one_batch():
    gathered = records(3), changes(2)
    assert take_batch(*gathered, 10) == (records(3), changes(2))
    assert gathered == ({}, [])


def test_a_burst_is_cut_records_first_changes_in_order():
    gathered = records(7), changes(5)
    assert take_batch(*gathered, 10) == (records(7), changes(3))
    assert gathered == ({}, changes(5)[3:])
    gathered = records(12), changes(5)
    assert take_batch(*gathered, 10) == (records(10), [])
    assert gathered == (records(2, start=10), changes(5))


def test_every_item_leaves_in_exactly_one_batch_in_the_order_gathered():
    pending, sent_records, sent_changes = (records(2345), changes(777)), {}, []
    while pending[0] or pending[1]:
        batch_records, batch_changes = take_batch(*pending, 1000)
        assert 0 < len(batch_records) + len(batch_changes) <= 1000
        sent_records.update(batch_records)
        sent_changes += batch_changes
    assert list(sent_records.items()) == list(records(2345).items()) and sent_changes == changes(777)


def test_a_passing_change_is_left_out_only_when_a_later_change_of_its_key_is_in_the_batch():
    gathered = [
        (b"a", b"a queued", True),
        (b"b", b"b queued", True),
        (b"a", b"a running", True),
        (b"c", b"c up_for_retry", False),
        (b"a", b"a success", False),
        (b"c", b"c running", True),
        (b"b", b"b running", True),
    ]
    assert leave_out_passing(gathered) == [
        (b"c", b"c up_for_retry", False),
        (b"a", b"a success", False),
        (b"c", b"c running", True),
        (b"b", b"b running", True),
    ]


def test_what_is_not_passing_always_goes_out_in_order():
    gathered = [(b"a", b"a up_for_retry", False), (b"a", b"a failed", False), (b"a", b"a cancelled", False)]
    assert leave_out_passing(gathered) == gathered


def test_a_batch_leaves_out_passing_changes_followed_within_it_not_across_batches():
    gathered = {}, [(b"a", b"a queued", True), (b"a", b"a running", True), (b"a", b"a success", False)]
    assert take_batch(*gathered, 2) == ({}, [(b"a", b"a running", True)])
    assert take_batch(*gathered, 2) == ({}, [(b"a", b"a success", False)])


def test_what_tests_accept_of_published_transitions():
    from tests.transitions import published_as

    full = ["queued", "running", "success"]
    assert published_as(full, full) and published_as(["success"], full) and published_as(["queued", "success"], full)
    assert not published_as(["queued", "running"], full)  # the end is never left out
    assert not published_as(["running", "queued", "success"], full)  # nor the order changed
    retried = [("running", 1), ("up_for_retry", 1), ("running", 2), ("success", 2)]
    assert published_as([("up_for_retry", 1), ("success", 2)], retried)
    assert not published_as([("running", 1), ("success", 2)], retried)


def test_a_held_record_never_takes_the_place_of_one_waiting_to_be_sent():
    """A resubmitted task's ``queued`` may not hold back its previous attempt's end, whose state
    change goes out in the next batch: the changelog would lack what a reader has seen."""
    import asyncio

    from airkafka_app.worker.tables.publisher import TablePublisher

    async def gather() -> tuple[dict, dict]:
        publisher = TablePublisher(None, "state-changes")  # type: ignore[arg-type]
        publisher._scheduled = True  # no batch is handed over: nothing is sent here
        publisher.add_record("table", 0, b"ended", b"failed, attempt 1")  # type: ignore[arg-type]
        publisher.add_record("table", 0, b"ended", b"queued, attempt 2", hold=True)  # type: ignore[arg-type]
        publisher.add_record("table", 1, b"new", b"queued, attempt 1", hold=True)  # type: ignore[arg-type]
        return publisher._records, publisher._held

    records, held = asyncio.run(gather())
    assert records == {("table", b"ended"): (0, b"queued, attempt 2")}
    assert held == {("table", b"new"): (1, b"queued, attempt 1")}


def test_passing_changes_alone_wait_for_more_and_anything_else_goes_at_once():
    from airkafka_app.worker.tables.publisher import PASSING_WAIT_S, wait_before_sending

    assert wait_before_sending([(b"a", b"a queued", True), (b"a", b"a running", True)]) == PASSING_WAIT_S
    assert wait_before_sending([(b"a", b"a running", True), (b"b", b"b success", False)]) == 0
    assert wait_before_sending([]) == 0  # records alone, such as retention's tombstones


def test_a_short_tasks_running_and_end_leave_in_one_batch_and_a_running_alone_leaves_after_the_wait():
    import asyncio
    from unittest import mock

    from airkafka_app.worker.tables.publisher import PASSING_WAIT_S, TablePublisher

    async def scenario() -> list[list[bytes]]:
        publisher, sent = TablePublisher(mock.Mock(), "state-changes"), []

        async def send(records, changes) -> None:
            sent.append([change for _, change, _ in changes])

        publisher._send = send
        publisher.add_change(b"a", b"a running", passing=True)
        await asyncio.sleep(PASSING_WAIT_S / 5)
        assert sent == []
        publisher.add_change(b"a", b"a success")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        publisher.add_change(b"b", b"b running", passing=True)
        await asyncio.sleep(PASSING_WAIT_S * 3)
        return sent

    assert asyncio.run(scenario()) == [[b"a success"], [b"b running"]]

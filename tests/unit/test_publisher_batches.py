from airkafka_app.worker.tables.publisher import take_batch


def records(n: int, start: int = 0) -> dict:
    return {("table", b"k%d" % i): (i % 4, b"r%d" % i) for i in range(start, start + n)}


def changes(n: int) -> list:
    return [(b"c%d" % i, b"s%d" % i) for i in range(n)]


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

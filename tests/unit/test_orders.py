import pytest

from airkafka_app.contract.orders import (
    Cancel,
    Concurrency,
    Maintenance,
    Mode,
    Pause,
    apply,
    encode_order,
    order_key,
    parse_order,
)

ORDERS = [
    Cancel("w1", "t1", "cancelled by c1"),
    Maintenance("w1", "disk swap"),
    Maintenance("w1", None),
    Pause("default", True),
    Pause("default", False),
    Concurrency("w1", 8),
]


@pytest.mark.parametrize("order", ORDERS)
def test_orders_round_trip(order):
    assert parse_order(encode_order(order)) == order


@pytest.mark.parametrize(
    "value",
    [
        b"null",
        b'{"to": "w1"}',
        b'{"to": "w1", "concurrency": 0}',
        b'{"to": "w1", "concurrency": true}',
        b'{"to": "w1", "pause": "default"}',  # a pause is for every worker
        b'{"to": "*", "pause": "default", "resume": "default"}',
        b'{"to": "w1", "maintenance": 5}',
        b'{"to": "w1", "cancel": "t1"}',
        b'{"to": "", "maintenance": null}',
    ],
)
def test_anything_else_is_no_order(value):
    assert parse_order(value) is None


def test_a_worker_becomes_what_its_orders_say_and_ignores_others():
    mode = Mode(concurrency=4)
    mode = apply(mode, Maintenance("w2", "not me"), "w1")
    assert mode == Mode(concurrency=4)
    mode = apply(mode, Maintenance("w1", "disk swap"), "w1")
    assert mode.why_waiting("default") == "the worker is in maintenance: disk swap"
    mode = apply(apply(mode, Maintenance("w1", None), "w1"), Pause("extra", True), "w1")
    assert mode.takes("default") and mode.why_waiting("extra") == "queue extra is paused"
    mode = apply(apply(mode, Pause("extra", False), "w1"), Concurrency("w1", 2), "w1")
    assert mode == Mode(concurrency=2) and apply(mode, ORDERS[0], "w1") == mode


def test_an_order_is_keyed_by_its_worker_or_star():
    assert order_key(Concurrency("w1", 2)) == b"w1" and order_key(Pause("q", True)) == b"*"

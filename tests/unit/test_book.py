"""Hand-written cases for each rule of the order book (each status and reason at least once)."""

from __future__ import annotations

import pytest

from strata.core.errors import InvariantViolation
from strata.modules.book import Book, Order, OrderReason, OrderStatus, TimeInForce

A = b"\xaa" * 20
B = b"\xbb" * 20
C = b"\xcc" * 20
GTC, IOC, FOK, ALO = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY


def buy(oid: int, price: int, size: int, owner: bytes = A, **kw: object) -> Order:
    return Order(oid, owner, True, price, size, **kw)  # type: ignore[arg-type]


def sell(oid: int, price: int, size: int, owner: bytes = B, **kw: object) -> Order:
    return Order(oid, owner, False, price, size, **kw)  # type: ignore[arg-type]


def fills(result: object) -> list[tuple[int, int, int]]:
    return [(f.maker.order_id, f.price_ticks, f.size_lots) for f in result.fills]  # type: ignore[attr-defined]


def test_resting_and_reads() -> None:
    book = Book(1)
    assert book.best_bid() is None and book.best_ask() is None and len(book) == 0
    r = book.place(buy(5, 100, 3, client_id=9), GTC)
    assert (r.status, r.reason, r.filled_lots, list(r.fills), list(r.canceled)) == (
        OrderStatus.OPEN,
        OrderReason.NONE,
        0,
        [],
        [],
    )
    book.place(buy(2, 101, 4), GTC)
    book.place(sell(9, 105, 1), GTC)
    book.place(sell(1, 104, 2), GTC)
    book.place(buy(3, 100, 1), GTC)
    assert book.best_bid() == 101 and book.best_ask() == 104
    assert book.depth(5) == ([(101, 4), (100, 4)], [(104, 2), (105, 1)])
    assert book.depth(1) == ([(101, 4)], [(104, 2)])
    assert [o.order_id for o in book.iter_orders()] == [1, 2, 3, 5, 9]
    assert len(book) == 5
    assert book.open_order_count(A) == 3 and book.open_order_count(C) == 0
    got = book.get_order_by_client_id(A, 9)
    assert got is not None and got.order_id == 5
    assert book.get_order(2) is not None and book.get_order(77) is None


def test_price_time_priority_with_non_monotonic_ids() -> None:
    book = Book(1)
    book.place(sell(30, 101, 2), GTC)  # arrives first
    book.place(sell(10, 101, 2), GTC)  # same price, later arrival, smaller id
    book.place(sell(20, 100, 1, owner=C), GTC)  # better price
    r = book.place(buy(40, 101, 4), GTC)
    assert fills(r) == [(20, 100, 1), (30, 101, 2), (10, 101, 1)]
    assert (r.status, r.reason, r.filled_lots) == (OrderStatus.FILLED, OrderReason.FILLED, 4)
    remaining = book.get_order(10)
    assert remaining is not None and remaining.size_lots == 1
    assert book.get_order(30) is None and book.get_order(40) is None


def test_gtc_partial_fill_rests_remainder_same_object() -> None:
    book = Book(1)
    book.place(sell(1, 100, 2), GTC)
    incoming = buy(2, 101, 5)
    r = book.place(incoming, GTC)
    assert r.status == OrderStatus.OPEN and r.filled_lots == 2
    assert book.get_order(2) is incoming and incoming.size_lots == 3
    assert book.best_bid() == 101 and book.best_ask() is None
    maker = r.fills[0].maker
    assert maker.size_lots == 0


def test_limit_stops_at_its_price() -> None:
    book = Book(1)
    book.place(sell(1, 100, 1), GTC)
    book.place(sell(2, 102, 1), GTC)
    r = book.place(buy(3, 101, 5), GTC)
    assert fills(r) == [(1, 100, 1)]
    assert book.best_bid() == 101 and book.best_ask() == 102


def test_sell_side_matching() -> None:
    book = Book(1)
    book.place(buy(1, 99, 1), GTC)
    book.place(buy(2, 100, 1), GTC)
    r = book.place(sell(3, 99, 3), IOC)
    assert fills(r) == [(2, 100, 1), (1, 99, 1)]
    assert (r.status, r.reason, r.filled_lots) == (
        OrderStatus.CANCELED,
        OrderReason.IOC_REMAINDER,
        2,
    )
    assert len(book) == 0


def test_ioc_nothing_filled_is_canceled() -> None:
    book = Book(1)
    book.place(sell(1, 105, 1), GTC)
    r = book.place(buy(2, 100, 1), IOC)
    assert (r.status, r.reason, r.filled_lots) == (
        OrderStatus.CANCELED,
        OrderReason.IOC_REMAINDER,
        0,
    )
    assert len(book) == 1


def test_self_trade_prevention_cancels_resting_and_continues() -> None:
    book = Book(1)
    book.place(sell(1, 100, 2, owner=A), GTC)
    book.place(sell(2, 100, 3, owner=B), GTC)
    r = book.place(buy(3, 100, 2, owner=A), GTC)
    assert [(o.order_id, why) for o, why in r.canceled] == [(1, OrderReason.SELF_TRADE)]
    assert fills(r) == [(2, 100, 2)]
    assert r.status == OrderStatus.FILLED
    assert book.get_order(1) is None and book.open_order_count(A) == 0


def test_post_only() -> None:
    book = Book(1)
    book.place(sell(1, 100, 1, owner=A), GTC)
    r = book.place(buy(2, 100, 1, owner=A), ALO)  # even against the owner's own order
    assert (r.status, r.reason) == (OrderStatus.REJECTED, OrderReason.POST_ONLY_WOULD_TAKE)
    assert len(book) == 1 and book.get_order(2) is None
    r = book.place(buy(3, 99, 1), ALO)
    assert (r.status, r.reason) == (OrderStatus.OPEN, OrderReason.NONE)


def test_fok_fills_all_or_nothing() -> None:
    book = Book(1)
    book.place(sell(1, 100, 2), GTC)
    book.place(sell(2, 101, 2, owner=A), GTC)  # the taker's own: not available, not canceled
    book.place(sell(3, 102, 2), GTC)
    r = book.place(buy(4, 102, 5, owner=A), FOK)
    assert (r.status, r.reason, list(r.fills), list(r.canceled)) == (
        OrderStatus.REJECTED,
        OrderReason.FOK_NOT_FILLABLE,
        [],
        [],
    )
    assert len(book) == 3
    r = book.place(buy(5, 102, 4, owner=A), FOK)
    assert (r.status, r.reason) == (OrderStatus.FILLED, OrderReason.FILLED)
    assert fills(r) == [(1, 100, 2), (3, 102, 2)]
    assert [(o.order_id, why) for o, why in r.canceled] == [(2, OrderReason.SELF_TRADE)]
    assert len(book) == 0
    r = book.place(buy(6, 102, 1), FOK)  # empty book
    assert (r.status, r.reason) == (OrderStatus.REJECTED, OrderReason.FOK_NOT_FILLABLE)


def test_fok_applies_reduce_only_caps() -> None:
    book = Book(1)
    book.place(sell(1, 100, 5, reduce_only=True), GTC)
    r = book.place(buy(2, 100, 4), FOK, lambda owner, is_buy: 3)
    assert r.reason == OrderReason.FOK_NOT_FILLABLE and book.get_order(1) is not None
    r = book.place(buy(3, 100, 3), FOK, lambda owner, is_buy: 3)
    assert fills(r) == [(1, 100, 3)]
    # 2 lots left, cap now spent (0 left): canceled as reduce-only.
    assert [(o.order_id, why) for o, why in r.canceled] == [(1, OrderReason.REDUCE_ONLY)]


def test_duplicate_client_id_rejected_up_front() -> None:
    book = Book(1)
    book.place(buy(1, 90, 1, client_id=7), GTC)
    book.place(sell(2, 100, 1), GTC)
    r = book.place(buy(3, 100, 1, client_id=7), IOC)
    assert (r.status, r.reason) == (OrderStatus.REJECTED, OrderReason.DUPLICATE_CLIENT_ID)
    assert book.get_order(2) is not None
    assert book.place(buy(4, 91, 1, client_id=7, owner=C), GTC).status == OrderStatus.OPEN
    book.cancel(1)
    assert book.place(buy(5, 91, 1, client_id=7), GTC).status == OrderStatus.OPEN


def test_too_many_open_orders() -> None:
    book = Book(1, max_open_orders_per_owner=2)
    book.place(buy(1, 90, 1), GTC)
    book.place(buy(2, 91, 1), GTC)
    r = book.place(buy(3, 92, 1), GTC)
    assert (r.status, r.reason) == (OrderStatus.REJECTED, OrderReason.TOO_MANY_OPEN_ORDERS)
    assert book.place(buy(4, 92, 1), ALO).reason == OrderReason.TOO_MANY_OPEN_ORDERS
    book.place(sell(5, 95, 1), GTC)
    assert book.place(buy(6, 95, 1), IOC).status == OrderStatus.FILLED  # IOC never rests
    book.cancel(1)
    assert book.place(buy(7, 92, 1), GTC).status == OrderStatus.OPEN


def test_reduce_only_makers() -> None:
    book = Book(1)
    book.place(sell(1, 100, 2, owner=B), GTC)  # ordinary maker of B
    book.place(sell(2, 100, 3, owner=B, reduce_only=True), GTC)
    book.place(sell(3, 101, 5, owner=C, reduce_only=True), GTC)
    book.place(sell(4, 102, 1), GTC)
    caps = {B: 4, C: 0}
    calls: list[tuple[bytes, bool]] = []

    def cap(owner: bytes, is_buy: bool) -> int:
        calls.append((owner, is_buy))
        return caps[owner]

    r = book.place(buy(5, 102, 10), GTC, cap)
    # B: cap 4, its ordinary maker filled 2 earlier, so order 2 fills 2 and is canceled (1 left
    # > 0 allowance left). C: cap 0, canceled without filling.
    assert fills(r) == [(1, 100, 2), (2, 100, 2), (4, 102, 1)]
    assert [(o.order_id, why) for o, why in r.canceled] == [
        (2, OrderReason.REDUCE_ONLY),
        (3, OrderReason.REDUCE_ONLY),
    ]
    assert (B, False) in calls and (C, False) in calls
    assert r.status == OrderStatus.OPEN and r.filled_lots == 5
    assert book.best_bid() == 102 and book.best_ask() is None


def test_reduce_only_maker_within_cap_stays() -> None:
    book = Book(1)
    book.place(sell(1, 100, 3, reduce_only=True), GTC)
    r = book.place(buy(2, 100, 1), GTC, lambda owner, is_buy: 10)
    assert fills(r) == [(1, 100, 1)] and r.canceled == []
    assert book.get_order(1) is not None


def test_reduce_only_without_cap_is_ordinary() -> None:
    book = Book(1)
    book.place(sell(1, 100, 3, reduce_only=True), GTC)
    r = book.place(buy(2, 100, 3), GTC)
    assert fills(r) == [(1, 100, 3)] and r.canceled == []


def test_cancel_and_reduce() -> None:
    book = Book(1)
    book.place(buy(1, 100, 5, client_id=1), GTC)
    book.place(buy(2, 100, 5), GTC)
    reduced = book.reduce(1, 2)
    assert reduced is not None and reduced.size_lots == 3
    # Reduce keeps time priority: order 1 still first.
    r = book.place(sell(3, 100, 4), IOC)
    assert fills(r) == [(1, 100, 3), (2, 100, 1)]
    assert book.get_order_by_client_id(A, 1) is None
    gone = book.reduce(2, 9)
    assert gone is not None and gone.size_lots == 0 and len(book) == 0
    assert book.reduce(2, 1) is None
    assert book.cancel(2) is None
    book.place(sell(4, 101, 2), GTC)
    canceled = book.cancel(4)
    assert canceled is not None and canceled.size_lots == 2
    assert book.best_ask() is None and book.open_order_count(B) == 0
    with pytest.raises(InvariantViolation):
        book.reduce(4, 0)


def test_level_reused_after_emptying() -> None:
    book = Book(1)
    book.place(sell(1, 100, 1), GTC)
    book.cancel(1)
    book.place(sell(2, 100, 1), GTC)
    book.place(sell(3, 99, 1), GTC)
    book.cancel(3)
    assert book.best_ask() == 100 and book.depth(3) == ([], [(100, 1)])


def test_insert_resting_and_duplicates() -> None:
    book = Book(1)
    book.insert_resting(buy(1, 100, 2, client_id=3))
    book.insert_resting(sell(2, 101, 2))
    assert book.depth(2) == ([(100, 2)], [(101, 2)])
    with pytest.raises(InvariantViolation):
        book.insert_resting(buy(1, 99, 1))
    with pytest.raises(InvariantViolation):
        book.insert_resting(buy(5, 99, 1, client_id=3))
    with pytest.raises(InvariantViolation):
        book.place(buy(2, 99, 1), GTC)


def test_many_levels_compaction() -> None:
    book = Book(1, max_open_orders_per_owner=10_000)
    for i in range(2000):
        book.place(buy(i, 1000 + i, 1), GTC)
    for i in range(1999):
        book.cancel(i)
    for i in range(2000, 2600):
        book.place(buy(i, 5000 + i, 1), GTC)
    assert book.best_bid() == 7599
    assert book.depth(2) == ([(7599, 1), (7598, 1)], [])
    r = book.place(sell(9999, 1, 700), IOC)
    assert r.filled_lots == 601 and book.best_bid() is None and len(book) == 0

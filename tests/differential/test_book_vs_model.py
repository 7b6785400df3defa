"""Differential test: the fast ``Book`` against the naive ``ModelBook`` on random streams.

Each step applies the same operation to both books and asserts identical results and identical
visible state, plus the book invariants (never crossed, no zero sizes, indexes consistent).
"""

from __future__ import annotations

import random

import pytest

from strata.modules.book import Book, Order, PlaceResult, TimeInForce
from tests.differential.model_book import ModelBook

OWNERS = [bytes([i]) * 20 for i in range(1, 5)]
TIFS = [TimeInForce.GTC] * 6 + [TimeInForce.IOC] * 2 + [TimeInForce.FOK, TimeInForce.POST_ONLY]


def _result_key(result: PlaceResult) -> tuple[object, ...]:
    return (
        [(f.maker.order_id, f.price_ticks, f.size_lots, f.maker.size_lots) for f in result.fills],
        [(o.order_id, o.size_lots, reason) for o, reason in result.canceled],
        result.status,
        result.reason,
        result.filled_lots,
    )


def _check_same(book: Book, model: ModelBook) -> None:
    assert book.depth(1000) == model.depth(1000)
    assert book.depth(3) == model.depth(3)
    assert [o.as_tuple() for o in book.iter_orders()] == [o.as_tuple() for o in model.iter_orders()]
    assert len(book) == len(model)
    assert book.best_bid() == model.best_bid()
    assert book.best_ask() == model.best_ask()
    for owner in OWNERS:
        assert book.open_order_count(owner) == model.open_order_count(owner)
        assert [o.as_tuple() for o in book.orders_of(owner)] == [
            o.as_tuple() for o in model.orders_of(owner)
        ]
    for o in model.iter_orders():
        assert book.get_order(o.order_id) is not None
        assert o.size_lots > 0
        if o.client_id is not None:
            found = book.get_order_by_client_id(o.owner, o.client_id)
            assert found is not None and found.order_id == o.order_id
    bid, ask = book.best_bid(), book.best_ask()
    assert bid is None or ask is None or bid < ask, "book crossed"


def run_stream(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    max_open = rng.choice([3, 8, 1000])
    book = Book(7, max_open_orders_per_owner=max_open)
    model = ModelBook(7, max_open_orders_per_owner=max_open)
    ids = rng.sample(range(1, 10 * steps + 10), steps + 5)  # not monotonic
    next_id = 0
    live: list[int] = []
    positions = dict.fromkeys(OWNERS, 0)
    use_caps = rng.random() < 0.7
    mid = 1000
    width = rng.choice([3, 8, 20, 300])

    def cap(owner: bytes, is_buy: bool) -> int:
        pos = positions[owner]
        return max(0, -pos) if is_buy else max(0, pos)

    for _ in range(steps):
        r = rng.random()
        live = [i for i in live if book.get_order(i) is not None]
        if r < 0.55 or not live:
            order_id = ids[next_id]
            next_id += 1
            owner = rng.choice(OWNERS)
            is_buy = rng.random() < 0.5
            price = mid + rng.randint(-width, width)
            size = rng.randint(1, 12)
            cid = rng.randint(1, 6) if rng.random() < 0.3 else None
            ro = rng.random() < 0.3
            tif = rng.choice(TIFS)
            o1 = Order(order_id, owner, is_buy, price, size, cid, ro)
            o2 = Order(order_id, owner, is_buy, price, size, cid, ro)
            cap_fn = cap if use_caps else None
            r1 = book.place(o1, tif, cap_fn)
            r2 = model.place(o2, tif, cap_fn)
            assert _result_key(r1) == _result_key(r2), (seed, order_id, tif)
            assert o1.size_lots == o2.size_lots
            assert r1.filled_lots == sum(f.size_lots for f in r1.fills)
            assert all(f.size_lots > 0 for f in r1.fills)
            for fill in r1.fills:
                sign = 1 if is_buy else -1
                positions[owner] += sign * fill.size_lots
                positions[fill.maker.owner] -= sign * fill.size_lots
            if book.get_order(order_id) is not None:
                live.append(order_id)
            if rng.random() < 0.05:
                mid += rng.choice([-1, 1])
        elif r < 0.8:
            order_id = rng.choice(live) if rng.random() < 0.9 else -1
            c1 = book.cancel(order_id)
            c2 = model.cancel(order_id)
            assert (c1 and c1.as_tuple()) == (c2 and c2.as_tuple())
        else:
            order_id = rng.choice(live) if rng.random() < 0.95 else -1
            qty = rng.randint(1, 8)
            c1 = book.reduce(order_id, qty)
            c2 = model.reduce(order_id, qty)
            assert (c1 and c1.as_tuple()) == (c2 and c2.as_tuple())
        _check_same(book, model)


@pytest.mark.parametrize("seed", range(60))
def test_book_matches_model(seed: int) -> None:
    run_stream(seed, 2500)


@pytest.mark.long
@pytest.mark.parametrize("seed", range(1000, 3000))
def test_book_matches_model_long(seed: int) -> None:
    run_stream(seed, 3000)


@pytest.mark.parametrize("seed", range(100, 110))
def test_book_matches_model_with_frequent_compaction(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Empty-level compaction (normally after 256 levels) exercised on small books."""
    from strata.modules.book import book as book_module

    monkeypatch.setattr(book_module, "_GC_MIN", 2)
    run_stream(seed, 2500)

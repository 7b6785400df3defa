"""Seeded synthetic order-flow workload for the book benchmark.

``generate(events, seed)`` returns a :class:`Workload`: a ``setup`` list that builds a starting
book (not timed) and an ``events`` list to time. Every event is a plain tuple, pre-decoded, so a
benchmark measures the book and not a decoder:

- ``(OP_PLACE, order_id, owner, is_buy, price_ticks, size_lots, tif)``
- ``(OP_CANCEL, order_id)``
- ``(OP_REDUCE, order_id, size_lots)``

Mix (probabilities per event, defaults)
---------------------------------------
- 45% passive limit placements (GTC, 1 in 10 POST_ONLY) on the order's own side at 0-12 ticks
  behind the mid (geometric, p = ``BEHIND_P`` = 0.35: mostly at the touch), clamped so they
  never cross;
- 30% cancels of a uniformly chosen live order;
- 15% marketable orders (2/3 IOC, 1/3 GTC) limited at the 1st, 2nd or 3rd opposite level
  (uniform), sized like a passive order (1 + geometric, p = 0.25, at most 15 lots), so they
  cross into level 2 or 3 when the levels before are thinner than their size; GTC ones get an
  extra chunk that rests after crossing;
- 10% partial reduces of a live order of at least 2 lots (a few tries) by 1 to ``size - 1``.

A restoring force moves up to ``TILT`` = 5% of the mix between placements and cancels to keep
the book near ``target_live`` orders, and placements are forced while fewer than 50 orders rest.
Marketable orders consume about 1.7 resting orders each, so the book settles at 50-200 orders
and the realized mix is about 50/25/15/10 (``Workload.mix`` counts it).

Price process
-------------
A mid price in ticks (start 100_000) follows a lazy random walk: before each event it moves one
tick up or down with probability ``drift_prob`` (default 0.02). Passive sizes are 1 to 10 lots
(``1 + geometric``, p = 0.35). Owners are drawn from 64 accounts, so self-trades are rare but
happen. Order ids are consecutive from 1 (the chain's per-market sequence).

The generator drives a real ``Book`` to know the live orders and the touch, so every cancel and
reduce names a live order when it is generated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from strata.modules.book import Book, Order, TimeInForce

OP_PLACE = 0
OP_CANCEL = 1
OP_REDUCE = 2

BEHIND_P = 0.35
BEHIND_MAX = 12
TILT = 0.05

Event = tuple[object, ...]


@dataclass(frozen=True)
class Workload:
    """A timed event stream and the untimed setup that builds its starting book."""

    setup: list[Event]
    events: list[Event]
    mix: dict[str, int]


def _geometric(rng: random.Random, p: float, cap: int) -> int:
    n = 0
    while n < cap and rng.random() > p:
        n += 1
    return n


def generate(
    events: int,
    seed: int,
    *,
    setup_orders: int = 2_000,
    drift_prob: float = 0.02,
    owners: int = 64,
    target_live: int = 2_000,
) -> Workload:
    """Generate ``setup_orders`` passive placements then ``events`` mixed events (see module
    docstring). Deterministic for a given ``(events, seed, ...)``."""
    rng = random.Random(seed)
    book = Book(1, max_open_orders_per_owner=10**9)
    accounts = [i.to_bytes(20, "big") for i in range(1, owners + 1)]
    live: list[int] = []  # order ids, swap-remove via index
    where: dict[int, int] = {}
    mid = 100_000
    next_id = 1
    mix = {"passive": 0, "cancel": 0, "marketable": 0, "reduce": 0}

    def add_live(order_id: int) -> None:
        where[order_id] = len(live)
        live.append(order_id)

    def drop_live(order_id: int) -> None:
        i = where.pop(order_id)
        last = live.pop()
        if last != order_id:
            live[i] = last
            where[last] = i

    def apply_place(ev: Event) -> None:
        _, order_id, owner, is_buy, price, size, tif = ev
        order = Order(order_id, owner, is_buy, price, size)  # type: ignore[arg-type]
        result = book.place(order, tif)  # type: ignore[arg-type]
        for fill in result.fills:
            if fill.maker.size_lots == 0:
                drop_live(fill.maker.order_id)
        for canceled, _ in result.canceled:
            drop_live(canceled.order_id)
        if book.get_order(order_id) is not None:  # type: ignore[arg-type]
            add_live(order_id)  # type: ignore[arg-type]

    def passive(is_buy: bool) -> Event:
        nonlocal next_id
        opp_best = book.best_ask() if is_buy else book.best_bid()
        behind = _geometric(rng, BEHIND_P, BEHIND_MAX)
        if is_buy:
            price = mid - 1 - behind
            if opp_best is not None and price >= opp_best:
                price = opp_best - 1
        else:
            price = mid + 1 + behind
            if opp_best is not None and price <= opp_best:
                price = opp_best + 1
        tif = TimeInForce.POST_ONLY if rng.random() < 0.1 else TimeInForce.GTC
        ev: Event = (
            OP_PLACE,
            next_id,
            rng.choice(accounts),
            is_buy,
            price,
            1 + _geometric(rng, 0.35, 9),
            tif,
        )
        next_id += 1
        return ev

    setup: list[Event] = []
    for i in range(setup_orders):
        ev = passive(i % 2 == 0)
        setup.append(ev)
        apply_place(ev)

    out: list[Event] = []
    while len(out) < events:
        if rng.random() < drift_prob:
            mid += rng.choice((-1, 1))
        r = rng.random()
        # Restoring force: shift up to 5% of the mix between passive placements and cancels
        # so the book stays near ``target_live`` orders instead of random-walking away.
        tilt = TILT * max(-1.0, min(1.0, (target_live - len(live)) / target_live))
        if r < 0.45 + tilt or len(live) < 50:
            ev = passive(rng.random() < 0.5)
            apply_place(ev)
            mix["passive"] += 1
        elif r < 0.75:
            order_id = live[rng.randrange(len(live))]
            ev = (OP_CANCEL, order_id)
            book.cancel(order_id)
            drop_live(order_id)
            mix["cancel"] += 1
        elif r < 0.90:
            is_buy = rng.random() < 0.5
            bids, asks = book.depth(3)
            opp = asks if is_buy else bids
            if not opp:
                continue
            levels = rng.randint(1, 3)
            n = min(len(opp), levels)
            price = opp[n - 1][0]
            # Sized like a passive order: it crosses into level n only when the levels before
            # it are thinner than its size (common after partial fills and reduces).
            size = 1 + _geometric(rng, 0.25, 14)
            if rng.random() < 2 / 3:
                tif = TimeInForce.IOC
            else:
                # A GTC taker sized beyond what it crosses: its remainder rests at its price.
                tif = TimeInForce.GTC
                size += 1 + _geometric(rng, 0.35, 9)
            ev = (OP_PLACE, next_id, rng.choice(accounts), is_buy, price, size, tif)
            next_id += 1
            apply_place(ev)
            mix["marketable"] += 1
        else:
            # A partial reduce: pick a live order of at least 2 lots (a few tries).
            for _ in range(8):
                order_id = live[rng.randrange(len(live))]
                order = book.get_order(order_id)
                assert order is not None
                if order.size_lots > 1:
                    break
            assert order is not None
            qty = 1 if order.size_lots == 1 else rng.randint(1, order.size_lots - 1)
            ev = (OP_REDUCE, order_id, qty)
            if book.reduce(order_id, qty) is not None and book.get_order(order_id) is None:
                drop_live(order_id)
            mix["reduce"] += 1
        out.append(ev)
    return Workload(setup, out, mix)


def write_jsonl(workload: Workload, path: str) -> int:
    """Write setup + events in ``strata replay-book --format jsonl`` form; returns the line count.

    Passive and GTC marketable orders become ``limit`` events; IOC orders become ``market``
    events (no price limit, so they may sweep further than in the book benchmark).
    """
    import json

    n = 0
    with open(path, "w", encoding="ascii") as f:
        for ev in [*workload.setup, *workload.events]:
            if ev[0] == OP_PLACE:
                _, order_id, _, is_buy, price, size, tif = ev
                side = "buy" if is_buy else "sell"
                if tif == TimeInForce.IOC:
                    rec: dict[str, object] = {"op": "market", "id": order_id, "side": side}
                    rec["qty"] = size
                else:
                    rec = {"op": "limit", "id": order_id, "side": side, "price": price, "qty": size}
            elif ev[0] == OP_CANCEL:
                rec = {"op": "cancel", "id": ev[1]}
            else:
                rec = {"op": "reduce", "id": ev[1], "qty": ev[2]}
            f.write(json.dumps(rec) + "\n")
            n += 1
    return n


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4:
        print("usage: python bench/workload.py EVENTS SEED OUT.jsonl", file=sys.stderr)
        raise SystemExit(2)
    count = write_jsonl(generate(int(sys.argv[1]), int(sys.argv[2])), sys.argv[3])
    print(f"wrote {count} lines to {sys.argv[3]}")

"""Unit tests of the node's parts that need no process: units formatting, ordering, feeds."""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from strata.client.errors import RpcCode, RpcError
from strata.client.markets import format_decimal, format_units
from strata.node.feeds import Lazy, Ring
from strata.node.mempool import ArrivalOrder, Mempool, PendingTx
from strata.node.node import RateLimiter
from strata.node.rpc import openrpc_document, parse_body


@pytest.mark.parametrize("unit", ["0.1", "0.0001", "0.01", "0.000001", "1", "5", "0.25", "10"])
def test_format_units_equals_decimal_arithmetic(unit: str) -> None:
    rng = random.Random(unit)
    counts = [0, 1, -1, 7, 999, 1000, -1000, 10**20] + [
        rng.randint(-(10**12), 10**12) for _ in range(500)
    ]
    for count in counts:
        assert format_units(count, unit) == format_decimal(Decimal(unit) * count)


def _tx(account: bytes, nonce: int, tag: int) -> PendingTx:
    return PendingTx(
        tx_hash=tag.to_bytes(32, "big"),
        data=b"x" * 10 + tag.to_bytes(4, "big"),
        account=account,
        nonce=nonce,
        signer=None,
        is_cancel=False,
        received_ns=0,
        gas=1,
    )


def test_arrival_order_keeps_slots_and_sorts_each_accounts_nonces() -> None:
    a, b = b"a" * 20, b"b" * 20
    txs = [_tx(a, 5, 1), _tx(b, 9, 2), _tx(a, 3, 3), _tx(b, 8, 4), _tx(a, 4, 5)]
    chosen = ArrivalOrder().select(txs, 10)
    assert [(t.account, t.nonce) for t in chosen] == [(a, 3), (b, 8), (a, 4), (b, 9), (a, 5)]
    assert len(ArrivalOrder().select(txs, 2)) == 2


def test_mempool_bounded_cancels_displace_orders_and_journal_recovers(tmp_path: Path) -> None:
    path = tmp_path / "mempool.log"
    pool = Mempool(path, capacity=3)
    for i in range(3):
        pool.add(_tx(b"a" * 20, i + 1, i))
    with pytest.raises(RpcError) as full:
        pool.add(_tx(b"a" * 20, 10, 10))
    assert full.value.code == RpcCode.MEMPOOL_FULL
    cancel = _tx(b"a" * 20, 11, 11)
    cancel.is_cancel = True
    pool.add(cancel)  # evicts the newest order
    assert len(pool) == 3 and cancel.tx_hash in pool and (2).to_bytes(32, "big") not in pool
    pool.flush()
    with path.open("ab") as log:
        log.write(b"\x00\x00\x00\x10torn")  # a torn record at the tail ends the journal
    reloaded = Mempool(path, capacity=10)
    seen: list[bytes] = []
    count = reloaded.recover(lambda data: seen.append(data) or None)  # type: ignore[func-returns-value]
    assert count == 0 and len(seen) == 4  # every journaled record, none of the torn tail


def test_mempool_is_bounded_in_gas_not_in_count(tmp_path: Path) -> None:
    pool = Mempool(tmp_path / "mempool.log", capacity=10)
    bulk = _tx(b"a" * 20, 1, 1)
    bulk.gas = 8  # a bulk weighs its orders
    pool.add(bulk)
    pool.add(_tx(b"a" * 20, 2, 2))
    with pytest.raises(RpcError):
        pool.add(_heavy(3, 2))
    cancel = _heavy(4, 9)
    cancel.is_cancel = True
    pool.add(cancel)  # displaces the newest orders until it fits: both of them
    assert pool.gas == 9 and len(pool) == 1
    pool.remove_many([cancel.tx_hash])
    assert pool.gas == 0


def _heavy(tag: int, gas: int) -> PendingTx:
    tx = _tx(b"b" * 20, tag, tag)
    tx.gas = gas
    return tx


def test_feed_ring_is_bounded_and_resumes_or_says_it_cannot() -> None:
    ring = Ring(covered_from=1, max_entries=4, max_bytes=1000)
    for height in range(1, 6):
        ring.add(height, b"k" if height % 2 else None, Lazy.of({"m": height}))
    assert ring.covered_from == 2  # height 1 was evicted (at most 4 entries)
    assert ring.since(5) == []
    assert ring.since(3) == ['{"m":4}', '{"m":5}']
    assert ring.since(1) == ['{"m":2}', '{"m":3}', '{"m":4}', '{"m":5}']
    assert ring.since(0) is None  # height 1 is gone: the caller sends a snapshot or a reset
    assert ring.since(1, key=b"k") == ['{"m":3}', '{"m":5}']
    ring.add(6, None, Lazy.of({"x": "x" * 980}))  # over 1000 bytes: the oldest go until it fits
    assert ring.bytes <= 1000 and ring.covered_from == 5
    rendered: list[int] = []
    lazy = Lazy(lambda: rendered.append(1) or {"y": 1}, 10)  # type: ignore[func-returns-value]
    ring.add(7, None, lazy)
    assert not rendered  # rendered only when read
    assert ring.since(6) == ['{"y":1}'] and ring.since(6) == ['{"y":1}'] and rendered == [1]


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b"[1.0]",
        b"[1e3]",
        b"[NaN]",
        b"[-0.0]",
        b"\xff\xfe",
        b"[" * 9 + b"]" * 9,
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_parse_body_refuses_what_a_lenient_parser_would_guess(body: bytes) -> None:
    with pytest.raises(RpcError) as refused:
        parse_body(body)
    assert refused.value.code == RpcCode.PARSE_ERROR


def test_parse_body_accepts_integers_and_depth_eight() -> None:
    assert parse_body(b"[" * 8 + b"1" + b"]" * 8) is not None
    assert parse_body(b'{"x": 340282366920938463463374607431768211457}')["x"] == 2**128 + 1


def test_committed_openrpc_document_is_the_served_one() -> None:
    """docs/openrpc.json is generated from the method table (regenerate it when a method
    changes: ``.venv/bin/python -m strata.node.rpc > docs/openrpc.json``)."""
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openrpc.json").read_text())
    assert committed == openrpc_document()


def test_rate_limiter_bursts_then_refuses_and_a_key_rate_can_grow() -> None:
    limiter = RateLimiter(rate=10)
    assert sum(limiter.allow("ip") for _ in range(25)) == 20  # a burst of twice the rate
    assert not limiter.allow("ip")
    assert limiter.allow("other")  # keys are independent
    # An account whose volume earned it a higher rate refills at that rate from then on.
    assert sum(limiter.allow("acct", 1.0, 10.0) for _ in range(25)) == 20
    time.sleep(0.05)  # 0.5 token at 10/s, 50 at 1,000/s
    assert sum(limiter.allow("acct", 1.0, 1000.0) for _ in range(100)) >= 40

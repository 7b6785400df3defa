"""The oracle's rules: median, clamp, staleness and mark, with worked integer examples.

Chain scenarios use the test chain of ``tests/helpers/chain.py`` (BTC-PERP, market 1, genesis
price 500,000 ticks; blocks every 200 ms; default staleness 10 s, clamp 5 %, EMA alpha 1/8).
"""

from __future__ import annotations

import msgspec
import pytest

from strata.client.signing import wallet_from_seed
from strata.core.errors import ErrorCode, InvalidBlock
from strata.modules import oracle
from strata.modules.book import OrderReason, OrderStatus, TimeInForce
from strata.modules.clearing.events import OrderUpdate
from strata.modules.oracle import (
    OracleFresh,
    OracleStale,
    compute_basis_ema,
    compute_book_price,
    compute_clamped_index,
    compute_mark_components,
    compute_mark_price,
    compute_max_index_move,
    compute_median_low,
)
from strata.stf.block import BlockOutput
from strata.stf.params import ChainParams, check_chain_params
from strata.stf.transactions import BulkPlace, PlaceOrder, compute_transaction_hash
from tests.helpers.chain import Chain, make_chain, sign_price

GTC, IOC = TimeInForce.GTC, TimeInForce.IOC
BTC = 1


# --- pure rules --------------------------------------------------------------------------------


def test_median_low() -> None:
    assert compute_median_low([7]) == 7
    assert compute_median_low([300, 100, 200]) == 200
    assert compute_median_low([110, 100]) == 100  # even count: the lower middle value
    assert compute_median_low([1, 2, 3, 1_000_000]) == 2  # one outlier cannot move it
    with pytest.raises(ValueError):
        compute_median_low([])


def test_clamp_rounds_the_step_up_and_takes_the_first_index_as_is() -> None:
    assert compute_max_index_move(1_000, 50_000) == 50
    assert compute_max_index_move(10, 50_000) == 1  # ceil(0.5): a cheap market can still move
    assert compute_max_index_move(1_001, 50_000) == 51  # ceil(50.05)
    assert compute_clamped_index(1_200, 1_000, 50_000) == 1_050
    assert compute_clamped_index(800, 1_000, 50_000) == 950
    assert compute_clamped_index(1_020, 1_000, 50_000) == 1_020  # within the bound
    assert compute_clamped_index(123_456, None, 50_000) == 123_456  # first index
    assert compute_clamped_index(1, 2, 1_000_000) == 1  # never below one tick


def test_basis_ema_and_mark() -> None:
    # mid 1,005 vs index 1,000: sample 5 ticks = 5,000,000 micro; alpha 1/8 -> 625,000.
    assert compute_basis_ema(0, 1_000, 1_010, 1_000, 125_000) == 625_000
    # mid 995.5: sample -4,500,000; ema' = 625,000 + floor(-5,125,000 / 8) = -15,625.
    assert compute_basis_ema(625_000, 990, 1_001, 1_000, 125_000) == -15_625
    # Book price: median of (bid, ask, last), missing ones replaced by the index.
    assert compute_book_price(990, 1_020, 1_500, 1_000) == 1_020
    assert compute_book_price(None, None, None, 1_000) == 1_000
    assert compute_book_price(1_010, None, 1_030, 1_000) == 1_010
    # Components: (index + floor(ema / 1e6), book, index).
    parts = compute_mark_components(1_000, 2_500_000, 1_004, 1_008, 1_006)
    assert parts == (1_002, 1_006, 1_000)
    assert compute_mark_price(parts) == 1_002
    # A negative EMA floors towards minus infinity: -0.5 tick -> -1.
    assert compute_mark_components(1_000, -500_000, None, None, None)[0] == 999


def test_chain_params_bounds() -> None:
    check_chain_params(ChainParams(chain_id=1))
    for bad in (
        {"oracle_staleness_ms": 0},
        {"oracle_max_move_ppm": 0},
        {"oracle_max_move_ppm": 1_000_001},
        {"mark_ema_alpha_ppm": 0},
    ):
        with pytest.raises(InvalidBlock):
            check_chain_params(ChainParams(chain_id=1, **bad))  # type: ignore[arg-type]


# --- on the chain ------------------------------------------------------------------------------

KEYS = [wallet_from_seed(f"oracle-{i}") for i in range(3)]


def three_key_chain(**overrides: object) -> Chain:
    c = make_chain(**overrides)
    c.params = msgspec.structs.replace(c.params, oracle_keys=tuple(k.address for k in KEYS))
    return c


def post(c: Chain, prices: list[int | None], market_id: int = BTC) -> list[object]:
    """Each key's price (``None``: that key does not post), observed 1 ms after the tip."""
    return [
        sign_price(k, market_id, p, c.now_ms + 1, c.params)
        for k, p in zip(KEYS, prices, strict=True)
        if p is not None
    ]


def index(c: Chain) -> int | None:
    return oracle.get_index_price(c.state, BTC)


def test_index_is_the_median_of_three_keys() -> None:
    c = three_key_chain()
    c.block(system=post(c, [500_100, 499_000, 900_000]))  # type: ignore[arg-type]
    assert index(c) == 500_100
    assert oracle.get_mark_price(c.state, BTC) == 500_100  # empty book: mark = index
    # Two keys: the lower median.
    c.block(system=post(c, [None, 501_000, 502_000]))  # type: ignore[arg-type]
    assert index(c) == 501_000


def test_index_is_clamped_per_block() -> None:
    c = three_key_chain()
    for expected in (525_000, 551_250, 578_813):  # ceil steps of 5 %: 25,000, 26,250, 27,563
        c.block(system=post(c, [700_000, 700_000, 700_000]))  # type: ignore[arg-type]
        assert index(c) == expected


def test_submission_older_than_staleness_is_ignored_and_freezes_orders() -> None:
    c = three_key_chain(oracle_staleness_ms=1_000)
    c.block(system=post(c, [510_000, None, None]))  # type: ignore[arg-type]
    assert index(c) == 510_000
    for _ in range(4):
        out = c.block()
        assert not _staleness(out)
    out = c.block()  # 1,200 ms after the submission: stale
    assert _staleness(out) == [OracleStale(BTC, c.now_ms, 510_000)]
    assert oracle.is_stale(c.state, BTC)
    stale_since = c.now_ms

    # A new risk-increasing order fails; a reduce-only one passes; in a bulk, the reason says why.
    opening = c.tx("alice", PlaceOrder(BTC, True, 500_000, 1, GTC))
    reducing = c.tx("bob", PlaceOrder(BTC, False, 500_000, 1, IOC, reduce_only=True))
    bulk = c.tx("carol", BulkPlace((PlaceOrder(BTC, True, 500_000, 1, GTC),)))
    out = c.block([opening, reducing, bulk])
    status = {r.tx_hash: r.status for r in out.receipts}
    assert status[compute_transaction_hash(opening)] == ErrorCode.ORACLE_STALE
    assert status[compute_transaction_hash(reducing)] == 0
    bulk_receipt = next(r for r in out.receipts if r.tx_hash == compute_transaction_hash(bulk))
    (update,) = [e for e in bulk_receipt.events if isinstance(e, OrderUpdate)]
    assert (update.status, update.reason) == (OrderStatus.REJECTED, OrderReason.ORACLE_STALE)
    assert not _staleness(out)  # the event comes once, when it becomes stale

    # Recovery: the next fresh price is clamped against the frozen index.
    out = c.block(system=post(c, [None, 600_000, None]))  # type: ignore[arg-type]
    assert index(c) == 535_500  # 510,000 + ceil(510,000 * 5 %)
    assert _staleness(out) == [OracleFresh(BTC, stale_since, 535_500)]
    out = c.block([c.tx("alice", PlaceOrder(BTC, True, 500_000, 1, GTC))])
    assert out.receipts[0].status == 0


def test_genesis_price_is_not_stale_until_the_first_submission() -> None:
    c = make_chain(oracle_staleness_ms=400)
    for _ in range(5):
        assert not _staleness(c.block())
    assert not oracle.is_stale(c.state, BTC)


def test_a_submission_not_newer_than_the_same_signers_previous_is_refused() -> None:
    c = three_key_chain()
    first = post(c, [500_000, 500_000, None])
    c.block(system=first)  # type: ignore[arg-type]
    again = sign_price(KEYS[0], BTC, 501_000, c.now_ms - 199, c.params)  # same time as before
    with pytest.raises(InvalidBlock) as error:
        c.block(system=[again])
    assert error.value.code == ErrorCode.BAD_SYSTEM_INPUT
    # Key 2 has posted nothing yet, so the same observation time is new for it.
    c.block(system=[sign_price(KEYS[2], BTC, 501_000, c.now_ms - 399, c.params)])


def test_mark_follows_the_book_within_its_components() -> None:
    c = three_key_chain()
    prices = [500_000, 500_000, 500_000]
    c.block(system=post(c, prices))  # type: ignore[arg-type]
    # A book of 500,800 / 501,200 (mid 501,000, a basis of +1,000 ticks) and no trade yet.
    c.block(
        [
            c.tx("alice", PlaceOrder(BTC, True, 500_800, 1, GTC)),
            c.tx("bob", PlaceOrder(BTC, False, 501_200, 1, GTC)),
        ],
        system=post(c, prices),  # type: ignore[arg-type]
    )
    c.block(system=post(c, prices))  # type: ignore[arg-type]
    record = oracle.get_oracle(c.state, BTC)
    assert record is not None
    # EMA: 0 + 1,000,000,000 / 8 = 125,000,000 micro (125 ticks); book price: median of
    # (500,800, 501,200, index 500,000) = 500,800; mark = median(500,125, 500,800, 500,000).
    assert record.basis_ema_micro == 125_000_000
    assert record.mark_ticks == 500_125
    c.block(system=post(c, prices))  # type: ignore[arg-type]
    record = oracle.get_oracle(c.state, BTC)
    assert record is not None
    assert record.basis_ema_micro == 125_000_000 + (1_000_000_000 - 125_000_000) // 8
    assert record.mark_ticks == 500_234  # 500,000 + floor(234.375)


def _staleness(out: BlockOutput) -> list[object]:
    """The prologue's staleness events (it also holds the block's oracle submissions)."""
    return [e for e in out.block_events.prologue if isinstance(e, OracleStale | OracleFresh)]

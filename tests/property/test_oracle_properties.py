"""Hypothesis over the oracle's prologue step: random submissions (fresh or stale), books and
trades, block after block. After every block:

- the index moved at most ``ceil(previous * max_move_ppm / 1e6)`` ticks, and is >= 1;
- the mark lies within [min, max] of its three components (recomputed from the stored EMA);
- a market is stale exactly when no key submitted within the staleness bound.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.modules import oracle
from strata.modules.markets import Market, list_market
from strata.stf.genesis import new_empty_state

KEYS = tuple(bytes([i]) * 20 for i in range(1, 4))
MARKET = Market(
    market_id=1,
    symbol="X-PERP",
    quote_per_tick_lot=1,
    min_size_lots=1,
    max_size_lots=1_000,
    max_price_ticks=10_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=10,
)
price = st.integers(1, 10_000_000)
block = st.tuples(
    st.lists(st.tuples(st.sampled_from(KEYS), price, st.integers(0, 3_000)), max_size=3),
    st.one_of(st.none(), price),  # best bid
    st.one_of(st.none(), st.integers(0, 100_000)),  # spread above the bid
    st.one_of(st.none(), price),  # last trade
    st.integers(1, 2_000),  # ms since the previous block
)


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(block, min_size=1, max_size=30),
    max_move_ppm=st.integers(1, 1_000_000),
    alpha_ppm=st.integers(1, 1_000_000),
    staleness_ms=st.integers(1, 5_000),
)
def test_index_clamped_and_mark_between_its_components(
    blocks: list[tuple[list[tuple[bytes, int, int]], int | None, int | None, int | None, int]],
    max_move_ppm: int,
    alpha_ppm: int,
    staleness_ms: int,
) -> None:
    state = new_empty_state()
    list_market(state, MARKET)
    now = 1_000_000
    for submissions, bid, spread, last, step_ms in blocks:
        now += step_ms
        for signer, p, age in submissions:
            ts = now - age
            if oracle.is_newer_price(state, 1, signer, ts):
                oracle.record_submission(state, 1, signer, p, ts)
        if last is not None:
            oracle.record_trade_price(state, 1, last)
        ask = None if bid is None or spread is None else bid + spread
        before = oracle.get_oracle(state, 1)
        oracle.apply_block_prices(
            state, 1, KEYS, now, staleness_ms, max_move_ppm, alpha_ppm, bid, ask
        )
        after = oracle.get_oracle(state, 1)
        fresh = oracle.get_fresh_prices(state, 1, KEYS, now, staleness_ms)
        if after is None:
            assert before is None and not fresh
            continue
        assert after.index_ticks >= 1
        assert (after.stale_since_ms is not None) == (not fresh)
        if before is not None:
            bound = oracle.compute_max_index_move(before.index_ticks, max_move_ppm)
            assert abs(after.index_ticks - before.index_ticks) <= bound
        parts = oracle.compute_mark_components(
            after.index_ticks,
            after.basis_ema_micro,
            bid,
            ask,
            oracle.get_last_trade_price(state, 1),
        )
        assert min(parts) <= after.mark_ticks <= max(parts)
        assert after.mark_ticks >= 1

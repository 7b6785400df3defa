"""Funding is exactly zero-sum: random positions, random ticks, random lazy settlements.

On a real genesis state, Hypothesis draws a sequence of steps: funding ticks (random mark,
index and interval, so random premiums and rates, capped), trades between random accounts
(each side settles its funding first, as the settlement phase does) and plain settlements.
After every step:

- conservation: the sum of every payment (balance deltas) + the insurance fund's delta + the
  quote in transit == 0, exactly;
- per market, ``in_transit * 1e6 - dust == -(exact funding still unsettled)`` with the dust in
  ``[0, 1e6)``, and the fund never decreases;
- each settlement is rounded against its account: a payer pays at least the exact amount, a
  receiver gets at most it, by less than one quote unit.

At the end every position settles: nothing is left in transit, and the sum of all payments
plus the insurance fund's delta is exactly 0 (the fund took the rounding remainder, at most one
unit per settlement).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.modules import clearing, collateral, funding, oracle
from strata.modules.funding import (
    compute_funding_rate_ppm,
    compute_premium_ppm,
)
from strata.modules.margin import Position
from strata.modules.oracle import OracleRecord
from strata.state.store import State
from tests.helpers.chain import GENESIS_MS, make_chain

NAMES = ("a0", "a1", "a2", "a3", "a4")
MARKETS = (1, 2)
INTERVAL_MS = 1_000
PPM = 1_000_000

tick = st.tuples(
    st.just("tick"),
    st.sampled_from(MARKETS),
    st.integers(1, 2_000_000),  # index
    st.integers(-300_000, 300_000),  # mark - index, in ppm of the index
)
trade = st.tuples(
    st.just("trade"),
    st.sampled_from(MARKETS),
    st.integers(0, len(NAMES) - 1),
    st.integers(0, len(NAMES) - 1),
    st.integers(1, 10_000),
)
settle = st.tuples(
    st.just("settle"), st.sampled_from(MARKETS), st.integers(0, len(NAMES) - 1), st.just(0)
)
steps = st.lists(st.one_of(tick, trade, settle), min_size=1, max_size=60)


def _position(state: State, account: bytes, market_id: int) -> Position:
    for p in clearing.get_positions(state, account):
        if p.market_id == market_id:
            return p
    return Position(market_id, 0, 0, funding.get_funding_index(state, market_id))


def _unsettled_micro(state: State, accounts: list[bytes], market_id: int) -> int:
    index = funding.get_funding_index(state, market_id)
    total = 0
    for account in accounts:
        p = _position(state, account, market_id)
        total += p.size_lots * (index - p.funding_index_micro)
    return total


@settings(max_examples=300, deadline=None, derandomize=True)
@given(steps=steps, cap_ppm=st.sampled_from((1_000, 40_000, 1_000_000)))
def test_funding_is_exactly_zero_sum(
    steps: list[tuple[str, int, int, int] | tuple[str, int, int, int, int]], cap_ppm: int
) -> None:
    chain = make_chain(NAMES)
    state = chain.state
    accounts = [chain.addr(n) for n in NAMES]
    balances0 = sum(collateral.get_balance(state, a) for a in accounts)
    fund0 = collateral.get_insurance_fund(state)
    now = GENESIS_MS
    settlements = 0

    def settle_one(account: bytes, market_id: int) -> Position:
        nonlocal settlements
        before = _position(state, account, market_id)
        index = funding.get_funding_index(state, market_id)
        exact = before.size_lots * (index - before.funding_index_micro)
        settled, paid = funding.settle_position_funding(state, account, before)
        assert settled.funding_index_micro == index
        assert 0 <= paid * PPM - exact < PPM  # against the account, by less than a unit
        settlements += 1
        return settled

    for step in steps:
        kind, market_id = step[0], step[1]
        if kind == "tick":
            _, _, index, premium = step[:4]
            mark = max(1, index + index * premium // PPM)
            state.tables["oracle"].put(market_id, OracleRecord(index, mark))
            now += INTERVAL_MS
            fund_tick = funding.apply_block_funding(
                state, market_id, now, INTERVAL_MS, 10, 500, cap_ppm
            )
            if fund_tick is not None:
                assert abs(fund_tick.rate_ppm) <= cap_ppm
        elif kind == "trade":
            _, _, buyer_i, seller_i, size = step  # type: ignore[misc]
            if buyer_i == seller_i:
                continue
            for account, delta in ((accounts[buyer_i], size), (accounts[seller_i], -size)):
                p = settle_one(account, market_id)
                clearing.set_position(
                    state,
                    account,
                    Position(market_id, p.size_lots + delta, 0, p.funding_index_micro),
                )
        else:
            account = accounts[step[2]]
            clearing.set_position(state, account, settle_one(account, market_id))

        payments = balances0 - sum(collateral.get_balance(state, a) for a in accounts)
        fund_delta = collateral.get_insurance_fund(state) - fund0
        assert fund_delta >= 0
        assert -payments + fund_delta + funding.sum_in_transit(state) == 0
        for m in MARKETS:
            record = funding.get_funding(state, m)
            if record is None:
                continue
            assert 0 <= record.dust_micro < PPM
            assert record.in_transit_quote * PPM - record.dust_micro == -_unsettled_micro(
                state, accounts, m
            )
        net = {m: 0 for m in MARKETS}
        for a in accounts:
            for p in clearing.get_positions(state, a):
                net[p.market_id] += p.size_lots
        assert net == {m: 0 for m in MARKETS}

    for m in MARKETS:
        for account in accounts:
            clearing.set_position(state, account, settle_one(account, m))
    payments = balances0 - sum(collateral.get_balance(state, a) for a in accounts)
    fund_delta = collateral.get_insurance_fund(state) - fund0
    assert funding.sum_in_transit(state) == 0
    assert all(
        r.dust_micro == 0 and r.in_transit_quote == 0 for r in state.tables["funding"].data.values()
    )
    assert payments == fund_delta  # what payers paid = what receivers got + the fund's part
    assert 0 <= fund_delta <= settlements


def test_rate_formula_examples() -> None:
    assert compute_premium_ppm(500_250, 500_000) == 500
    assert compute_premium_ppm(599_999, 600_000) == -1  # -1.67 toward zero, not floor (-2)
    assert compute_funding_rate_ppm(0, 10, 500, 40_000) == 10
    assert compute_funding_rate_ppm(2_000, 10, 500, 40_000) == 1_500
    assert compute_funding_rate_ppm(-2_000, 10, 500, 40_000) == -1_500
    assert compute_funding_rate_ppm(100_000, 10, 500, 40_000) == 40_000
    assert compute_funding_rate_ppm(-100_000, 10, 500, 40_000) == -40_000


def test_a_stale_market_samples_no_premium() -> None:
    chain = make_chain(NAMES)
    state = chain.state
    state.tables["oracle"].put(1, OracleRecord(500_000, 510_000, 0, GENESIS_MS))
    assert oracle.is_stale(state, 1)
    assert (
        funding.apply_block_funding(state, 1, GENESIS_MS + 1, INTERVAL_MS, 10, 500, 40_000) is None
    )
    record = funding.get_funding(state, 1)
    assert record is not None and record.premium_samples == 0
    tick_ = funding.apply_block_funding(state, 1, GENESIS_MS + 1_000, INTERVAL_MS, 10, 500, 40_000)
    assert tick_ is not None and tick_.rate_ppm == 0 and tick_.index_micro == 0

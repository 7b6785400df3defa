"""Liquidation arithmetic (``modules/liquidation``) with worked numbers, and hand-computed checks
of the risk phase (``stf/risk.py``) on small chains.

The chains use the golden-vector scenarios' LIQ-PERP (1 quote per tick-lot, 10% / 5%) and
HI-PERP (2% / 1%) at 10_000 ticks (``tests/spec/generate_vectors.py``): with a one-sided book
the mark equals the oracle index, so every figure below can be checked on paper.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.modules import clearing, collateral, liquidation
from strata.modules.clearing.events import PositionChanged
from strata.modules.liquidation import (
    ADL_KEY_BOUND,
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    PositionLiquidated,
)
from strata.stf.risk import _RiskPhase
from strata.stf.transactions import Transfer, Withdraw
from strata.stf.transition import get_account_risk
from tests.spec.generate_vectors import (
    FUND,
    HI,
    E,
    alice_long_100,
    carol_deleveraged_beyond_her_equity,
    liq_scenario,
    move,
    risk_of,
)

PPM = 1_000_000


# ---------------------------------------------------------------------------- compute_close_ppm


def test_close_ppm_docstring_examples() -> None:
    assert liquidation.compute_close_ppm(90, 100, 200_000) == 200_000  # need 10%, twice: 20%
    assert liquidation.compute_close_ppm(60, 100, 200_000) == PPM  # need 40%, twice > half


def test_close_ppm_twice_the_deficit_rounded_up() -> None:
    # deficit 9_275 of 46_375 -> exactly 200_000 ppm needed, 400_000 closed
    assert liquidation.compute_close_ppm(37_100, 46_375, 200_000) == 400_000
    # deficit 3_100 of 46_700 -> 66_381.15 rounds up to 66_382; twice is under the minimum
    assert liquidation.compute_close_ppm(43_600, 46_700, 200_000) == 200_000
    assert liquidation.compute_close_ppm(43_600, 46_700, 100_000) == 132_764
    # 80 / 100_000 short: ceil(...) not floor: 1 unit of deficit in 3 -> 333_334 ppm
    assert liquidation.compute_close_ppm(2, 3, 1) == PPM  # 666_668 > half
    assert liquidation.compute_close_ppm(299, 300, 1) == 6_668  # 2 * ceil(3_333.33)


def test_close_ppm_exactly_half_is_not_all() -> None:
    """``close * 2 > 1e6`` closes all; exactly 500_000 stays a half."""
    assert liquidation.compute_close_ppm(75, 100, 200_000) == 500_000
    assert liquidation.compute_close_ppm(74, 100, 200_000) == PPM


def test_close_ppm_non_positive_equity_closes_all() -> None:
    assert liquidation.compute_close_ppm(0, 100, 200_000) == PPM
    assert liquidation.compute_close_ppm(-29_400, 9_500, 200_000) == PPM


def test_close_ppm_minimum_above_half_closes_all() -> None:
    assert liquidation.compute_close_ppm(99, 100, 600_000) == PPM
    assert liquidation.compute_close_ppm(99, 100, PPM) == PPM


@settings(max_examples=300, deadline=None)
@given(
    maintenance=st.integers(1, 10**12),
    fraction=st.integers(-2 * PPM, PPM - 1),
    min_close=st.integers(1, PPM),
)
def test_close_ppm_range_and_restores(maintenance: int, fraction: int, min_close: int) -> None:
    """Within ``[min_close or all, 1e6]``; when not all, at least twice what restores
    maintenance at the mark (closing a fraction f of every position scales the requirement by
    ``1 - f`` and keeps the equity at the mark)."""
    equity = maintenance * fraction // PPM
    if equity >= maintenance:
        return
    close = liquidation.compute_close_ppm(equity, maintenance, min_close)
    assert 0 < close <= PPM
    if close < PPM:
        assert close >= min_close and 2 * close <= PPM
        assert equity * PPM >= maintenance * (PPM - close // 2)


# ------------------------------------------------------------------------- compute_equity_share


def test_equity_share_worked() -> None:
    # one position, 20 of 100 lots: 43_600 * 20 / 100
    assert liquidation.compute_equity_share(43_600, 46_700, 46_700, 20, 100) == 8_720
    # two positions, maintenance 65_250 + 22_563: market 1's whole slice
    assert liquidation.compute_equity_share(62_100, 65_250, 87_813, 100, 100) == 46_143


def test_equity_share_negative_rounds_further_into_loss() -> None:
    assert liquidation.compute_equity_share(-10, 1, 3, 1, 1) == -4  # -3.33 -> -4
    assert liquidation.compute_equity_share(10, 1, 3, 1, 1) == 3  # 3.33 -> 3
    assert liquidation.compute_equity_share(-29_400, 9_500, 9_500, 100, 100) == -29_400


@settings(max_examples=300, deadline=None)
@given(
    equity=st.integers(-(10**12), 10**12),
    maints=st.lists(st.integers(1, 10**9), min_size=1, max_size=4),
)
def test_equity_shares_never_sum_above_the_equity(equity: int, maints: list[int]) -> None:
    """Full slices of every position: the shares (floors) sum to at most the equity, so
    closing everything at the bankruptcy values never leaves the account below zero."""
    total = sum(maints)
    shares = [liquidation.compute_equity_share(equity, m, total, 7, 7) for m in maints]
    assert equity - len(maints) < sum(shares) <= equity


# ---------------------------------------------------------------------- compute_bankruptcy_value


def test_bankruptcy_value_docstring_example() -> None:
    assert liquidation.compute_bankruptcy_value(True, 10, 100, 1, 50) == 950
    assert liquidation.compute_bankruptcy_value(False, 10, 100, 1, 50) == 1_050


def test_bankruptcy_value_worked_from_vectors() -> None:
    # LIQ: 20 lots at 9_340, share 8_720 -> sells for 178_080
    assert liquidation.compute_bankruptcy_value(True, 20, 9_340, 1, 8_720) == 178_080
    # HI bankrupt: 100 lots at 9_500, share -29_400 -> the buyer pays above the mark
    assert liquidation.compute_bankruptcy_value(True, 100, 9_500, 1, -29_400) == 979_400
    # a short with equity 39_900 at 10_700 buys back for at most 1_109_900
    assert liquidation.compute_bankruptcy_value(False, 100, 10_700, 1, 39_900) == 1_109_900
    # quote per tick-lot scales the mark value only
    assert liquidation.compute_bankruptcy_value(True, 3, 500_000, 10, 1_000) == 14_999_000


# --------------------------------------------------------------------------- compute_limit_price


def test_limit_price_rounds_against_the_liquidated_account() -> None:
    # a long sells at ceil: 178_080 / 20 = 8_904 exactly; 178_081 -> 8_905
    assert liquidation.compute_limit_price(True, 20, 178_080, 1, 10**6) == 8_904
    assert liquidation.compute_limit_price(True, 20, 178_081, 1, 10**6) == 8_905
    # a short buys at floor: 1_109_900 / 100 = 11_099; 1_109_999 -> 11_099
    assert liquidation.compute_limit_price(False, 100, 1_109_900, 1, 10**6) == 11_099
    assert liquidation.compute_limit_price(False, 100, 1_109_999, 1, 10**6) == 11_099
    # with 10 quote per tick-lot: 3 lots worth 14_999_000 -> 499_966.67 -> 499_967 (sell)
    assert liquidation.compute_limit_price(True, 3, 14_999_000, 10, 10**10) == 499_967
    assert liquidation.compute_limit_price(False, 3, 14_999_000, 10, 10**10) == 499_966


def test_limit_price_out_of_range_skips_the_book() -> None:
    assert liquidation.compute_limit_price(True, 1, 1_000_001, 1, 1_000_000) == 0
    assert liquidation.compute_limit_price(True, 1, 1_000_000, 1, 1_000_000) == 1_000_000
    assert liquidation.compute_limit_price(False, 10, 9, 1, 1_000) == 0  # below 1 tick
    assert liquidation.compute_limit_price(False, 10, -5, 1, 1_000) == 0
    # a sell's value at or below zero still sells at 1 tick at least
    assert liquidation.compute_limit_price(True, 10, -5, 1, 1_000) == 1
    # a buy worth more than the largest price buys at the largest price
    assert liquidation.compute_limit_price(False, 1, 5_000, 1, 1_000) == 1_000


@settings(max_examples=500, deadline=None)
@given(
    is_long=st.booleans(),
    lots=st.integers(1, 10**6),
    value=st.integers(-(10**9), 10**13),
    qptl=st.integers(1, 100),
    max_price=st.integers(1, 10**9),
)
def test_limit_price_never_beyond_the_value(
    is_long: bool, lots: int, value: int, qptl: int, max_price: int
) -> None:
    """A fill at the limit or better respects the bankruptcy value: a sell gets at least it,
    a buy pays at most it."""
    price = liquidation.compute_limit_price(is_long, lots, value, qptl, max_price)
    if price == 0:
        return
    assert 1 <= price <= max_price
    if is_long:
        assert price * lots * qptl >= value
    else:
        assert price * lots * qptl <= value


# ------------------------------------------------------------------------------ compute_adl_key


def test_adl_key_worked_from_vector() -> None:
    """``liq_adl_ranks_by_profit_times_leverage_losing_position_last`` at 9_500."""
    # carol: short 40 sold at 9_800: upnl 12_000 on 392_000 = 30_612 ppm; leverage
    # 380_000 / 111_960 = 3_394_069 ppm; 30_612 * 3.394069 = 103_899
    assert liquidation.compute_adl_key(12_000, -392_000, 380_000, 111_960) == 103_899
    assert liquidation.compute_adl_key(10_000, -200_000, 190_000, 109_980) == 86_379
    # a loss ranks negative, nearer zero with more leverage: -10_639 / 3.959901 = -2_686.6
    assert liquidation.compute_adl_key(-4_000, -376_000, 380_000, 95_962) == -2_687


def test_adl_key_leverage_without_positive_equity() -> None:
    # equity <= 0 counts as notional * 1e6: 20_000 -> 2e10 ppm; 2_000_000 -> clamped to 1e12
    assert liquidation.compute_adl_key(1_000, 10_000, 20_000, 0) == 100_000 * 20_000
    assert (
        liquidation.compute_adl_key(1_000, 10_000, 2_000_000, 0) == 100_000 * ADL_KEY_BOUND // PPM
    )
    assert liquidation.compute_adl_key(1_000, 10_000, 500, -7) == 100_000 * 500
    # no notional at all: leverage clamps to 1
    assert liquidation.compute_adl_key(1_000, 10_000, 0, 100) == 100_000 // PPM


def test_adl_key_clamps_and_zero_cost() -> None:
    huge = liquidation.compute_adl_key(10**30, 1, 10**30, 1)
    assert huge == ADL_KEY_BOUND * ADL_KEY_BOUND // PPM
    assert liquidation.compute_adl_key(-(10**30), 1, 10**30, 1) == -ADL_KEY_BOUND * PPM // (
        ADL_KEY_BOUND
    )
    # an entry cost of 0 counts as 1
    assert liquidation.compute_adl_key(5, 0, 100, 100) == 5 * PPM


@settings(max_examples=300, deadline=None)
@given(
    upnl=st.integers(-(10**12), 10**12),
    cost=st.integers(-(10**12), 10**12),
    notional=st.integers(0, 10**13),
    equity=st.integers(1, 10**12),
    more=st.integers(1, 10**12),
)
def test_adl_key_orders_profit_then_leverage(
    upnl: int, cost: int, notional: int, equity: int, more: int
) -> None:
    """More profit never ranks lower; a profitable position ranks above every losing one; with
    profit, less equity (more leverage) never ranks lower."""
    key = liquidation.compute_adl_key(upnl, cost, notional, equity)
    assert liquidation.compute_adl_key(upnl + more, cost, notional, equity) >= key
    if upnl > 0:
        assert key >= 0
        assert liquidation.compute_adl_key(upnl, cost, notional, max(1, equity - more)) >= key
    elif upnl < 0:
        assert key <= 0
    assert abs(key) <= ADL_KEY_BOUND * ADL_KEY_BOUND // PPM


# ------------------------------------------------------------------------- the phase, by hand


def test_book_slice_moves_quote_as_computed() -> None:
    """alice (110_000) long 100 at 10_000 (taker fee 400): balance -890_400. At 9_340 she sells
    20 to carol's bid at 9_300 (186_000) and pays the fee ceil(930): -890_400 + 186_000 - 930 =
    -705_330; carol pays 186_000 + maker fee ceil(18.6) = 19; the fund gets 930."""
    s = liq_scenario()
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_300, 60)], status=[0])
    move(s, 9_500)
    carol = collateral.get_balance(s.state, s.addr("carol"))
    out = move(s, 9_340)
    assert len(risk_of(out, AccountLiquidated)) == 1
    assert collateral.get_balance(s.state, s.addr("alice")) == -705_330
    assert collateral.get_balance(s.state, s.addr("carol")) == carol - 186_000 - 19
    assert collateral.get_insurance_fund(s.state) == 930
    position = clearing.get_position(s.state, s.addr("alice"), 1)
    assert (position.size_lots, position.entry_cost_quote) == (80, 800_000)
    risk = get_account_risk(s.state, s.addr("alice"))
    # equity after: -705_330 + 80 * 9_340 = 41_870 >= maintenance 37_360: restored
    assert (risk.equity_quote, risk.maintenance_quote) == (41_870, 37_360)


def test_backstop_moves_the_position_at_the_bankruptcy_value() -> None:
    """HI: alice bankrupt at 9_500 (equity -29_400); the fund (1_000_000) takes 100 lots at
    979_400: its cash is 20_600, its equity 970_600 (it bears the 29_400); alice's balance
    -979_400 + 979_400 = 0."""
    s = liq_scenario(21_000, markets=(HI,), fund_quote=1_000_000)
    alice_long_100(s)
    out = move(s, 9_500)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.backstop_lots, pos.fund_loss_quote) == (100, 29_400)
    assert collateral.get_balance(s.state, s.addr("alice")) == 0
    assert collateral.get_insurance_fund(s.state) == 20_600
    assert clearing.get_position_size(s.state, FUND, 1) == 100
    assert get_account_risk(s.state, FUND).equity_quote == 970_600
    assert clearing.get_holders(s.state) and FUND in clearing.get_holders(s.state)


def test_adl_parts_sum_to_the_value() -> None:
    """Deleveraging against several counterparties splits the value per lot with cumulative
    rounding: 979_400 over 30, 30, 40 lots is 293_820, 293_820, 391_760."""
    s = liq_scenario(
        21_000,
        markets=(HI,),
        names=("alice", "bob", "carol", "dave", "erin"),
        balances={"carol": 50_000, "erin": 100_000},
    )
    s.block(
        [
            s.place("bob", 1, False, 10_000, 40),
            s.place("carol", 1, False, 10_000, 30),
            s.place("erin", 1, False, 10_000, 30),
            s.place("alice", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0, 0],
    )
    out = move(s, 9_500)
    parts = [(d.size_lots, d.value_quote) for d in risk_of(out, Deleveraged)]
    assert parts == [(30, 293_820), (30, 293_820), (40, 391_760)]
    assert sum(v for _, v in parts) == 979_400


# ------------------------------------------------------------- bad debt, driven on a built state


def test_settle_and_repay_bad_debt_directly() -> None:
    """``_RiskPhase.settle_bad_debt`` / ``repay_bad_debt`` on a hand-built state: carol has no
    position and -50_000; the fund has 20_000 of free collateral: it covers 20_000 and 30_000
    is recorded (carol set to 0). With 100_000 more in the fund, ``repay_bad_debt`` pays the
    30_000. An account with a position, or a non-negative balance, is left alone."""
    s = liq_scenario(fund_quote=20_000)
    state = s.state
    carol = s.addr("carol")
    collateral.add_balance(state, carol, -collateral.get_balance(state, carol) - 50_000)
    collateral.add_balance(state, s.addr("bob"), 50_000 + 1_000_000_000_000)  # conservation
    phase = _RiskPhase(state, s.params, [1])
    phase.settle_bad_debt(s.addr("dave"))  # positive balance: nothing
    phase.settle_bad_debt(carol)
    assert phase.events == [BadDebtChanged(carol, 20_000, 30_000, 30_000)]
    assert collateral.get_balance(state, carol) == 0
    assert collateral.get_insurance_fund(state) == 0
    assert liquidation.get_bad_debt(state) == 30_000
    phase.repay_bad_debt()  # the fund has nothing free: no event
    assert len(phase.events) == 1
    collateral.add_insurance_fund(state, 100_000)
    phase.repay_bad_debt()
    assert phase.events[-1] == BadDebtChanged(FUND, 30_000, -30_000, 0)
    assert liquidation.get_bad_debt(state) == 0
    assert collateral.get_insurance_fund(state) == 70_000


def test_withdrawals_gated_while_bad_debt_is_recorded() -> None:
    """A hand-built record (recorded bad debt does not outlive a block through the public rules
    now: the fee that creates it funds the fund, whose stop then repays it in the same risk
    phase, see the vector ``liq_bad_debt_recorded_then_repaid_by_the_fund``): a withdrawal
    fails with WITHDRAWALS_GATED, a transfer still works; once the fund is capitalized it repays
    at the end of that block and withdrawals resume."""
    s = liq_scenario()
    liquidation.add_bad_debt(s.state, 1)  # the fund has nothing free to repay it
    s.block(
        [s.tx("bob", Withdraw(1, b"\x11" * 20)), s.tx("bob", Transfer(s.addr("dave"), 1))],
        status=[E.WITHDRAWALS_GATED, 0],
    )
    out = s.block(
        [s.tx("dave", Transfer(FUND, 10)), s.tx("bob", Withdraw(1, b"\x11" * 20))],
        status=[0, E.WITHDRAWALS_GATED],
    )
    assert risk_of(out, BadDebtChanged) == [BadDebtChanged(FUND, 1, -1, 0)]
    s.block([s.tx("bob", Withdraw(1, b"\x11" * 20))], status=[0])


# ---------------------------------------------------------------------- findings, fixed


def test_fee_never_creates_bad_debt_for_a_solvent_account() -> None:
    """alice's equity is 29_600 > 0 when she is liquidated (full close at 9_200); a 10% fee;
    carol takes 50 lots at the bankruptcy price. Selling at the bankruptcy values leaves exactly
    0, so the fee should leave her at >= 0 and no bad debt should arise. Actual: the fee takes
    14_800 (the unsold half's equity share), the transfer of that half (backstop or ADL) at its
    bankruptcy value takes another 14_800: she ends at -14_800, a BadDebtChanged the fund covers
    out of that very fee where its free collateral allows, the rest recorded (with the rules at
    the time of writing: 164 recorded, repaid later in the same risk phase)."""
    s = liq_scenario(liquidation_fee_ppm=100_000)
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 8_904, 50)], status=[0])
    move(s, 9_500)
    out = move(s, 9_200)
    (acct,) = risk_of(out, AccountLiquidated)
    assert acct.equity_quote > 0
    assert not risk_of(out, BadDebtChanged)
    assert liquidation.get_bad_debt(s.state) == 0


def test_adl_counterparty_left_without_position_has_no_negative_balance() -> None:
    """An ADL counterparty closed out of its last position beyond its equity (the setup of
    ``carol_deleveraged_beyond_her_equity``: -475) has bad debt (rule 8): the fund, unfunded,
    covers nothing, the 475 is recorded and her balance is set to zero."""
    s = liq_scenario(
        21_000,
        markets=(HI,),
        balances={"carol": 1_000},
        liquidation_max_notional_per_block_quote=45_125,
    )
    out = carol_deleveraged_beyond_her_equity(s)
    carol = s.addr("carol")
    changed = [e for e in out.block_events.risk if isinstance(e, PositionChanged)]
    assert any(e.account == carol and e.size_lots == 0 for e in changed)
    (debt,) = [d for d in risk_of(out, BadDebtChanged) if d.account == carol]
    assert (debt.covered_by_fund_quote, debt.recorded_quote) == (0, 475)
    assert collateral.get_balance(s.state, carol) == 0

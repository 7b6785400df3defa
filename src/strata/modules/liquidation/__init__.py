"""Liquidation: the rules of the risk phase (liquidation orders, backstop, auto-deleveraging, bad
debt). The phase itself runs in ``stf/risk.py``; this module holds its state, events and the
arithmetic a reader needs to check any liquidation by hand.

=============  ======  ====================  ==================================================
table          prefix  key                   value
=============  ======  ====================  ==================================================
``bad_debt``   0x90    ``b""``               quote of losses nothing could cover (recorded)
=============  ======  ====================  ==================================================

The rules, per block, after settlement (all at the block's marks; quote units, integers)
---------------------------------------------------------------------------------------
1. **Who.** Every account whose cross-margin equity is below its cross maintenance requirement
   (``modules/margin``), and every isolated position whose own equity is below its own
   requirement (``modules/collateral``), most under water first (ascending
   ``equity * 1e6 // maintenance``, then address, then the market of an isolated position after
   the cross account). Positions in a market whose index is stale are frozen: they are neither
   counted out nor liquidated. An isolated position is liquidated alone, with its own equity,
   and cancels only the account's orders in its market.
2. **Orders.** The account's open orders are canceled in every market (reason ``LIQUIDATED``),
   releasing their reservations.
3. **How much.** With deficit ``d = maintenance - equity``, the account closes the fraction
   :func:`compute_close_ppm` of every position: twice what would restore maintenance at the mark
   (``2 * ceil(d * 1e6 / maintenance)``), at least ``liquidation_min_close_ppm`` (20%), and all of
   it when that is more than half or the equity is not positive. Large positions are thus cut in
   slices over several blocks, small or deeply under-water ones at once. Per market and block, at
   most ``liquidation_max_notional_per_block_quote`` of notional (at the mark) is liquidated; what
   the limit holds back waits for the next block.
4. **Bankruptcy value.** Each slice carries its share of the account's equity, by maintenance
   weight (:func:`compute_equity_share`). The slice's bankruptcy value is the quote at which
   closing it leaves that share at zero (:func:`compute_bankruptcy_value`); as a price it is the
   bankruptcy price, rounded so the account never closes beyond it.
5. **Book first.** A reduce-only IOC order for the slice, limited at the bankruptcy price, takes
   liquidity from the book (no taker fee, no maker rebate). A liquidation fee of
   ``liquidation_fee_ppm`` of what it sold goes to the insurance fund, never more than the
   equity left beyond what the account's slices still to close will take at their bankruptcy
   values (a fee never turns a solvent liquidation into bad debt).
6. **Backstop.** What the book did not absorb, the insurance fund (``collateral.
   INSURANCE_FUND_ACCOUNT``) takes over at the bankruptcy value, if its loss (the negative part
   of the slice's equity share) fits in ``insurance_max_loss_per_account_quote`` for this
   account in this block, the fund's equity stays at or above its own *initial* requirement,
   its notional within ``insurance_max_leverage_ppm`` of its equity (1x), and it would not add to
   a same-side position it is losing on (as many lots as fit; the rest goes on). The fund then
   unwinds what it holds with reduce-only IOC orders at the mark, every block. It has stops of
   its own, at the mark, by auto-deleveraging (:class:`FundDeleveraged`): a position losing more
   than ``insurance_stop_loss_ppm`` of its equity (10%) is closed whole, and when its notional
   passes ``insurance_deleverage_leverage_ppm`` of its equity (2x) it is brought back to 1x.
7. **Auto-deleveraging.** Otherwise the rest is closed against opposite positions in the market,
   highest :func:`compute_adl_key` first (profit times leverage), at the bankruptcy value. The
   ranking of a market side is made at the block's first deleveraging there; later ones go on
   down it from where the previous one stopped (``stf/risk.py``). Only accounts holding an
   opposite position can be deleveraged: an account without a position never shares a loss.
   The fund's own positions are liquidated the same way, without a backstop.
8. **Bad debt.** An account left with no position and a negative balance (a liquidated account,
   or an ADL counterparty closed out beyond its equity) has bad debt. The fund
   covers it from its free collateral; what remains is recorded in ``bad_debt`` (the account's
   balance is set to zero), shown in every block's events, and withdrawals are refused
   (``WITHDRAWALS_GATED``) until the fund has repaid it, which it does from its free collateral
   at the end of every risk phase.

Conservation: every step moves quote between two balances, except recorded bad debt, which is
exactly the quote that zeroing negative balances added; ``collateral`` states the invariant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from strata.core.units import PPM, div_ceil
from strata.modules import clearing, collateral, funding, margin, markets, oracle
from strata.modules.liquidation.records import AccountLiquidated as AccountLiquidated
from strata.modules.liquidation.records import BadDebtChanged as BadDebtChanged
from strata.modules.liquidation.records import Deleveraged as Deleveraged
from strata.modules.liquidation.records import FundDeleveraged as FundDeleveraged
from strata.modules.liquidation.records import PositionLiquidated as PositionLiquidated
from strata.modules.margin import AccountRisk, MarketRiskParams, Position
from strata.state.store import BYTES_KEY, State, Table

LiquidationEvent = (
    AccountLiquidated | PositionLiquidated | Deleveraged | FundDeleveraged | BadDebtChanged
)

ADL_KEY_BOUND = 10**12
"""Profit and leverage (ppm) are clamped to ``±1e12`` in the ADL key, so keys fit 64 bits."""


def register_tables(state: State) -> None:
    state.add_table(Table("bad_debt", 0x90, state.journal, BYTES_KEY, int))
    state.tables["bad_debt"].put(b"", 0)


def get_bad_debt(state: State) -> int:
    """Recorded bad debt in quote units (0 when every loss was covered)."""
    debt: int = state.tables["bad_debt"].data[b""]
    return debt


def add_bad_debt(state: State, delta_quote: int) -> int:
    """Move the recorded bad debt; returns the new total."""
    total = get_bad_debt(state) + delta_quote
    state.tables["bad_debt"].put(b"", total)
    return total


def get_market_risk_params(state: State, market_id: int) -> MarketRiskParams:
    """The mark, factors and funding index margin uses for ``market_id`` now."""
    market = markets.get_market(state, market_id)
    assert market is not None
    mark = oracle.get_mark_price(state, market_id)
    return MarketRiskParams(
        0 if mark is None else mark,
        market.quote_per_tick_lot,
        market.initial_margin_ppm,
        market.maintenance_margin_ppm,
        funding.get_funding_index(state, market_id),
        market.margin_tiers,
    )


def split_positions(
    state: State, account: bytes, positions: Sequence[Position]
) -> tuple[tuple[Position, ...], tuple[Position, ...]]:
    """``(cross, isolated)``: the account's positions by margin mode (``modules/collateral``)."""
    cross: list[Position] = []
    isolated: list[Position] = []
    for p in positions:
        (isolated if collateral.is_isolated(state, account, p.market_id) else cross).append(p)
    return tuple(cross), tuple(isolated)


def compute_cross_risk(
    state: State, account: bytes, get_params: Callable[[int], MarketRiskParams]
) -> AccountRisk:
    """The account's cross-margin figures: balance, reservations and cross positions."""
    cross, _ = split_positions(state, account, clearing.get_positions(state, account))
    return margin.compute_account_risk(
        collateral.get_balance(state, account),
        margin.get_reserved(state, account),
        cross,
        get_params,
    )


def compute_isolated_risk(
    state: State,
    account: bytes,
    position: Position,
    get_params: Callable[[int], MarketRiskParams],
) -> AccountRisk:
    """An isolated position's own figures: its cash and itself."""
    cash = collateral.get_isolated_cash(state, account, position.market_id)
    return margin.compute_account_risk(cash, 0, (position,), get_params)


def market_risk_params(state: State) -> Callable[[int], MarketRiskParams]:
    """:func:`get_market_risk_params` over ``state``, as the ``get_params`` margin's functions
    take (read fresh on every call: for a few positions, outside a block's execution)."""
    return partial(get_market_risk_params, state)


def compute_close_ppm(equity_quote: int, maintenance_quote: int, min_close_ppm: int) -> int:
    """The fraction (ppm) of each position a liquidation closes in one block.

    ``2 * ceil((maintenance - equity) * 1e6 / maintenance)``, at least ``min_close_ppm``; the whole
    position (1e6) when that exceeds one half or when the equity is not positive.
    Example: equity 90, maintenance 100: need 100_000, closes 200_000 (20%); equity 60: 800_000,
    more than half, so 1_000_000.
    """
    if equity_quote <= 0:
        return PPM
    need = div_ceil((maintenance_quote - equity_quote) * PPM, maintenance_quote)
    close = max(2 * need, min_close_ppm)
    return PPM if close * 2 > PPM else close


def compute_equity_share(
    equity_quote: int,
    position_maintenance_quote: int,
    account_maintenance_quote: int,
    slice_lots: int,
    size_lots: int,
) -> int:
    """The slice's share of the account's equity:
    ``floor(equity * position_maint * slice / (account_maint * |size|))`` (floor: a negative
    share, a bankrupt slice, rounds further into loss, so the bankruptcy value never favors the
    account)."""
    return (equity_quote * position_maintenance_quote * slice_lots) // (
        account_maintenance_quote * size_lots
    )


def compute_bankruptcy_value(
    is_long: bool, slice_lots: int, mark_ticks: int, quote_per_tick_lot: int, share_quote: int
) -> int:
    """The quote at which closing the slice brings its equity share to zero: a long sells for
    ``value_at_mark - share``, a short buys back for ``value_at_mark + share``, where
    ``value_at_mark = slice * mark * qptl``. Example: long 10 lots, mark 100, qptl 1, share 50:
    the slice can sell for 950 in all and no less (bankruptcy price 95)."""
    at_mark = slice_lots * mark_ticks * quote_per_tick_lot
    return at_mark - share_quote if is_long else at_mark + share_quote


def compute_limit_price(
    is_long: bool, slice_lots: int, value_quote: int, quote_per_tick_lot: int, max_price: int
) -> int:
    """The bankruptcy price in ticks, as the limit of the slice's book order, rounded so that no
    fill is beyond the bankruptcy value: a long's sell at ``ceil(value / (slice * qptl))``
    (at least 1), a short's buy at ``floor(...)``. Returns 0 when no price in ``[1, max_price]``
    respects the value (a sell above the largest price, a buy below 1): then the book is skipped.
    """
    unit = slice_lots * quote_per_tick_lot
    if is_long:
        price = max(div_ceil(value_quote, unit), 1)
        return price if price <= max_price else 0
    price = min(value_quote // unit, max_price)
    return price if price >= 1 else 0


def compute_adl_key(
    unrealized_pnl_quote: int, entry_cost_quote: int, notional_quote: int, equity_quote: int
) -> int:
    """The auto-deleveraging rank of a position (higher is deleveraged first).

    ``profit = upnl * 1e6 // max(|entry_cost|, 1)`` (ppm of what the position cost) and
    ``leverage = account_notional * 1e6 // equity`` (ppm; an account with no positive equity
    counts as ``account_notional * 1e6``), both clamped to ``±1e12``. A profitable position ranks
    by ``profit * leverage // 1e6`` (positive), a losing one by ``profit * 1e6 // leverage``
    (negative, nearer zero with more leverage): the most profitable and most leveraged positions
    close first, losing ones last. Ties go to the lower address.
    """
    cost = abs(entry_cost_quote) or 1
    profit = max(-ADL_KEY_BOUND, min(ADL_KEY_BOUND, unrealized_pnl_quote * PPM // cost))
    if equity_quote > 0:
        leverage = notional_quote * PPM // equity_quote
    else:
        leverage = notional_quote * PPM
    leverage = max(1, min(ADL_KEY_BOUND, leverage))
    if profit > 0:
        return profit * leverage // PPM
    return profit * PPM // leverage

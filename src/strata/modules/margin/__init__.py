"""Margin: cross-margin equity and requirements, and the initial margin reserved by open orders.

============  ======  ===================  =====================================================
table         prefix  key                  value
============  ======  ===================  =====================================================
``reserved``  0x50    address (20 bytes)   quote reserved by the account's open orders (sum)
============  ======  ===================  =====================================================

Definitions (all quote units, integers)
---------------------------------------
For a position of ``size_lots`` (signed: long > 0) in a market with mark ``mark_ticks``::

    value           = size_lots * mark_ticks * quote_per_tick_lot                (signed)
    funding_owed    = ceil(size_lots * (funding_index - position_funding_index) / 1e6)
    unrealized_pnl  = value - entry_cost_quote - funding_owed
    initial_req     = compute_requirement(|value|, initial_margin_ppm, tiers' initial rates)
    maintenance_req = compute_requirement(|value|, maintenance_margin_ppm, tiers' rates)

Without margin tiers the requirement is ``ceil(|value| * rate / 1e6)``; with tiers (see
``markets.MarginTier``) each slice of the notional pays its tier's rate, rounded up once.

For an account with balance ``B`` (see ``collateral``) and reservations ``R``::

    equity          = B + sum(value) - sum(funding_owed)
    free_collateral = equity - sum(initial_req) - R
    withdrawable    = free_collateral - sum(max(unrealized_pnl, 0))

``funding_owed`` is the funding the position has accrued since it last settled (see
``modules/funding``: the index is in micro-quote per lot, so the division by 1e6 gives quote
units), rounded up against the account: a payment is counted whole, a receipt rounded down. It
is part of the position's unrealized PnL until the position next changes and settles it.

Unrealized profit backs trading but is never withdrawable (the Mango Markets lesson). An order
reserves ``ceil(max(price, mark) * size * quote_per_tick_lot * (initial_margin_ppm + fee_ppm)
/ 1e6)`` plus its worst immediate loss against the mark (a buy above the mark, a sell below it)
at admission and is accepted only if free collateral stays non-negative; the reservation
shrinks in proportion (rounded up) as the order fills and is released when it ends. Reduce-only
orders reserve nothing: they can only lower the requirement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from strata.core.units import PPM, compute_ppm_ceil, div_ceil
from strata.modules.margin.records import AccountRisk as AccountRisk
from strata.modules.margin.records import MarketRiskParams as MarketRiskParams
from strata.modules.margin.records import Position as Position
from strata.modules.margin.records import compute_requirement as compute_requirement
from strata.state.store import BYTES_KEY, State, Table

# Compiled, a ``Final`` name is a C variable, not a lookup in the module's globals at each use.
_ACCOUNT_RISK: Final = AccountRisk


def register_tables(state: State) -> None:
    state.add_table(Table("reserved", 0x50, state.journal, BYTES_KEY, int))


def get_reserved(state: State, account: bytes) -> int:
    reserved: int | None = state.tables["reserved"].get(account)
    return 0 if reserved is None else reserved


def set_reserved(state: State, account: bytes, total_quote: int) -> None:
    """Set the account's total reservation; a total of zero deletes the key."""
    table = state.tables["reserved"]
    if total_quote:
        table.put(account, total_quote)
    else:
        table.delete(account)


def add_reserved(state: State, account: bytes, delta_quote: int) -> None:
    """Change the account's total reservation; a total of zero deletes the key."""
    set_reserved(state, account, get_reserved(state, account) + delta_quote)


def compute_account_risk(
    balance_quote: int,
    reserved_quote: int,
    positions: Sequence[Position],
    get_params: Callable[[int], MarketRiskParams],
) -> AccountRisk:
    """The account's :class:`AccountRisk` from its balance, reservations and positions.

    ``get_params(market_id)`` gives the mark and factors of each market the account holds.
    Requirements round up (against the account).
    """
    equity = balance_quote
    initial = maintenance = profit = 0
    for position in positions:
        params = get_params(position.market_id)
        value = position.size_lots * params.mark_ticks * params.quote_per_tick_lot
        equity += value
        notional = value if value >= 0 else -value
        if params.tiers:
            initial += params.initial_requirement(notional)
            maintenance += params.maintenance_requirement(notional)
        else:
            initial += compute_ppm_ceil(notional, params.initial_margin_ppm)
            maintenance += compute_ppm_ceil(notional, params.maintenance_margin_ppm)
        owed = compute_funding_owed(
            position.size_lots, params.funding_index_micro, position.funding_index_micro
        )
        equity -= owed
        pnl = value - position.entry_cost_quote - owed
        if pnl > 0:
            profit += pnl
    return _ACCOUNT_RISK(equity, initial, maintenance, profit, reserved_quote)


def compute_funding_owed(size_lots: int, index_now_micro: int, index_then_micro: int) -> int:
    """Funding a position owes since it last settled, in quote units (negative: it receives).

    ``ceil(size_lots * (index_now - index_then) / 1e6)``: the index is in micro-quote per lot, and
    rounding up is against the account both ways (a payment rounds up, a receipt rounds down).
    Example: long 3 lots, index moved by 1_500_001: ``ceil(4_500_003 / 1e6) = 5`` paid; the
    short of the same 3 lots gets ``ceil(-4.500003) = -4``, i.e. receives 4.
    """
    return div_ceil(size_lots * (index_now_micro - index_then_micro), PPM)


def compute_order_reservation(
    is_buy: bool,
    price_ticks: int,
    size_lots: int,
    mark_ticks: int,
    quote_per_tick_lot: int,
    initial_margin_ppm: int,
    fee_ppm: int,
) -> int:
    """Initial margin, worst-case fee and worst-case immediate loss held for an order.

    ``ceil(max(price, mark) * size * qptl * (initial_margin_ppm + fee_ppm) / 1e6)`` plus the loss
    the order realizes against the mark if it fills at its limit: ``(price - mark) * size * qptl``
    for a buy above the mark, ``(mark - price) * size * qptl`` for a sell below it. A buy never
    pays more than its limit and a sell never receives less, so once admitted an order cannot take
    its account's equity below its initial requirement at the marks of its block.
    """
    price = price_ticks if price_ticks > mark_ticks else mark_ticks
    notional = price * size_lots * quote_per_tick_lot
    adverse_ticks = price_ticks - mark_ticks if is_buy else mark_ticks - price_ticks
    loss = adverse_ticks * size_lots * quote_per_tick_lot if adverse_ticks > 0 else 0
    return compute_ppm_ceil(notional, initial_margin_ppm + fee_ppm) + loss


def compute_remaining_reservation(
    reserved_quote: int, size_before_lots: int, size_after_lots: int
) -> int:
    """What an order keeps reserved after its size falls from ``before`` to ``after``.

    ``ceil(reserved * after / before)``: the releases of successive partial fills telescope, so an
    order that ends has released exactly what it reserved.
    """
    if size_after_lots <= 0:
        return 0
    return -(-(reserved_quote * size_after_lots) // size_before_lots)

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

import msgspec

from strata.core.units import PPM, compute_ppm_ceil, div_ceil
from strata.modules.markets import MarginTier
from strata.state.store import BYTES_KEY, State, Table


class Position(msgspec.Struct, frozen=True, array_like=True):
    """A position in one market: signed size in lots and the signed quote paid for it.

    ``entry_cost_quote`` is positive for a long (quote paid) and negative for a short (quote
    received); ``entry_cost_quote / size_lots / quote_per_tick_lot`` is the average entry price.
    """

    market_id: int
    size_lots: int
    entry_cost_quote: int
    funding_index_micro: int = 0
    """The market's cumulative funding index (micro-quote per lot, see ``modules/funding``) at
    which the position last settled its funding."""


class AccountRisk(msgspec.Struct, frozen=True):
    """An account's margin figures, in quote units (see the module docstring)."""

    equity_quote: int
    initial_quote: int
    maintenance_quote: int
    unrealized_profit_quote: int
    reserved_quote: int

    @property
    def free_collateral_quote(self) -> int:
        return self.equity_quote - self.initial_quote - self.reserved_quote

    @property
    def withdrawable_quote(self) -> int:
        return self.free_collateral_quote - self.unrealized_profit_quote

    def is_below_maintenance(self) -> bool:
        return self.equity_quote < self.maintenance_quote


class MarketRiskParams(msgspec.Struct, frozen=True):
    """What margin needs of a market: its mark and its listing's factors."""

    mark_ticks: int
    quote_per_tick_lot: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int
    funding_index_micro: int = 0
    """The market's cumulative funding index now (micro-quote per lot)."""
    tiers: tuple[MarginTier, ...] = ()
    """The market's margin tiers (``markets.MarginTier``)."""

    def initial_requirement(self, notional_quote: int) -> int:
        if not self.tiers:
            return compute_ppm_ceil(notional_quote, self.initial_margin_ppm)
        return compute_requirement(notional_quote, self.initial_margin_ppm, self.tiers, True)

    def maintenance_requirement(self, notional_quote: int) -> int:
        if not self.tiers:
            return compute_ppm_ceil(notional_quote, self.maintenance_margin_ppm)
        return compute_requirement(notional_quote, self.maintenance_margin_ppm, self.tiers, False)


def register_tables(state: State) -> None:
    state.add_table(Table("reserved", 0x50, state.journal, BYTES_KEY, int))


def get_reserved(state: State, account: bytes) -> int:
    reserved: int | None = state.tables["reserved"].data.get(account)
    return 0 if reserved is None else reserved


def add_reserved(state: State, account: bytes, delta_quote: int) -> None:
    """Change the account's total reservation; a total of zero deletes the key."""
    table = state.tables["reserved"]
    total = table.data.get(account, 0) + delta_quote
    if total:
        table.put(account, total)
    else:
        table.delete(account)


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
    return AccountRisk(equity, initial, maintenance, profit, reserved_quote)


def compute_requirement(
    notional_quote: int, base_ppm: int, tiers: Sequence[MarginTier], initial: bool
) -> int:
    """A margin requirement with tiers: ``ceil(sum(slice * rate) / 1e6)``, where the notional is
    cut at each tier's ``from_notional_quote`` and each slice pays its tier's rate (the market's
    ``base_ppm`` below the first tier; ``initial`` picks the tiers' initial or maintenance rate).

    Example: base 50_000 (5%), one tier from 1_000_000 at 100_000 (10%): a notional of 3_000_000
    needs ``ceil((1_000_000 * 50_000 + 2_000_000 * 100_000) / 1e6) = 250_000``.
    """
    total = 0
    start = 0
    rate = base_ppm
    for tier in tiers:
        if notional_quote <= tier.from_notional_quote:
            break
        total += (tier.from_notional_quote - start) * rate
        start = tier.from_notional_quote
        rate = tier.initial_margin_ppm if initial else tier.maintenance_margin_ppm
    total += (notional_quote - start) * rate
    return div_ceil(total, PPM)


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
    return -((-reserved_quote * size_after_lots) // size_before_lots)

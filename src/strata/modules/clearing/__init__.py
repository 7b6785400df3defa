"""Clearing: positions, fees and realized PnL; it applies what matching reports.

=============  ======  ====================  =================================================
table          prefix  key                   value
=============  ======  ====================  =================================================
``positions``  0x60    address (20 bytes)    tuple of ``margin.Position``, by market id
``fee_pool``   0x61    ``b""``               quote collected as fees (maker rebates paid out)
``volume``     0x62    address (20 bytes)    quote notional traded since genesis (fee tiers)
``open_int``   0x63    market id (4 bytes)   open interest: the sum of long positions, in lots
``holders``    0x64    (a ``state.registry`` over 0x64-0x66) every account holding a position
=============  ======  ====================  =================================================

The holders registry lets the risk phase visit every account with a position key by key (so a
fraud proof can show it visited all of them). An account joins when it opens its first position
and leaves when it closes its last, in ``set_position``, in the settlement order (ascending
account, then the risk phase's order).

Applying a fill of ``q`` lots at ``p`` ticks to one side (``notional = p * q * qptl``):

- balance: the buyer pays ``notional``, the seller receives it (zero-sum);
- position: ``size += q`` for a buy, ``-= q`` for a sell;
- entry cost: an increase adds the signed notional; a reduction keeps
  ``ceil(cost * |size_after| / |size_before|)`` of it (rounded against the account) and the
  difference is realized: ``realized = sign(size_before) * p * closed * qptl - removed_cost``; a
  flip closes the whole position and opens the rest at ``p``;
- funding: the settlement phase settles the position's funding before its first fill of the
  block (``modules/funding``); fills keep its ``funding_index_micro``;
- fees: taker ``ceil(notional * taker_ppm / 1e6)``; maker ``ceil(notional * maker_ppm / 1e6)``
  or, for a negative ``maker_ppm``, a rebate ``floor(notional * |maker_ppm| / 1e6)``; both move
  between the balance and the fee pool. Tiers come from each account's volume at block start.

Realized PnL is a report: money has already moved through the balances, so every quote unit is
conserved and positions net to zero in every market.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from strata.core.units import I64_MAX, compute_ppm_ceil, compute_ppm_floor
from strata.modules.clearing.records import FeeTier as FeeTier
from strata.modules.collateral import is_isolated, release_isolated_cash
from strata.modules.margin import Position
from strata.modules.markets import MARKET_KEY
from strata.state.registry import (
    register_registry,
    registry_add,
    registry_members,
    registry_remove,
)
from strata.state.store import BYTES_KEY, State, Table

# Compiled, a ``Final`` name is a C variable, not a lookup in the module's globals at each use.
_POSITION: Final = Position

HOLDERS = "holders"


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("positions", 0x60, j, BYTES_KEY, tuple[Position, ...]))
    state.add_table(Table("fee_pool", 0x61, j, BYTES_KEY, int))
    state.add_table(Table("volume", 0x62, j, BYTES_KEY, int))
    state.add_table(Table("open_interest", 0x63, j, MARKET_KEY, int))
    register_registry(state, HOLDERS, 0x64, BYTES_KEY, bytes)
    state.tables["fee_pool"].put(b"", 0)


def get_positions(state: State, account: bytes) -> tuple[Position, ...]:
    """The account's open positions, ascending by market id."""
    positions: tuple[Position, ...] | None = state.tables["positions"].get(account)
    return () if positions is None else positions


def get_position_size(state: State, account: bytes, market_id: int) -> int:
    """The account's signed position in lots in one market (0 if none)."""
    positions: tuple[Position, ...] | None = state.tables["positions"].get(account)
    if positions:
        for position in positions:
            if position.market_id == market_id:
                return position.size_lots
    return 0


def get_position(state: State, account: bytes, market_id: int) -> Position:
    """The account's position in one market (size 0 if none)."""
    positions: tuple[Position, ...] | None = state.tables["positions"].get(account)
    if positions:
        for position in positions:
            if position.market_id == market_id:
                return position
    return _POSITION(market_id, 0, 0)


def set_position(state: State, account: bytes, position: Position) -> None:
    """Store one position (a zero size removes it), keeping the tuple sorted by market, and keep
    the market's open interest (the sum of long sizes; additions commute, so accounts can
    settle side by side)."""
    kept: list[Position] = []
    before = 0
    for p in get_positions(state, account):
        if p.market_id == position.market_id:
            before = p.size_lots
        else:
            kept.append(p)
    after = position.size_lots
    long_delta = (after if after > 0 else 0) - (before if before > 0 else 0)
    if long_delta:
        oi = state.tables["open_interest"]
        total = (oi.get(position.market_id) or 0) + long_delta
        if total:
            oi.put(position.market_id, total)
        else:
            oi.delete(position.market_id)
    if position.size_lots != 0:
        kept.append(position)
        kept.sort(key=_market_of)
    if before and not after and is_isolated(state, account, position.market_id):
        release_isolated_cash(state, account, position.market_id)
    table = state.tables["positions"]
    held = account in table.data
    if kept:
        table.put(account, tuple(kept))
        if not held:
            registry_add(state, HOLDERS, account)
    elif held:
        table.delete(account)
        registry_remove(state, HOLDERS, account)


def get_holders(state: State) -> list[bytes]:
    """Every account holding at least one position, in the registry's order."""
    return registry_members(state, HOLDERS)


def get_open_interest(state: State, market_id: int) -> int:
    """The market's open interest: the sum of its long positions, in lots."""
    total: int | None = state.tables["open_interest"].get(market_id)
    return 0 if total is None else total


def _market_of(position: Position) -> int:
    return position.market_id


def get_fee_pool(state: State) -> int:
    pool: int = state.tables["fee_pool"].data[b""]
    return pool


def add_fee_pool(state: State, delta_quote: int) -> None:
    table = state.tables["fee_pool"]
    table.put(b"", table.data[b""] + delta_quote)


def get_volume(state: State, account: bytes) -> int:
    volume: int | None = state.tables["volume"].get(account)
    return 0 if volume is None else volume


def add_volume(state: State, account: bytes, notional_quote: int) -> None:
    """Add traded notional; the total saturates at the largest int64 (it only selects a fee tier,
    and every committed integer must fit the canonical encoding)."""
    table = state.tables["volume"]
    table.put(account, min((table.get(account) or 0) + notional_quote, I64_MAX))


def select_fee_tier(tiers: Sequence[FeeTier], volume_quote: int) -> FeeTier:
    """The highest tier whose volume threshold ``volume_quote`` reaches (tiers ascend)."""
    chosen = tiers[0]
    for tier in tiers:
        if volume_quote >= tier.min_volume_quote:
            chosen = tier
        else:
            break
    return chosen


def compute_taker_fee(notional_quote: int, taker_ppm: int) -> int:
    """Taker fee, rounded up."""
    return compute_ppm_ceil(notional_quote, taker_ppm)


def compute_maker_fee(notional_quote: int, maker_ppm: int) -> int:
    """Maker fee, rounded up; a negative rate is a rebate rounded down (a negative fee)."""
    if maker_ppm >= 0:
        return compute_ppm_ceil(notional_quote, maker_ppm)
    return -compute_ppm_floor(notional_quote, -maker_ppm)


def compute_fill_on_position(
    position: Position, is_buy: bool, price_ticks: int, size_lots: int, quote_per_tick_lot: int
) -> tuple[Position, int]:
    """The position after a fill, and the PnL the fill realized (see the module docstring)."""
    return compute_trade_on_position(
        position, is_buy, size_lots, price_ticks * size_lots * quote_per_tick_lot
    )


def compute_trade_on_position(
    position: Position, is_buy: bool, size_lots: int, notional_quote: int
) -> tuple[Position, int]:
    """:func:`compute_fill_on_position` for a trade of ``size_lots`` worth ``notional_quote`` in
    all (a fill's ``price * size * qptl``, or a liquidation transfer's bankruptcy value, which
    need not be a whole number of ticks): :func:`compute_trade` on the position's figures. The
    funding index stays (the position settled its funding before the trade: see
    ``modules/funding``)."""
    size, cost, realized = compute_trade(
        position.size_lots, position.entry_cost_quote, is_buy, size_lots, notional_quote
    )
    return compute_traded_position(position, size, cost), realized


def compute_traded_position(position: Position, size_lots: int, entry_cost_quote: int) -> Position:
    """``position`` after trades that left it ``size_lots`` for ``entry_cost_quote`` (figures from
    :func:`compute_trade`). Its funding index stays: a position settles its funding before it
    trades (see ``modules/funding``)."""
    return _POSITION(position.market_id, size_lots, entry_cost_quote, position.funding_index_micro)


def compute_trade(
    size_lots: int, entry_cost_quote: int, is_buy: bool, trade_lots: int, notional_quote: int
) -> tuple[int, int, int]:
    """``(size_lots, entry_cost_quote, realized PnL)`` of a position of ``size_lots`` that cost
    ``entry_cost_quote`` after a trade of ``trade_lots`` worth ``notional_quote`` (the rule of
    the module docstring, on integers: a settlement applies a market's fills one after another
    without a position record for each). A flip splits the notional: the closing part is
    ``floor(notional * closed / size)``, the opening part the rest."""
    size = size_lots
    cost = entry_cost_quote
    delta = trade_lots if is_buy else -trade_lots
    if size == 0 or (size > 0) == is_buy:
        signed = notional_quote if is_buy else -notional_quote
        return size + delta, cost + signed, 0
    before = size if size > 0 else -size
    closed = trade_lots if trade_lots < before else before
    after = before - closed
    kept_cost = -(-(cost * after) // before)
    removed = cost - kept_cost
    close_value = notional_quote * closed // trade_lots
    realized = (close_value if size > 0 else -close_value) - removed
    if trade_lots <= before:
        return size + delta, kept_cost, realized
    open_value = notional_quote - close_value
    opened_cost = open_value if is_buy else -open_value
    return size + delta, opened_cost, realized

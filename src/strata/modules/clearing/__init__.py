"""Clearing: positions, fees and realized PnL; it applies what matching reports.

=============  ======  ====================  =================================================
table          prefix  key                   value
=============  ======  ====================  =================================================
``positions``  0x60    address (20 bytes)    tuple of ``margin.Position``, by market id
``fee_pool``   0x61    ``b""``               quote collected as fees (maker rebates paid out)
``volume``     0x62    address (20 bytes)    quote notional traded since genesis (fee tiers)
=============  ======  ====================  =================================================

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

import msgspec

from strata.core.units import I64_MAX, compute_ppm_ceil, compute_ppm_floor
from strata.modules.collateral import add_balance
from strata.modules.margin import Position
from strata.state.store import BYTES_KEY, State, Table


class FeeTier(msgspec.Struct, frozen=True, array_like=True):
    """Fees for accounts whose traded volume is at least ``min_volume_quote``.

    ``maker_ppm`` may be negative (a rebate) but never more than the lowest taker fee, so the
    fee pool cannot go negative.
    """

    min_volume_quote: int
    maker_ppm: int
    taker_ppm: int


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("positions", 0x60, j, BYTES_KEY, tuple[Position, ...]))
    state.add_table(Table("fee_pool", 0x61, j, BYTES_KEY, int))
    state.add_table(Table("volume", 0x62, j, BYTES_KEY, int))
    state.tables["fee_pool"].put(b"", 0)


def get_positions(state: State, account: bytes) -> tuple[Position, ...]:
    """The account's open positions, ascending by market id."""
    positions: tuple[Position, ...] | None = state.tables["positions"].data.get(account)
    return () if positions is None else positions


def get_position_size(state: State, account: bytes, market_id: int) -> int:
    """The account's signed position in lots in one market (0 if none)."""
    positions: tuple[Position, ...] | None = state.tables["positions"].data.get(account)
    if positions:
        for position in positions:
            if position.market_id == market_id:
                return position.size_lots
    return 0


def set_position(state: State, account: bytes, position: Position) -> None:
    """Store one position (a zero size removes it), keeping the tuple sorted by market."""
    kept = [p for p in get_positions(state, account) if p.market_id != position.market_id]
    if position.size_lots != 0:
        kept.append(position)
        kept.sort(key=_market_of)
    table = state.tables["positions"]
    if kept:
        table.put(account, tuple(kept))
    else:
        table.delete(account)


def _market_of(position: Position) -> int:
    return position.market_id


def get_fee_pool(state: State) -> int:
    pool: int = state.tables["fee_pool"].data[b""]
    return pool


def add_fee_pool(state: State, delta_quote: int) -> None:
    table = state.tables["fee_pool"]
    table.put(b"", table.data[b""] + delta_quote)


def get_volume(state: State, account: bytes) -> int:
    volume: int | None = state.tables["volume"].data.get(account)
    return 0 if volume is None else volume


def add_volume(state: State, account: bytes, notional_quote: int) -> None:
    """Add traded notional; the total saturates at the largest int64 (it only selects a fee tier,
    and every committed integer must fit the canonical encoding)."""
    table = state.tables["volume"]
    table.put(account, min(table.data.get(account, 0) + notional_quote, I64_MAX))


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
    size = position.size_lots
    cost = position.entry_cost_quote
    funding = position.funding_index_micro  # settled before the fill (see ``modules/funding``)
    delta = size_lots if is_buy else -size_lots
    notional = price_ticks * size_lots * quote_per_tick_lot
    if size == 0 or (size > 0) == is_buy:
        signed = notional if is_buy else -notional
        return Position(position.market_id, size + delta, cost + signed, funding), 0
    before = size if size > 0 else -size
    closed = size_lots if size_lots < before else before
    after = before - closed
    kept_cost = -((-cost * after) // before)
    removed = cost - kept_cost
    close_value = price_ticks * closed * quote_per_tick_lot
    realized = (close_value if size > 0 else -close_value) - removed
    if size_lots <= before:
        return Position(position.market_id, size + delta, kept_cost, funding), realized
    opened = size_lots - before
    open_value = price_ticks * opened * quote_per_tick_lot
    opened_cost = open_value if is_buy else -open_value
    return Position(position.market_id, size + delta, opened_cost, funding), realized


def apply_fill_to_account(
    state: State,
    account: bytes,
    position: Position,
    is_buy: bool,
    price_ticks: int,
    size_lots: int,
    fee_quote: int,
    quote_per_tick_lot: int,
) -> tuple[Position, int]:
    """Move the balance and fee pool for one side of a fill; return the new position and the
    realized PnL. The caller stores the position once per market (positions are per block)."""
    notional = price_ticks * size_lots * quote_per_tick_lot
    add_balance(state, account, (-notional if is_buy else notional) - fee_quote)
    add_fee_pool(state, fee_quote)
    return compute_fill_on_position(position, is_buy, price_ticks, size_lots, quote_per_tick_lot)

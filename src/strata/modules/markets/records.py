"""``markets``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

from enum import IntEnum

import msgspec


class MarketStatus(IntEnum):
    ACTIVE = 0
    """Orders are accepted and matched."""
    CLOSED = 1
    """No new orders; cancels still work."""


class MarginTier(msgspec.Struct, frozen=True, array_like=True):
    """Margin rates for the part of a position's notional above ``from_notional_quote``.

    A market's own ``initial_margin_ppm`` and ``maintenance_margin_ppm`` apply from 0 up to its
    first tier; each tier's rates apply to the notional between its start and the next tier's.
    The requirement is thus continuous and rises with size (see ``margin.compute_requirement``):
    large positions need more margin, so their maximum leverage is lower.
    """

    from_notional_quote: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int


class Market(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """A perpetual market's listing.

    Units: ``quote_per_tick_lot`` is the quote value of one lot at a price of one tick (see
    ``core/units.py``); margins and fees are parts per million of notional.
    """

    market_id: int
    symbol: str
    quote_per_tick_lot: int
    min_size_lots: int
    max_size_lots: int
    max_price_ticks: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int
    max_open_orders_per_account: int
    status: int = MarketStatus.ACTIVE
    margin_tiers: tuple[MarginTier, ...] = ()
    """Higher rates for larger positions, by notional, ascending (empty: one rate for all)."""
    max_open_interest_lots: int = 0
    """Open-interest cap (total long lots); 0 means none. While open interest plus the risk the
    block already admitted would pass it, orders that are not reduce-only are refused."""

"""``margin``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from strata.core.units import PPM, compute_ppm_ceil, div_ceil
from strata.modules.markets import MarginTier


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class Position(msgspec.Struct, frozen=True, gc=False, array_like=True):
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

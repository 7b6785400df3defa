"""``funding``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class FundingRecord(msgspec.Struct, frozen=True, array_like=True):
    """A market's funding state.

    Fields
    ------
    index_micro:        cumulative funding index, micro-quote per lot (signed)
    next_funding_ms:    the first block timestamp at which the next tick happens
    premium_sum_ppm:    sum of the premiums sampled in the current interval
    premium_samples:    how many were sampled
    rate_ppm:           the rate of the latest tick (0 before the first)
    in_transit_quote:   quote settled payers paid that settled receivers have not taken (signed)
    dust_micro:         rounding excess not yet a whole quote unit, in ``[0, 1e6)``
    """

    index_micro: int
    next_funding_ms: int
    premium_sum_ppm: int = 0
    premium_samples: int = 0
    rate_ppm: int = 0
    in_transit_quote: int = 0
    dust_micro: int = 0


class FundingTick(msgspec.Struct, frozen=True, array_like=True, tag=22):
    """A market's funding tick (a block event, in ``BlockEvents.prologue``): the average premium of
    ``samples`` blocks, the rate it gave, the mark it applied to, and the index after it.
    ``index_step_micro = rate_ppm * mark_ticks * quote_per_tick_lot`` (micro-quote per lot): one
    lot long pays ``index_step_micro / 1e6`` quote units (receives it if negative)."""

    market_id: int
    timestamp_ms: int
    premium_avg_ppm: int
    samples: int
    rate_ppm: int
    mark_ticks: int
    index_step_micro: int
    index_micro: int

"""``oracle``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class OracleRecord(msgspec.Struct, frozen=True, array_like=True):
    """A market's prices after the latest block.

    Fields
    ------
    index_ticks:      the index price (clamped median of fresh submissions)
    mark_ticks:       the mark price (margin, liquidation and triggers use it)
    basis_ema_micro:  EMA of ``book mid - index`` in micro-ticks (may be negative)
    stale_since_ms:   block timestamp at which the market became stale, or ``None`` when fresh
    """

    index_ticks: int
    mark_ticks: int
    basis_ema_micro: int = 0
    stale_since_ms: int | None = None


class Submission(msgspec.Struct, frozen=True, array_like=True):
    """An oracle key's latest accepted price for a market and the time it was observed."""

    price_ticks: int
    timestamp_ms: int


class OracleStale(msgspec.Struct, frozen=True, array_like=True, tag=20):
    """A market had no fresh submission in this block: its index is frozen at ``index_ticks``
    and new risk-increasing orders are refused (``OrderReason.ORACLE_STALE``) until it recovers."""

    market_id: int
    since_ms: int
    index_ticks: int


class OracleFresh(msgspec.Struct, frozen=True, array_like=True, tag=21):
    """A stale market has a fresh submission again; ``index_ticks`` is its new (clamped) index."""

    market_id: int
    stale_since_ms: int
    index_ticks: int

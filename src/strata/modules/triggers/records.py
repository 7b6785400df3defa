"""``triggers``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class Trigger(msgspec.Struct, frozen=True, array_like=True):
    """A trigger waiting for its mark (see ``stf.transactions.PlaceTrigger``)."""

    market_id: int
    trigger_id: int
    is_buy: bool
    trigger_price_ticks: int
    trigger_above: bool
    price_ticks: int
    size_lots: int
    tif: int


class TriggerUpdate(msgspec.Struct, frozen=True, array_like=True, tag=27):
    """A trigger was placed, fired (at ``mark_ticks``) or canceled (``mark_ticks`` 0)."""

    account: bytes
    market_id: int
    trigger_id: int
    status: int
    mark_ticks: int


class ScheduledCancelFired(msgspec.Struct, frozen=True, array_like=True, tag=28):
    """An account's dead-man switch, set for ``at_ms``, canceled its orders and triggers."""

    account: bytes
    at_ms: int
    orders_canceled: int
    triggers_canceled: int

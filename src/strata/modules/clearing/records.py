"""``clearing``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class FeeTier(msgspec.Struct, frozen=True, array_like=True):
    """Fees for accounts whose traded volume is at least ``min_volume_quote``.

    ``maker_ppm`` may be negative (a rebate) but never more than the lowest taker fee, so the
    fee pool cannot go negative.
    """

    min_volume_quote: int
    maker_ppm: int
    taker_ppm: int

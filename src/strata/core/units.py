"""Integer units and the only rounding helpers ring 0 may use.

Units
-----
- ``*_ticks``: a price in integer ticks of its market (``price = price_ticks * tick_size``).
- ``*_lots``: a size in integer lots of its market (``size = size_lots * lot_size``).
- ``*_quote``: money in quote atomic units; the quote asset is USDC, so ``1 quote = 1e-6 USDC``.
- ``*_ppm``: a rate in parts per million (``rate = rate_ppm / 1_000_000``).
- ``*_ms``: a time in milliseconds since the Unix epoch (block timestamps, nonces).

Notional
--------
Each market fixes ``quote_per_tick_lot``: the value, in quote units, of one lot at a price of one
tick. With ``tick_size`` in USDC and ``lot_size`` in base units::

    notional_usdc  = price * size = (price_ticks * tick_size) * (size_lots * lot_size)
    notional_quote = notional_usdc * 1e6
                   = price_ticks * size_lots * (tick_size * lot_size * 1e6)
                   = price_ticks * size_lots * quote_per_tick_lot

Markets are listed only with ``tick_size * lot_size * 1e6`` a positive integer, so a notional is
always an exact integer and needs no rounding.

Rounding
--------
Python's ``//`` floors toward minus infinity (Go and Rust truncate toward zero) and ``/`` makes a
float, which ring 0 never uses. Every division in ring 0 goes through :func:`div_floor`,
:func:`div_ceil` or :func:`mul_div` and names its direction. The rule is *against the account*:
requirements round up, payouts and credits round down.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

PPM: Final = 1_000_000
"""One whole, in parts per million."""

U64_MAX: Final = (1 << 64) - 1
I64_MIN: Final = -(1 << 63)
I64_MAX: Final = (1 << 63) - 1


class Rounding(Enum):
    """Direction of an integer division."""

    FLOOR = "floor"
    CEIL = "ceil"


def div_floor(numerator: int, denominator: int) -> int:
    """Return ``floor(numerator / denominator)`` for a positive ``denominator``."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    return numerator // denominator


def div_ceil(numerator: int, denominator: int) -> int:
    """Return ``ceil(numerator / denominator)`` for a positive ``denominator``."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    return -((-numerator) // denominator)


def mul_div(a: int, b: int, denominator: int, rounding: Rounding) -> int:
    """Return ``a * b / denominator`` rounded as ``rounding`` says, exactly (no overflow in Python).

    Raises
    ------
    ValueError
        If ``denominator`` is not positive (a programming error, never user input).
    """
    if rounding is Rounding.FLOOR:
        return div_floor(a * b, denominator)
    return div_ceil(a * b, denominator)


def compute_notional_quote(price_ticks: int, size_lots: int, quote_per_tick_lot: int) -> int:
    """Exact notional in quote units of ``size_lots`` at ``price_ticks`` (see the docstring)."""
    return price_ticks * size_lots * quote_per_tick_lot


def compute_ppm_ceil(amount_quote: int, rate_ppm: int) -> int:
    """``amount_quote * rate_ppm / 1e6`` rounded up: for requirements and fees owed."""
    # Negated after the product: compiled, a negative operand takes mypyc's slow multiply.
    return -(-(amount_quote * rate_ppm) // PPM)


def compute_ppm_floor(amount_quote: int, rate_ppm: int) -> int:
    """``amount_quote * rate_ppm / 1e6`` rounded down: for payouts, rebates and credits."""
    return (amount_quote * rate_ppm) // PPM

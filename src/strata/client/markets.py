"""Markets as the API shows them: decimal prices, sizes and USDC, converted exactly to units.

Ring 0 knows only integers: ticks, lots and quote units (1e-6 USDC). A market's ``tick_size``
(USDC per unit of the base asset, per tick) and ``lot_size`` (units of the base asset per lot) are
what a person reads; they are tied to the consensus ``quote_per_tick_lot`` by
``tick_size * lot_size * 1_000_000 == quote_per_tick_lot`` (checked by :meth:`MarketInfo.check`).

Every conversion from a decimal string is exact: a value that is not a whole number of ticks, lots
or quote units raises ``RpcError(OFF_GRID)``, never rounds.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import msgspec

from strata.client.errors import RpcCode, RpcError
from strata.modules.markets import MarginTier, Market

QUOTE_DECIMALS = 6
QUOTE_UNIT = Decimal(1).scaleb(-QUOTE_DECIMALS)
_QUOTE_UNIT_TEXT = "0.000001"
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")
_MAX_DECIMAL_CHARS = 64


def parse_decimal(text: object, what: str) -> Decimal:
    """A plain decimal string (``"12.5"``, no exponent, sign only ``-``) as an exact Decimal.

    Raises ``RpcError(INVALID_PARAMS)`` for anything else (floats, exponents, NaN, ``"1e3"``).
    """
    if not isinstance(text, str) or len(text) > _MAX_DECIMAL_CHARS or not _DECIMAL.match(text):
        raise RpcError(
            RpcCode.INVALID_PARAMS, f'{what} must be a decimal string like "12.5", got {text!r}'
        )
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what}: not a decimal {text!r}") from None


def to_units(text: object, unit: Decimal, what: str) -> int:
    """``text / unit`` as an integer, exactly; ``OFF_GRID`` if it is not a whole number."""
    value = parse_decimal(text, what)
    with localcontext() as context:
        # The default 28 digits would round "1.00000000000000000000000000001" / 0.1 to 10.
        context.prec = 4 * _MAX_DECIMAL_CHARS
        units = value / unit
    if units != units.to_integral_value():
        raise RpcError(
            RpcCode.OFF_GRID, f"{what} {text} is not a multiple of {format_decimal(unit)}"
        )
    return int(units)


def format_decimal(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros (``"0"`` for zero)."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@functools.cache
def _scale(unit: str) -> tuple[int, int]:
    """A unit decimal string as ``(mantissa, decimals)``: ``"0.25"`` -> ``(25, 2)``."""
    sign, digits, exponent = Decimal(unit).normalize().as_tuple()
    assert isinstance(exponent, int) and not sign
    mantissa = int("".join(map(str, digits)))
    if exponent >= 0:
        return mantissa * 10**exponent, 0
    return mantissa, -exponent


@functools.lru_cache(maxsize=16_384)
def format_units(count: int, unit: str) -> str:
    """``count * unit`` as a plain decimal string, exactly (integer arithmetic only: this runs
    for every price and size the feeds publish). ``unit`` is a decimal string such as ``"0.1"``.

    Cached (16,384 strings, about 2 MB): the feeds format the same prices near the mark and the
    same sizes over and over (a cache hit costs about a fifth of the arithmetic)."""
    mantissa, decimals = _scale(unit)
    value = count * mantissa
    if decimals == 0:
        return str(value)
    digits = str(-value if value < 0 else value).rjust(decimals + 1, "0")
    whole, fraction = digits[:-decimals], digits[-decimals:].rstrip("0")
    text = f"{whole}.{fraction}" if fraction else whole
    return "-" + text if value < 0 else text


def quote_to_usdc(amount_quote: int) -> str:
    """Quote units (1e-6 USDC) as a USDC decimal string."""
    return format_units(amount_quote, _QUOTE_UNIT_TEXT)


def usdc_to_quote(text: object, what: str = "amount") -> int:
    """A USDC decimal string as quote units; ``OFF_GRID`` beyond 6 decimals."""
    return to_units(text, QUOTE_UNIT, what)


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A market's listing with its display units."""

    market_id: int
    symbol: str
    tick_size: str
    lot_size: str
    quote_per_tick_lot: int
    min_size_lots: int
    max_size_lots: int
    max_price_ticks: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int
    max_open_orders_per_account: int
    status: int = 0
    margin_tiers: tuple[MarginTier, ...] = ()
    """Higher margin rates above notional thresholds (``markets.MarginTier``)."""
    max_open_interest_lots: int = 0
    """Open-interest cap in lots (0: none)."""

    @classmethod
    def of(cls, market: Market, tick_size: str, lot_size: str) -> MarketInfo:
        info = cls(**msgspec.structs.asdict(market), tick_size=tick_size, lot_size=lot_size)
        info.check()
        return info

    def check(self) -> None:
        """``ValueError`` unless ``tick_size * lot_size * 1e6 == quote_per_tick_lot``."""
        tick = parse_decimal(self.tick_size, "tick_size")
        lot = parse_decimal(self.lot_size, "lot_size")
        if tick <= 0 or lot <= 0 or tick * lot / QUOTE_UNIT != self.quote_per_tick_lot:
            raise ValueError(
                f"{self.symbol}: tick_size {self.tick_size} * lot_size {self.lot_size} * 1e6 "
                f"must equal quote_per_tick_lot {self.quote_per_tick_lot}"
            )

    @property
    def tick(self) -> Decimal:
        return Decimal(self.tick_size)

    @property
    def lot(self) -> Decimal:
        return Decimal(self.lot_size)

    def price_to_ticks(self, price: object) -> int:
        """A price decimal string as ticks (exact; ``OFF_GRID`` off the tick, ``INVALID_PARAMS``
        if not positive)."""
        ticks = to_units(price, self.tick, f"{self.symbol} price")
        if ticks <= 0:
            raise RpcError(RpcCode.INVALID_PARAMS, f"{self.symbol} price must be positive")
        return ticks

    def size_to_lots(self, size: object) -> int:
        lots = to_units(size, self.lot, f"{self.symbol} size")
        if lots <= 0:
            raise RpcError(RpcCode.INVALID_PARAMS, f"{self.symbol} size must be positive")
        return lots

    def ticks_to_price(self, ticks: int) -> str:
        return format_units(ticks, self.tick_size)

    def lots_to_size(self, lots: int) -> str:
        return format_units(lots, self.lot_size)

    def to_json(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def find_market(markets: dict[int, MarketInfo], name: object) -> MarketInfo:
    """A market by symbol or id; ``RpcError(UNKNOWN_MARKET)`` if there is none."""
    if isinstance(name, bool):
        name = None
    if isinstance(name, int):
        found = markets.get(name)
        if found is not None:
            return found
    elif isinstance(name, str):
        for info in markets.values():
            if info.symbol == name:
                return info
    raise RpcError(RpcCode.UNKNOWN_MARKET, f"no market {name!r}")


_MAX_U63 = (1 << 63) - 1
_STATUS_NAMES = {"active": 0, "closed": 1}


def market_info_from_json(obj: dict[str, Any]) -> MarketInfo:
    """A ``strata_getMarkets`` entry as a :class:`MarketInfo`, checked by :meth:`MarketInfo.check`.

    Accepts the API form (``min_size``/``max_size`` as decimal strings in the base asset,
    ``status`` as ``"active"``/``"closed"`` or its integer code) as well as
    :meth:`MarketInfo.to_json` (``min_size_lots``/``max_size_lots``). Fields the API does not
    publish default to no limit: ``max_price_ticks`` to ``2**63 - 1`` and
    ``max_open_orders_per_account`` to 0 (unknown). Extra fields (``mark_price``) are ignored.

    Raises ``ValueError`` for a missing or malformed field or a listing whose units disagree
    (``tick_size * lot_size * 1e6 != quote_per_tick_lot``).
    """
    try:
        lot = parse_decimal(obj["lot_size"], "lot_size")
        tick = parse_decimal(obj["tick_size"], "tick_size")
        if lot <= 0 or tick <= 0:
            raise ValueError("tick_size and lot_size must be positive")

        def lots(key: str, default: int) -> int:
            if f"{key}_lots" in obj:
                return int(obj[f"{key}_lots"])
            if obj.get(key) is None:
                return default
            return to_units(obj[key], lot, key)

        status = obj.get("status", 0)
        if isinstance(status, str):
            status = _STATUS_NAMES[status.lower()]
        max_price_ticks = obj.get("max_price_ticks")
        if max_price_ticks is None:
            max_price = obj.get("max_price")
            max_price_ticks = _MAX_U63 if max_price is None else to_units(max_price, tick, "max")
        info = MarketInfo(
            market_id=int(obj["market_id"]),
            symbol=str(obj["symbol"]),
            tick_size=str(obj["tick_size"]),
            lot_size=str(obj["lot_size"]),
            quote_per_tick_lot=int(obj["quote_per_tick_lot"]),
            min_size_lots=lots("min_size", 1),
            max_size_lots=lots("max_size", _MAX_U63),
            max_price_ticks=int(max_price_ticks),
            initial_margin_ppm=int(obj.get("initial_margin_ppm", 0)),
            maintenance_margin_ppm=int(obj.get("maintenance_margin_ppm", 0)),
            max_open_orders_per_account=int(obj.get("max_open_orders_per_account", 0)),
            status=int(status),
            margin_tiers=tuple(
                MarginTier(int(t[0]), int(t[1]), int(t[2])) for t in obj.get("margin_tiers", ())
            ),
            max_open_interest_lots=int(obj.get("max_open_interest_lots", 0)),
        )
    except (KeyError, TypeError, IndexError, RpcError) as exc:
        raise ValueError(f"malformed market listing {obj!r}: {exc}") from None
    info.check()
    return info

"""Markets: the listed perpetual markets and their parameters, and each market's order sequence.

=================  ======  =====================  =============================================
table              prefix  key                    value
=================  ======  =====================  =============================================
``markets``        0x20    market id (4 bytes)    :class:`Market`
``market_seq``     0x21    market id (4 bytes)    next order id of the market (its sequence)
=================  ======  =====================  =============================================
"""

from __future__ import annotations

from typing import Final

from strata.core.errors import ErrorCode, InvalidTransaction
from strata.modules.markets.records import MarginTier as MarginTier
from strata.modules.markets.records import Market as Market
from strata.modules.markets.records import MarketStatus as MarketStatus
from strata.state.store import State, Table, int_key

MAX_NOTIONAL = 1 << 60
"""Largest notional of one order, in quote units (about 1.15e12 USDC)."""

MARKET_KEY = int_key(4)
"""Market ids as 4 big-endian bytes."""

_ACTIVE: Final = MarketStatus.ACTIVE
"""Read once: compiled, an enum attribute costs a lookup through the enum class on every order."""


def register_tables(state: State) -> None:
    """Create this module's tables in a new state."""
    j = state.journal
    state.add_table(Table("markets", 0x20, j, MARKET_KEY, Market))
    state.add_table(Table("market_seq", 0x21, j, MARKET_KEY, int))


def check_market_params(market: Market) -> None:
    """Check a listing's parameters (genesis or governance).

    Raises
    ------
    InvalidTransaction
        ``BAD_AMOUNT`` if a parameter is out of its range: every size and price bound positive,
        ``0 < maintenance <= initial <= 1_000_000`` ppm, and the largest order's notional
        (``max_price_ticks * max_size_lots * quote_per_tick_lot``) at most ``2**60`` quote, so
        the sums of notionals stay inside the canonical encoding's 64-bit integers. Margin
        tiers start above 0 in ascending order, each with ``maintenance <= initial <= 1e6`` and
        rates no lower than the tier below; the open-interest cap is not negative.
    """
    ok = (
        0 <= market.market_id < 1 << 32
        and market.quote_per_tick_lot > 0
        and 0 < market.min_size_lots <= market.max_size_lots
        and market.max_price_ticks > 0
        and 0 < market.maintenance_margin_ppm <= market.initial_margin_ppm <= 1_000_000
        and market.max_open_orders_per_account > 0
        and market.max_price_ticks * market.max_size_lots * market.quote_per_tick_lot
        <= MAX_NOTIONAL
        and market.max_open_interest_lots >= 0
        and _tiers_ok(market)
    )
    if not ok:
        raise InvalidTransaction(ErrorCode.BAD_AMOUNT, f"bad market parameters: {market}")


def _tiers_ok(market: Market) -> bool:
    start = 0
    initial = market.initial_margin_ppm
    maintenance = market.maintenance_margin_ppm
    for tier in market.margin_tiers:
        if not (
            tier.from_notional_quote > start
            and initial <= tier.initial_margin_ppm <= 1_000_000
            and maintenance <= tier.maintenance_margin_ppm <= tier.initial_margin_ppm
        ):
            return False
        start = tier.from_notional_quote
        initial = tier.initial_margin_ppm
        maintenance = tier.maintenance_margin_ppm
    return True


def list_market(state: State, market: Market) -> None:
    """Add a market (genesis)."""
    check_market_params(market)
    state.tables["markets"].put(market.market_id, market)
    state.tables["market_seq"].put(market.market_id, 1)


def get_market(state: State, market_id: int) -> Market | None:
    market: Market | None = state.tables["markets"].get(market_id)
    return market


def get_market_ids(state: State) -> list[int]:
    """Every listed market id, ascending."""
    return sorted(state.tables["markets"].data)


def check_order_params(state: State, market_id: int, price_ticks: int, size_lots: int) -> Market:
    """Check an order against its market's listing and return the market.

    Raises
    ------
    InvalidTransaction
        ``UNKNOWN_MARKET``, ``MARKET_NOT_ACTIVE``, ``PRICE_OUT_OF_RANGE`` (price not in
        ``[1, max_price_ticks]``), ``SIZE_BELOW_MINIMUM`` or ``SIZE_OUT_OF_RANGE``
        (above ``max_size_lots``).
    """
    market = get_listed_market(state, market_id)
    check_order_limits(get_order_limits(market), market_id, price_ticks, size_lots)
    return market


def get_listed_market(state: State, market_id: int) -> Market:
    """The market, which an order names.

    Raises
    ------
    InvalidTransaction
        ``UNKNOWN_MARKET`` if it is not listed.
    """
    market = get_market(state, market_id)
    if market is None:
        raise InvalidTransaction(ErrorCode.UNKNOWN_MARKET, f"market {market_id}")
    return market


OrderLimits = tuple[bool, int, int, int]
"""What :func:`check_order_params` reads of a market: ``(active, max_price_ticks, min_size_lots,
max_size_lots)``, as a tuple a caller may keep while the market cannot change (compiled, each read
of a record's field is a generic attribute lookup; a tuple's are not)."""


def get_order_limits(market: Market) -> OrderLimits:
    """The :data:`OrderLimits` of ``market``."""
    return (
        market.status == _ACTIVE,
        market.max_price_ticks,
        market.min_size_lots,
        market.max_size_lots,
    )


def check_order_limits(
    limits: OrderLimits, market_id: int, price_ticks: int, size_lots: int
) -> None:
    """:func:`check_order_params` for a market known to exist, from its :func:`get_order_limits`.

    Raises
    ------
    InvalidTransaction
        As :func:`check_order_params`, but never ``UNKNOWN_MARKET``.
    """
    active, max_price_ticks, min_size_lots, max_size_lots = limits
    if not active:
        raise InvalidTransaction(ErrorCode.MARKET_NOT_ACTIVE, f"market {market_id}")
    if not 1 <= price_ticks <= max_price_ticks:
        raise InvalidTransaction(ErrorCode.PRICE_OUT_OF_RANGE, f"price {price_ticks}")
    if size_lots < min_size_lots:
        raise InvalidTransaction(ErrorCode.SIZE_BELOW_MINIMUM, f"size {size_lots}")
    if size_lots > max_size_lots:
        raise InvalidTransaction(ErrorCode.SIZE_OUT_OF_RANGE, f"size {size_lots}")


def next_order_ids(state: State) -> dict[int, int]:
    """Each market's next order id (a copy: every id below it has been assigned)."""
    return dict(state.tables["market_seq"].data)


def get_next_order_id(state: State, market_id: int) -> int:
    """The id the market's next order will take (its time priority): every id below it has been
    assigned."""
    order_id: int = state.tables["market_seq"].data[market_id]
    return order_id


def set_next_order_id(state: State, market_id: int, next_order_id: int) -> None:
    """Advance the market's sequence to ``next_order_id``, once the ids below it are assigned.

    Matching assigns a block's ids from a local counter and writes it here once per market
    (a write of the table per order cost about 800 instructions). A sequence never goes back.
    """
    table = state.tables["market_seq"]
    assert next_order_id >= table.data[market_id], "an order sequence never goes back"
    table.put(market_id, next_order_id)

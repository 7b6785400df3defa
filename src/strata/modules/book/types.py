"""Records of the order book: orders, fills, time in force and order-status reasons.

The book is pure matching: it orders resting orders by price then time (a per-market sequence
number, never a timestamp), finds crossings and reports fills. It moves no funds; ``clearing``
applies what it reports.
"""

from __future__ import annotations

from enum import IntEnum


class TimeInForce(IntEnum):
    """How long an order may live and whether it may take or make liquidity."""

    GTC = 0
    """Good til canceled: takes what crosses, rests the remainder."""
    IOC = 1
    """Immediate or cancel: takes what crosses, the remainder is canceled. A market order is an IOC
    whose price is the worst price the trader accepts."""
    FOK = 2
    """Fill or kill: fills whole at once or does nothing at all."""
    POST_ONLY = 3
    """Rests only; rejected if any part would take liquidity (Hyperliquid's ALO)."""


class OrderStatus(IntEnum):
    """Status of an order in an order-update event."""

    OPEN = 0
    """Resting in the book (possibly after partial fills)."""
    FILLED = 1
    CANCELED = 2
    REJECTED = 3
    """Never entered the book (a rejection has a reason, as a cancel does)."""


class OrderReason(IntEnum):
    """Why an order ended (stable codes, reported in events)."""

    NONE = 0
    FILLED = 1
    CANCELED_BY_USER = 2
    SELF_TRADE = 3
    """A resting order canceled because its owner's incoming order would have matched it."""
    POST_ONLY_WOULD_TAKE = 4
    IOC_REMAINDER = 5
    FOK_NOT_FILLABLE = 6
    REDUCE_ONLY = 7
    """Reduce-only order that would increase the position, or its part beyond the position."""
    INSUFFICIENT_MARGIN = 8
    DUPLICATE_CLIENT_ID = 9
    TOO_MANY_OPEN_ORDERS = 10
    REPLACED = 11
    """Canceled by a modify; the replacement carries the same client id."""
    UNKNOWN_ORDER = 12
    MARKET_CLOSED = 13
    CANCELED_ALL = 14
    PARTIAL_CANCEL = 15
    ORACLE_STALE = 16
    """An order that is not reduce-only, refused because the market's oracle index is stale."""
    LIQUIDATED = 17
    """Canceled because its owner was liquidated (``modules/liquidation``)."""
    OPEN_INTEREST_CAP = 18
    """An order that is not reduce-only, refused because the market is at its open-interest cap."""
    EXPIRED = 19
    """A good-til-time order whose time came (or, refused, that came before it was placed)."""
    SCHEDULED_CANCEL = 20
    """Canceled by its owner's dead-man switch (``ScheduleCancel``)."""


class Order:
    """A resting (or incoming) limit order. Mutable only inside the book and the market's clearing.

    Fields
    ------
    order_id:         in the chain, the per-market sequence number (so lower is older); in a
                      replay, an external id (the book keeps arrival order, not id order)
    owner:            20-byte account address
    is_buy:           side
    price_ticks:      limit price in ticks (positive)
    size_lots:        remaining size in lots (positive while resting)
    client_id:        the owner's client order id, or ``None``; unique per (owner, market)
                      while live
    reduce_only:      never increase the owner's absolute position in this market
    reserved_quote:   initial margin held for this order (set and released by ``clearing``)
    expires_at_ms:    good-til-time: the prologue cancels it once a block's timestamp reaches
                      this (``None``: good-til-canceled)
    """

    __slots__ = (
        "client_id",
        "expires_at_ms",
        "is_buy",
        "order_id",
        "owner",
        "price_ticks",
        "reduce_only",
        "reserved_quote",
        "size_lots",
    )

    def __init__(
        self,
        order_id: int,
        owner: bytes,
        is_buy: bool,
        price_ticks: int,
        size_lots: int,
        client_id: int | None = None,
        reduce_only: bool = False,
        reserved_quote: int = 0,
        expires_at_ms: int | None = None,
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.is_buy = is_buy
        self.price_ticks = price_ticks
        self.size_lots = size_lots
        self.client_id = client_id
        self.reduce_only = reduce_only
        self.reserved_quote = reserved_quote
        self.expires_at_ms = expires_at_ms

    def as_tuple(self) -> tuple[int, bytes, bool, int, int, int | None, bool, int, int | None]:
        """All fields, for comparison and canonical encoding."""
        return (
            self.order_id,
            self.owner,
            self.is_buy,
            self.price_ticks,
            self.size_lots,
            self.client_id,
            self.reduce_only,
            self.reserved_quote,
            self.expires_at_ms,
        )

    def __repr__(self) -> str:
        side = "buy" if self.is_buy else "sell"
        return (
            f"Order(#{self.order_id} {self.owner.hex()[:8]} {side}"
            f" {self.size_lots}@{self.price_ticks}"
            f" cid={self.client_id} ro={self.reduce_only} res={self.reserved_quote})"
        )

"""Events emitted by matching and clearing (committed in the receipts root)."""

from __future__ import annotations

import msgspec


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class OrderUpdate(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=10):
    """An order's new status (``book.types.OrderStatus``) and, when it ends, the reason."""

    market_id: int
    order_id: int
    owner: bytes
    status: int
    reason: int
    remaining_lots: int
    filled_lots: int
    client_id: int | None


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class FillEvent(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=11):
    """A trade: ``size_lots`` at the maker's ``price_ticks``. Fees are in quote units; a negative
    maker fee is a rebate."""

    market_id: int
    maker_order_id: int
    taker_order_id: int
    maker: bytes
    taker: bytes
    taker_is_buy: bool
    price_ticks: int
    size_lots: int
    maker_fee_quote: int
    taker_fee_quote: int


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class PositionChanged(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=12):
    """An account's position in a market after the block's fills, with the PnL they realized and
    the funding it settled first (``funding_quote``: paid, negative when received; see
    ``modules/funding``)."""

    account: bytes
    market_id: int
    size_lots: int
    entry_cost_quote: int
    realized_pnl_quote: int
    fees_quote: int
    funding_quote: int = 0

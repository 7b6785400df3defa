"""The order book module: resting orders and price-time matching (see ``README.md``)."""

from strata.modules.book.book import Book, Fill, PlaceResult, ReduceOnlyCap
from strata.modules.book.types import Order, OrderReason, OrderStatus, TimeInForce

__all__ = [
    "Book",
    "Fill",
    "Order",
    "OrderReason",
    "OrderStatus",
    "PlaceResult",
    "ReduceOnlyCap",
    "TimeInForce",
]

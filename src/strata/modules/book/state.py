"""The book's consensus keys: every resting order is a leaf of the state root.

============  ======  ======================================  ===============================
table         prefix  key                                     value
============  ======  ======================================  ===============================
(books)       0x70    market id (4 bytes) ‖ order id (8 B)    ``Order.as_tuple()``, canonical
============  ======  ======================================  ===============================

The price levels, queues and indexes of :class:`~strata.modules.book.book.Book` are derived from
these orders (a level's queue is its orders by ascending order id), so a book rebuilt from its
leaves is the same book.
"""

from __future__ import annotations

from strata.core.codec import encode
from strata.modules.book.book import Book
from strata.modules.book.types import Order

BOOK_PREFIX = 0x70


def compute_book_leaves(book: Book) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of every resting order of ``book``, in no particular order (the tree
    sorts its leaves by path)."""
    head = bytes((BOOK_PREFIX,)) + book.market_id.to_bytes(4, "big")
    return [
        (head + order.order_id.to_bytes(8, "big"), encode(order.as_tuple()))
        for order in book.unordered_orders()
    ]


def copy_book(book: Book, max_open_orders_per_owner: int) -> Book:
    """An independent copy of ``book`` (same orders, same priority)."""
    copy = Book(book.market_id, max_open_orders_per_owner)
    for order in book.iter_orders():
        copy.insert_resting(Order(*order.as_tuple()))
    return copy

"""A state as the list of its committed entries, and back (storage, snapshots, state sync).

``iter_state_leaves(state)`` (in ``state_root``) gives every ``(key, value)`` the state root
commits to; :func:`load_state` rebuilds the state from exactly those entries. Round trip:
``load_state(iter_state_leaves(s), s.tip)`` has the same leaves, hence the same root, as ``s``.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from strata.core.errors import ErrorCode, InvalidBlock, InvariantViolation
from strata.modules import markets
from strata.modules.book import Book, Order
from strata.modules.book.state import BOOK_PREFIX
from strata.state.store import ChainTip, State
from strata.stf.genesis import new_empty_state

_ORDER = msgspec.msgpack.Decoder(
    tuple[int, bytes, bool, int, int, int | None, bool, int, int | None]
)


def load_state(entries: Iterable[tuple[bytes, bytes]], tip: ChainTip) -> State:
    """Rebuild a state from its committed entries (any order).

    Raises
    ------
    InvalidBlock
        ``MALFORMED_BLOCK`` if an entry has an unknown prefix, does not decode, or is a resting
        order of an unlisted market: stored state that does not check out is refused, never
        guessed at.
    """
    state = new_empty_state()
    by_prefix = {table.prefix: table for table in state.tables.values()}
    orders: list[tuple[int, int, bytes]] = []
    try:
        for key, value in entries:
            prefix = key[0]
            if prefix == BOOK_PREFIX:
                if len(key) != 13:
                    raise ValueError("a book key is 13 bytes")
                market_id = int.from_bytes(key[1:5], "big")
                orders.append((market_id, int.from_bytes(key[5:13], "big"), value))
                continue
            table = by_prefix.get(prefix)
            if table is None:
                raise ValueError(f"unknown key prefix {prefix:#04x}")
            table.load(key[1:], value)
        for market_id in markets.get_market_ids(state):
            market = markets.get_market(state, market_id)
            assert market is not None
            state.books[market_id] = Book(market_id, market.max_open_orders_per_account)
        for market_id, order_id, value in sorted(orders, key=lambda o: (o[0], o[1])):
            fields = _ORDER.decode(value)
            if fields[0] != order_id or market_id not in state.books:
                raise ValueError(f"order {order_id} of market {market_id} does not check out")
            state.books[market_id].insert_resting(Order(*fields))
    except (ValueError, IndexError, msgspec.DecodeError, InvariantViolation) as error:
        raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, f"stored state: {error}") from None
    state.tip = tip
    return state

"""The state root: one sparse Merkle tree over every table and every resting order."""

from __future__ import annotations

from collections.abc import Iterator

from strata.core.errors import ErrorCode, InvariantViolation
from strata.core.merkle import compute_root_from_pairs
from strata.modules.book.state import compute_book_leaves
from strata.state.store import State


def iter_state_leaves(state: State) -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` committed by the state root (any order: the tree sorts by path)."""
    for name in sorted(state.tables):
        yield from state.tables[name].leaves()
    for market_id in sorted(state.books):
        yield from compute_book_leaves(state.books[market_id])


def compute_state_root(state: State) -> bytes:
    """The root committing to all consensus state.

    Raises
    ------
    InvariantViolation
        ``JOURNAL_OPEN`` if a transaction journal is still open (a half-applied transaction).
    """
    if state.is_journal_open():
        raise InvariantViolation(ErrorCode.JOURNAL_OPEN, "state root with an open journal")
    return compute_root_from_pairs(iter_state_leaves(state))

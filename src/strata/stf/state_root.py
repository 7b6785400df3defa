"""The state root: one sparse Merkle tree over every table and every resting order."""

from __future__ import annotations

from collections.abc import Iterator

from strata.core.errors import ErrorCode, InvariantViolation
from strata.core.merkle import compute_root_from_pairs
from strata.modules.book.state import compute_book_leaves
from strata.state.store import State


def list_state_leaves(state: State) -> list[tuple[bytes, bytes]]:
    """Every ``(key, value)`` committed by the state root (any order: the tree sorts by path).

    A list, built by compiled comprehensions: generators nested three deep cost a resumption
    per entry at each level."""
    leaves: list[tuple[bytes, bytes]] = []
    for name in sorted(state.tables):
        leaves.extend(state.tables[name].leaves())
    for market_id in sorted(state.books):
        leaves.extend(compute_book_leaves(state.books[market_id]))
    return leaves


def iter_state_leaves(state: State) -> Iterator[tuple[bytes, bytes]]:
    """:func:`list_state_leaves`, one at a time."""
    return iter(list_state_leaves(state))


def clear_changes(state: State) -> None:
    """Forget the dirty marks of tables and books (the reference root needs none)."""
    for table in state.tables.values():
        table.dirty.clear()
    for book in state.books.values():
        book.dirty.clear()


def compute_state_root(state: State) -> bytes:
    """The root committing to all consensus state: by the reference tree over every entry, or by
    the state's incremental commitment when one is attached (the same bytes).

    Raises
    ------
    InvariantViolation
        ``JOURNAL_OPEN`` if a transaction journal is still open (a half-applied transaction).
    """
    if state.is_journal_open():
        raise InvariantViolation(ErrorCode.JOURNAL_OPEN, "state root with an open journal")
    commitment = state.commitment
    if commitment is not None:
        root: bytes = commitment.compute_root(state)
        return root
    clear_changes(state)
    return compute_root_from_pairs(list_state_leaves(state))

"""The incremental state commitment: the same root as the reference tree, rehashing only what a
block changed.

``compute_state_root`` (``stf/state_root.py``) uses the readable reference tree over every entry
when ``state.commitment`` is ``None``. A node attaches an :class:`IncrementalCommitment` instead:
each block it gathers the keys the block dirtied (tables mark keys on every write, the matching
phase marks the orders it touches), encodes their new values (or ``None`` for a deleted entry) and
applies them to the persistent sparse Merkle tree of ``state/smt.py`` in one batch. Both give the
same bytes (differential tests in ``tests/differential/test_commitment.py``).

``last_root`` keeps the root of the last update and ``last_changes`` the entries written by the
last block, for storage to persist in the block's write transaction.

An order placed and gone within one block (an IOC that does not rest, an order filled or canceled
in the block that placed it) never reached the tree: deleting it would change nothing, so the
commitment leaves it out of the changes. It knows such an order by its id: order ids are a
per-market sequence (``market_seq``), so an order whose id was not yet assigned when the tree was
last updated was not in it. Measured on ``strata bench engine``'s single-order workload, half of
a block's changes are such orders (58,348 of 116,302); leaving them out saves their tree walks,
their place among the node's pending changes and their records in a checkpoint. The root is the
same either way (the differential tests compare it with the reference).
"""

from __future__ import annotations

from collections.abc import Mapping

from strata.core.codec import encode
from strata.core.merkle import EMPTY
from strata.modules import markets
from strata.modules.book import Book
from strata.modules.book.state import BOOK_PREFIX
from strata.state.smt import SparseMerkleTree
from strata.state.store import State
from strata.stf.state_root import clear_changes, iter_state_leaves


def collect_changes(
    state: State, committed_seq: Mapping[int, int] | None = None
) -> dict[bytes, bytes | None]:
    """Every committed entry written since the last call, with its value now (``None`` if it is
    gone), and forget the dirty marks.

    ``committed_seq``, if given, is each market's ``market_seq`` when the committed tree was
    last updated (a market absent from it did not exist then): a gone order whose id is at or
    above it was never committed, and is left out (deleting it changes nothing)."""
    changes: dict[bytes, bytes | None] = {}
    for table in state.tables.values():
        if not table.dirty:
            continue
        head = bytes((table.prefix,))
        data = table.data
        encode_key = table.encode_key
        encode_value = table.encode_value
        for key in sorted(table.dirty):  # sets are never iterated unsorted in ring 0
            value = data.get(key)
            changes[head + encode_key(key)] = None if value is None else encode_value(value)
        table.dirty.clear()
    for market_id, book in state.books.items():
        assert isinstance(book, Book)
        if not book.dirty:
            continue
        head = bytes((BOOK_PREFIX,)) + market_id.to_bytes(4, "big")
        first_new = None if committed_seq is None else committed_seq.get(market_id, 0)
        for order_id in sorted(book.dirty):
            order = book.get_order(order_id)
            if order is None and first_new is not None and order_id >= first_new:
                continue  # placed and gone since the tree was last updated: never in it
            key = head + order_id.to_bytes(8, "big")
            changes[key] = None if order is None else encode(order.as_tuple())
        book.dirty.clear()
    return changes


class IncrementalCommitment:
    """Computes the state root from a persistent tree, updated once per block."""

    def __init__(self, tree: SparseMerkleTree) -> None:
        self.tree = tree
        self.last_root: bytes | None = None
        self.last_changes: dict[bytes, bytes | None] = {}
        self._committed_seq: dict[int, int] | None = None
        """Each market's next order id when the tree was last updated (``None`` before the
        first update: the tree's state then is not known, so nothing is left out)."""

    def take_changes(self, state: State) -> dict[bytes, bytes | None]:
        """The entries dirtied since the last call (or :meth:`compute_root`), as the next tree
        update must apply them, and forget the dirty marks. The tree is not touched: a caller
        that computes the update elsewhere (a node's commitment process) hands it back with
        :meth:`adopt`, in the same order."""
        changes = collect_changes(state, self._committed_seq)
        self._committed_seq = markets.next_order_ids(state)
        return changes

    def adopt(self, changes: dict[bytes, bytes | None], root: bytes) -> None:
        """Record the update of ``changes`` (from :meth:`take_changes`), already applied to
        ``tree`` and giving ``root``, as the last one (what storage persists for the block)."""
        self.last_changes = changes
        self.last_root = root

    def compute_root(self, state: State) -> bytes:
        """Apply the entries dirtied since the last call and return the new root."""
        changes = self.take_changes(state)
        root = self.tree.apply(changes).root
        self.adopt(changes, root)
        return root


def attach_commitment(state: State, commitment: IncrementalCommitment) -> IncrementalCommitment:
    """Build ``commitment``'s tree, empty until now, over every entry of ``state``, forget the
    state's dirty marks and attach it: the roots of the blocks applied to ``state`` from now on
    come from it (a verifier's genesis state, a test's or a benchmark's). Returns it.

    Raises ``ValueError`` if the tree is not empty."""
    tree = commitment.tree
    if tree.root != EMPTY:
        raise ValueError("attach_commitment builds a new tree: this one is not empty")
    tree.apply(dict(iter_state_leaves(state)))
    tree.take_released()  # (with a live table: nothing to keep, no store holds a history)
    clear_changes(state)
    state.commitment = commitment
    return commitment

"""The incremental state commitment gives the reference root, block after block."""

from __future__ import annotations

from strata.modules.book.state import BOOK_PREFIX
from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.state.store import State
from strata.stf.commitment import IncrementalCommitment, attach_commitment
from strata.stf.genesis import make_genesis
from strata.stf.state_root import iter_state_leaves
from strata.stf.transition import build_block, copy_state
from tests.storage.workload import GENESIS, block_time, block_transactions


def _attach_commitment(state: State) -> IncrementalCommitment:
    """Give ``state`` an incremental commitment over an in-memory tree of its entries now."""
    return attach_commitment(state, IncrementalCommitment(SparseMerkleTree(MemoryNodeSource())))


def test_incremental_and_reference_roots_agree_over_a_chain() -> None:
    reference, _ = make_genesis(GENESIS)
    incremental = copy_state(reference)
    _attach_commitment(incremental)
    for height in range(1, 81):
        txs = block_transactions(height, count=30)
        _, want = build_block(reference, block_time(height), (), txs, GENESIS.params)
        _, got = build_block(incremental, block_time(height), (), txs, GENESIS.params)
        assert got.header == want.header, height
        assert got.receipts == want.receipts
    # Something actually happened: orders rest, fills moved balances.
    assert len(incremental.books[1]) > 0


def test_changes_hold_every_real_change_and_no_order_that_never_rested() -> None:
    """A block's ``last_changes`` covers every entry whose value differs from the previous block's
    state, and (after the first update, when the commitment learns the order sequences) names
    no order that was placed and gone within one block: every order deletion it lists removes an
    order that was there."""
    state, _ = make_genesis(GENESIS)
    before = dict(iter_state_leaves(state))
    commitment = _attach_commitment(state)
    deletions = 0
    for height in range(1, 61):
        txs = block_transactions(height, count=30)
        build_block(state, block_time(height), (), txs, GENESIS.params)
        after = dict(iter_state_leaves(state))
        changes = commitment.last_changes
        real = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert real <= changes.keys(), height
        assert all(changes[k] == after.get(k) for k in changes)
        no_ops = {
            k for k, v in changes.items() if v is None and k not in before and k[0] == BOOK_PREFIX
        }
        if height > 1:
            assert not no_ops, height
        deletions += sum(1 for k in changes if changes[k] is None and k in before)
        before = after
    assert deletions > 0  # orders that rested did leave the book (deletions were exercised)

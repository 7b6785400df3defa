"""The incremental state commitment gives the reference root, block after block."""

from __future__ import annotations

from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.stf.commitment import IncrementalCommitment
from strata.stf.genesis import make_genesis
from strata.stf.state_root import clear_changes, iter_state_leaves
from strata.stf.transition import build_block, copy_state
from tests.storage.workload import GENESIS, block_time, block_transactions


def test_incremental_and_reference_roots_agree_over_a_chain() -> None:
    reference, _ = make_genesis(GENESIS)
    incremental = copy_state(reference)
    source = MemoryNodeSource()
    tree = SparseMerkleTree(source)
    tree.apply(dict(iter_state_leaves(incremental)))
    clear_changes(incremental)
    incremental.commitment = IncrementalCommitment(tree)
    for height in range(1, 81):
        txs = block_transactions(height, count=30)
        _, want = build_block(reference, block_time(height), (), txs, GENESIS.params)
        _, got = build_block(incremental, block_time(height), (), txs, GENESIS.params)
        assert got.header == want.header, height
        assert got.receipts == want.receipts
    # Something actually happened: orders rest, fills moved balances.
    assert len(incremental.books[1]) > 0

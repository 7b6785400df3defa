"""A second state that follows a test chain block by block the way a node with ``commit_process``
builds it: each block executed unsealed (``execute_block``), its changes sent to a commitment
process before the block executed before it is sealed with the root that came back
(``seal_block``). Every sealed block and output must equal the built one byte for byte.
"""

from __future__ import annotations

from strata.core.codec import encode
from strata.exec.commitment import CommitmentProcess
from strata.state.packed import PackedNodes
from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.state.store import State
from strata.stf.block import Block, BlockOutput, compute_header_hash
from strata.stf.commitment import IncrementalCommitment, attach_commitment
from strata.stf.params import ChainParams
from strata.stf.transition import UnsealedBlock, copy_state, execute_block, seal_block


def empty_tree() -> SparseMerkleTree:
    """An empty tree with a live table, as a node's store holds its tree (a commitment process
    can also be started on one before its first chain)."""
    return SparseMerkleTree(MemoryNodeSource(), live=PackedNodes())


class PipelinedFollower:
    """Follows one chain from ``genesis`` (copied) through ``worker`` (reloaded with it)."""

    def __init__(self, worker: CommitmentProcess, genesis: State) -> None:
        self.worker = worker
        self.state = copy_state(genesis)
        self.commitment = attach_commitment(self.state, IncrementalCommitment(empty_tree()))
        self.parent = genesis.tip.header_hash
        self.in_flight: tuple[UnsealedBlock, dict[bytes, bytes | None], Block, BlockOutput] | None
        self.in_flight = None
        self.sealed = 0
        while worker.in_flight:  # left by an example that failed (Hypothesis then shrinks it)
            worker.result()
        worker.reload(self.commitment.tree)

    def follow(self, block: Block, params: ChainParams, built: BlockOutput) -> None:
        """Execute ``block`` unsealed, send its changes, then seal the block before it."""
        header = block.header
        unsealed = execute_block(
            self.state, header.timestamp_ms, block.system, block.transactions, params
        )
        changes = self.commitment.take_changes(self.state)
        self.worker.submit(changes)
        self.finish()
        self.in_flight = (unsealed, changes, block, built)

    def finish(self) -> None:
        """Seal the block in flight, if any, and assert it is the built one."""
        if self.in_flight is None:
            return
        unsealed, changes, block, built = self.in_flight
        self.in_flight = None
        root, nodes, stale = self.worker.result()
        self.commitment.tree.adopt_packed(root, nodes, stale)
        self.commitment.tree.take_released()
        self.commitment.adopt(changes, root)
        sealed, output = seal_block(unsealed, self.parent, root)
        height = block.header.height
        assert encode(sealed) == encode(block), height
        assert encode(output.header) == encode(built.header), height
        assert encode(output.receipts) == encode(built.receipts), height
        assert encode(output.block_events) == encode(built.block_events), height
        assert encode(output.withdrawals) == encode(built.withdrawals), height
        self.parent = compute_header_hash(sealed.header)
        self.sealed += 1

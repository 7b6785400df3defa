"""A second state that follows a test chain block by block through market-sharded matching.

The property machines build each block with the serial matching loop; a follower re-applies it
with :class:`~strata.exec.parallel.ShardedMatching` on a state of its own that persists from
block to block (so the workers' copies of books and positions carry over, as in a node), and
every output must equal the built one byte for byte.
"""

from __future__ import annotations

from typing import Protocol, cast

import hypothesis
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from strata.core.codec import encode
from strata.exec.parallel import ShardedMatching
from strata.state.store import State
from strata.stf.block import Block, BlockOutput
from strata.stf.params import ChainParams
from strata.stf.transition import apply_block, copy_state


class ShardedFollower:
    """Follows one chain from ``genesis`` (copied) with ``matching``."""

    def __init__(self, matching: ShardedMatching, genesis: State) -> None:
        self.matching = matching
        self.state = copy_state(genesis)

    def follow(self, block: Block, params: ChainParams, built: BlockOutput) -> None:
        """Apply ``block`` and assert every committed byte equals ``built``'s."""
        output = apply_block(self.state, block, params, matching=self.matching)
        assert encode(output.header) == encode(built.header), block.header.height
        assert encode(output.receipts) == encode(built.receipts), block.header.height
        assert encode(output.block_events) == encode(built.block_events), block.header.height
        assert encode(output.withdrawals) == encode(built.withdrawals), block.header.height


class _Following(Protocol):
    sharded: ShardedMatching | None


def run_sharded(
    machine: type[RuleBasedStateMachine],
    settings: hypothesis.settings,
    shards: int,
    placed: dict[int, int],
) -> None:
    """Run a state machine whose class attribute ``sharded`` gives its follower the executor:
    one ``ShardedMatching(shards, placed=placed)`` for every example (each example's follower
    is a state the executor has not seen, so it is sent whole first)."""
    following = cast(_Following, machine)
    following.sharded = ShardedMatching(shards, placed=placed)
    try:
        run_state_machine_as_test(machine, settings=settings)
    finally:
        following.sharded.close()
        following.sharded = None

"""The serial reference executor.

It checks a block's signatures as one batch (the hook a later issue runs on a thread pool), then
runs ``apply_block`` phase by phase, partition by partition, in canonical order. The parallel
executor of a later issue must produce byte-identical ``BlockOutput``s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from strata.state.store import State
from strata.stf.block import Block, BlockOutput
from strata.stf.params import ChainParams
from strata.stf.transition import apply_block, check_signatures

SignatureChecker = Callable[[ChainParams, Sequence[bytes]], list[bytes | None]]


class SerialExecutor:
    """Executes blocks one after another on one thread."""

    def __init__(self, check: SignatureChecker = check_signatures) -> None:
        self._check = check

    def execute(self, state: State, block: Block, params: ChainParams) -> BlockOutput:
        """Check the block's signatures as a batch, then apply it (see ``stf.transition``)."""
        signers = self._check(params, block.transactions)
        return apply_block(state, block, params, signers)

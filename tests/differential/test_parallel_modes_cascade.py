"""Every parallel mode is an optimization, never a different chain, over a liquidation cascade
(issue: parallel execution, "with every combination of settings, every ``BlockOutput`` byte and
root equals the serial executor's, over random histories with liquidation cascades").

The history is the ``cascade`` scenario (``strata.scenarios.library``): 400 leveraged traders
and four market makers quoting with bulk orders, then a 20% shock in two markets that liquidates
hundreds of accounts over several blocks. Its blocks are re-executed from genesis with the
signers checked inside ``apply_block`` (the serial executor), by the signature precompile's
threads, and by its worker processes, each with the matching phase in one process or sharded
by market across worker processes (``exec/parallel.py``); and the verifier re-derives them from
file DA with worker processes and with threads. Every output must be byte for byte the one the
scenario recorded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.core.codec import encode
from strata.exec.parallel import ShardedMatching
from strata.exec.signatures import SignaturePool, joined
from strata.modules.liquidation import PositionLiquidated
from strata.scenarios.harness import ScenarioRun
from strata.scenarios.library import run_cascade
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block
from strata.verifier.verify import verify
from tests.da.file_driver import post_blocks


@pytest.fixture(scope="module")
def cascade() -> ScenarioRun:
    run = run_cascade(None, accounts=400)
    assert run.passed, run.chain.violations
    liquidating = [
        record
        for record in run.chain.records
        if any(isinstance(event, PositionLiquidated) for event in record.output.block_events.risk)
    ]
    assert len(liquidating) >= 2, "the history must hold a cascade over several blocks"
    return run


SHARDINGS = {
    "unsharded": (0, {}),
    "market-2-in-a-worker": (2, {}),
    "market-1-in-a-worker": (2, {1: 1, 2: 0}),
    "both-in-workers": (3, {1: 1, 2: 2}),
}
"""Matching in one process, or sharded by market: (shards, markets placed off the default)."""


@pytest.mark.parametrize("sharding", list(SHARDINGS))
@pytest.mark.parametrize("mode", ["inside", "threads", "processes"])
def test_every_parallel_mode_gives_the_cascade_s_bytes(
    cascade: ScenarioRun, mode: str, sharding: str
) -> None:
    """Signatures checked inside ``apply_block``, by threads or by processes, times matching in
    one process or sharded by market: the default placement (market 1 here, market 2 in the
    worker), market 1 in the worker (gathered before market 2, which matches here), and each
    market in a worker of its own."""
    chain = cascade.chain
    state, _ = make_genesis(chain.genesis)
    pool = None if mode == "inside" else SignaturePool(2 if mode == "processes" else 0)
    shards, placed = SHARDINGS[sharding]
    matching = ShardedMatching(shards, placed=placed) if shards else None
    try:
        for record in chain.records:
            block = record.block
            signers = None
            if pool is not None:
                signers = joined(pool.submit(chain.params, block.transactions))
            output = apply_block(state, block, chain.params, signers, matching)
            assert encode(output) == encode(record.output), block.header.height
        if sharding == "market-2-in-a-worker":  # here: matched its market, waited, handed over
            assert matching is not None and all(matching.seconds.values()), matching.seconds
    finally:
        if pool is not None:
            pool.close()
        if matching is not None:
            matching.close()


def test_the_verifier_checks_the_cascade_alike_with_workers_and_threads(
    tmp_path: Path, cascade: ScenarioRun
) -> None:
    chain = cascade.chain
    blocks = [record.block for record in chain.records]
    da = post_blocks(tmp_path / "da", blocks, 4, chain.params.chain_id)
    last_root = "0x" + blocks[-1].header.state_root.hex()
    for processes, shards in ((2, 0), (0, 0), (2, 2)):
        summary = verify(da, chain.genesis, signature_processes=processes, matching_shards=shards)
        assert summary.reason is None, summary.reason
        assert summary.blocks_checked == len(blocks)
        assert summary.state_root == last_root

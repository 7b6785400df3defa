"""``exec/parallel.py`` beyond the differential runs: a state it has not followed is sent whole
first (a node that reloads its state after a failed block), a worker whose matching raises is
reported with its traceback, one shard needs no process, and a shard count below one is
refused."""

from __future__ import annotations

import pytest

from strata.core.codec import encode
from strata.exec.parallel import MatchingWorkerDied, ShardedMatching
from strata.state.store import State
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block, copy_state
from tests.da.file_driver import workload_chain
from tests.helpers.chain import Chain

BLOCKS = 12


@pytest.fixture(scope="module")
def chain() -> Chain:
    built, _ = workload_chain(BLOCKS)  # orders resting in markets 1 and 2 in every block
    return built


@pytest.fixture
def state(chain: Chain) -> State:
    """The chain's genesis state, fresh for each test."""
    assert chain.genesis is not None
    genesis, _ = make_genesis(chain.genesis)
    return genesis


def test_a_state_it_has_not_followed_is_synced_first(chain: Chain, state: State) -> None:
    """As a node whose block failed after matching: the workers' copies moved on with a state
    that is then dropped, and the block is applied again to the state before it."""
    matching = ShardedMatching(2)
    try:
        for index, (block, built) in enumerate(chain.blocks):
            if index == BLOCKS // 2:
                dropped = copy_state(state)
                apply_block(dropped, block, chain.params, matching=matching)
                assert any(len(book) for book in state.books.values())
            output = apply_block(state, block, chain.params, matching=matching)
            assert encode(output.header) == encode(built.header), block.header.height
            assert encode(output.receipts) == encode(built.receipts), block.header.height
    finally:
        matching.close()


def test_a_worker_whose_matching_raises_is_reported_with_its_traceback(
    chain: Chain, state: State
) -> None:
    matching = ShardedMatching(2)
    try:
        block, _ = chain.blocks[0]
        apply_block(state, block, chain.params, matching=matching)
        worker = matching._workers[0]
        matching._send(worker, ("block", {}, {}, None, [("not a market", 0, 0, [], [])]))
        with pytest.raises(MatchingWorkerDied, match="AttributeError"):
            matching._receive(worker)
        assert matching.broken is not None
        with pytest.raises(MatchingWorkerDied):  # and it stays broken
            apply_block(state, chain.blocks[1][0], chain.params, matching=matching)
    finally:
        matching.close()


def test_one_shard_matches_in_this_process(chain: Chain, state: State) -> None:
    matching = ShardedMatching(1)
    assert matching.worker_pids == []
    for block, built in chain.blocks:
        output = apply_block(state, block, chain.params, matching=matching)
        assert encode(output.header) == encode(built.header)
    assert matching.seconds["own"] > 0 and matching.seconds["waiting"] == 0


def test_fewer_than_one_shard_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ShardedMatching(0)

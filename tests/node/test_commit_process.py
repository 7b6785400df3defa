"""A node with ``commit_process``: each block executes while the one before waits for its root
from the commitment process (``docs/node.md``, "Execution pipelined apart from the
commitment"). Driven block by block in this process, with a real commitment process.

Checked here: a block is committed one block after it executed, and its transactions stay in
the mempool (and out of the next block) until then; a faucet deposit in flight is not offered
again; a block that fails to build (``InvalidBlock``) first commits the block in flight, then
rebuilds; closing seals the block in flight; and the chain on disk re-executes to every root it
holds (``ChainStore.open`` with its full check).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from strata.adapters.chain_store import ChainStore
from strata.client.signing import wallet_from_seed
from strata.modules import collateral
from strata.stf.transactions import Deposit
from tests.node.test_block_cutting import ORDERS_PER_BLOCK, open_node, resting_sells


def _check_chain(data_dir: Path, tip: int) -> list[int]:
    """Reopen the chain with every check (recovery re-executes the blocks after the last
    checkpoint against their headers); returns each block's transaction count."""
    store = ChainStore.open(data_dir / "chain", full_check=True)
    try:
        assert store.tip.height == tip
        return [len(store.get_block(h).transactions) for h in range(1, tip + 1)]
    finally:
        store.close(checkpoint=False)


def test_blocks_commit_one_block_late_and_their_transactions_wait_in_the_mempool(
    tmp_path: Path,
) -> None:
    node, trader = open_node(tmp_path / "node", commit_process=True)
    start = node.store.tip.height
    results = asyncio.run(node.submit(resting_sells(trader, 2 * ORDERS_PER_BLOCK + 1)))
    assert all("hash" in r for r in results), results
    hashes = [bytes.fromhex(r["hash"][2:]) for r in results]

    node.produce_block()  # block 1 executed, its root on its way
    assert node.store.tip.height == start and node.state_height == start + 1
    assert len(node.mempool) == 2 * ORDERS_PER_BLOCK + 1  # nothing is committed yet
    assert not any(node.is_included(h) for h in hashes)
    node.produce_block()  # block 2 executed; block 1 sealed and committed
    assert node.store.tip.height == start + 1 and node.state_height == start + 2
    assert len(node.mempool) == ORDERS_PER_BLOCK + 1
    assert all(node.is_included(h) for h in hashes[:ORDERS_PER_BLOCK])
    node.produce_block()  # the last order, not the ones of block 2 again
    node.close()  # seals and commits block 3
    assert _check_chain(tmp_path / "node", start + 3) == [ORDERS_PER_BLOCK, ORDERS_PER_BLOCK, 1]


def test_a_deposit_in_flight_is_not_offered_again_and_a_failed_build_commits_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="strata.node")
    node, _ = open_node(tmp_path / "node", commit_process=True)
    account = wallet_from_seed("devnet-1").address
    before = collateral.get_balance(node.store.state, account)
    node.faucet(account, 5_000_000)
    node.produce_block()  # block 1 credits the deposit; in flight
    node.produce_block()  # block 2 must not carry it again (a second credit, or a rebuild)
    assert collateral.get_balance(node.store.state, account) == before + 5_000_000
    assert node.store.tip.height == 1
    assert "block rebuilt" not in caplog.messages  # the deposit was not offered twice
    # A deposit the chain refuses (its index is not the next): block 3 fails to build, so
    # block 2 is committed first, the state taken back to it, and block 3 built without it.
    ledger = collateral.get_ledger(node.store.state)
    node.faucet_queue.append(Deposit(ledger.next_deposit_index + 7, account, 1))
    node.produce_block()
    assert caplog.messages.count("block rebuilt") == 1
    assert node.store.tip.height == 2 and node.state_height == 3
    assert node.faucet_queue == []
    assert collateral.get_balance(node.store.state, account) == before + 5_000_000
    node.close()
    assert _check_chain(tmp_path / "node", 3) == [0, 0, 0]

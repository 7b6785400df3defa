"""The sequencer puts at most ``block_gas_target`` of base gas in a block.

A backlog then drains as a run of blocks of bounded size, one per block time, rather than as a
few blocks as large as the chain's limit allows, whose transient objects made the node's memory
several times its idle working set (``docs/node.md``, "Memory").
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strata.client.api import _TraderCore
from strata.client.signing import wallet_from_seed
from strata.node.config import NodeConfig, devnet_genesis, read_config
from strata.node.node import Node, now_ms

ORDERS_PER_BLOCK = 3


def open_node(data_dir: Path, commit_process: bool = False) -> tuple[Node, _TraderCore]:
    """A devnet node whose blocks hold at most ``ORDERS_PER_BLOCK`` orders, everything in this
    process but the commitment process (``commit_process``), and a trader of devnet-1."""
    probe = devnet_genesis(0).chain.params
    config = NodeConfig(
        data_dir=str(data_dir),
        devnet=True,
        block_gas_target=ORDERS_PER_BLOCK * probe.gas.place,
        index_process=False,
        signature_processes=0,
        commit_process=commit_process,
    )
    node = Node.open(config, devnet_genesis(now_ms() - 1_000))
    params = node.params
    trader = _TraderCore(
        wallet_from_seed("devnet-1"),
        chain_id=params.chain_id,
        bridge_address=params.bridge_address,
        markets=node.markets,
    )
    return node, trader


def resting_sells(trader: _TraderCore, count: int) -> list[bytes]:
    """Resting sells at distinct prices (nothing trades; each is one order's base gas)."""
    return [
        trader.sign_action(trader.place_action("BTC-PERP", "sell", str(61_000 + i), "0.01"))
        for i in range(count)
    ]


def _block_sizes(node: Node, first: int) -> list[int]:
    return [
        len(node.store.get_block(height).transactions)
        for height in range(first, node.store.tip.height + 1)
    ]


def test_a_backlog_drains_in_blocks_of_the_target_size(tmp_path: Path) -> None:
    node, trader = open_node(tmp_path / "node")
    assert node.block_gas_budget == ORDERS_PER_BLOCK * node.params.gas.place
    first = node.store.tip.height + 1
    results = asyncio.run(node.submit(resting_sells(trader, 2 * ORDERS_PER_BLOCK + 1)))
    assert all("hash" in r for r in results), results
    for _ in range(3):
        node.produce_block()
    assert _block_sizes(node, first) == [ORDERS_PER_BLOCK, ORDERS_PER_BLOCK, 1]
    assert len(node.mempool) == 0
    node.close()


def test_the_target_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text('{"data_dir": "x", "block_gas_target": 0}')
    with pytest.raises(ValueError, match="block_gas_target"):
        read_config(path)

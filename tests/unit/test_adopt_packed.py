"""A tree moved by an update computed elsewhere ends as the tree that computed it
(``SparseMerkleTree.adopt_packed``, ``PackedNodes.replace_packed``, ``pack_update``): the
commitment process's updates leave the node's tree, its live table and its cache as if the node
had applied the changes itself."""

from __future__ import annotations

import random

import pytest

from strata.core.codec import encode
from strata.core.errors import ErrorCode, InvariantViolation
from strata.core.merkle import EMPTY
from strata.state.packed import PackedNodes, pack_update
from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.stf.block import compute_header_hash
from strata.stf.genesis import make_genesis
from strata.stf.transactions import PlaceOrder
from strata.stf.transition import UnsealedBlock, build_block, execute_block, seal_block
from tests.helpers.chain import GENESIS_MS, make_chain


def _tree() -> SparseMerkleTree:
    return SparseMerkleTree(MemoryNodeSource(), cache_nodes=1 << 10, live=PackedNodes())


def _records(tree: SparseMerkleTree) -> list[bytes]:
    live = tree.live
    assert live is not None
    rows = live.rows()
    return sorted(rows[at : at + 104] for at in range(0, len(rows), 104))


def test_adopting_packed_updates_gives_the_applying_tree() -> None:
    rng = random.Random(5)
    applying, adopting = _tree(), _tree()
    keys = [rng.randbytes(rng.randrange(1, 40)) for _ in range(600)]
    for height in range(1, 13):
        changes: dict[bytes, bytes | None] = {}
        for key in rng.sample(keys, 80):
            changes[key] = None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 90))
        applying.born = adopting.born = height
        for tree in (applying, adopting):
            tree.get_value_hash(keys[0])  # read through the cache, so stale nodes sit in it
        update = applying.apply(changes)
        nodes, stale = pack_update(update.new_nodes, update.stale_nodes)
        assert len(nodes) == 97 * len(update.new_nodes) and len(stale) == 32 * len(
            update.stale_nodes
        )
        adopting.adopt_packed(update.root, nodes, stale)
        assert adopting.root == applying.root
        assert _records(adopting) == _records(applying)  # hash, encoding and born alike
        assert adopting.take_released() == applying.take_released()
        assert adopting.cached_hashes() <= applying.cached_hashes() | set(update.new_nodes)
        assert not adopting.cached_hashes() & set(update.stale_nodes)
        for key in rng.sample(keys, 20):
            assert adopting.prove(key) == applying.prove(key)


def test_packed_updates_of_the_wrong_shape_change_nothing() -> None:
    tree = _tree()
    tree.apply({b"a": b"1"})
    before = (tree.root, _records(tree))
    live = tree.live
    assert live is not None
    with pytest.raises(ValueError, match="97 bytes"):
        live.replace_packed(b"x" * 96, b"", 1)
    with pytest.raises(ValueError, match="32"):
        live.replace_packed(b"", b"y" * 31, 1)
    with pytest.raises(ValueError, match="all-zero"):
        live.replace_packed(EMPTY + b"z" * 65, b"", 1)
    with pytest.raises(ValueError, match="live table"):
        SparseMerkleTree(MemoryNodeSource()).adopt_packed(EMPTY, b"", b"")
    assert (tree.root, _records(tree)) == before


def test_unsealed_blocks_seal_into_build_block_s_bytes() -> None:
    """Blocks executed one after another before any is sealed (an unsealed parent), then sealed
    in order, are ``build_block``'s blocks; ``build_block`` refuses an unsealed parent."""
    built, executed = make_chain(), make_chain()
    unsealed: list[UnsealedBlock] = []
    expected = []
    for height in range(1, 4):
        timestamp = GENESIS_MS + 200 * height
        txs = [
            built.tx("alice", PlaceOrder(1, True, 499_000 + height, 2)),
            built.tx("bob", PlaceOrder(1, False, 499_000 + height, 1)),
        ]
        expected.append(build_block(built.state, timestamp, (), txs, built.params))
        unsealed.append(execute_block(executed.state, timestamp, (), txs, executed.params))
        assert executed.state.tip.header_hash == b""
        assert unsealed[-1].output.header.state_root == b""
    with pytest.raises(InvariantViolation) as raised:
        build_block(executed.state, GENESIS_MS + 9_000, (), (), executed.params)
    assert raised.value.code == ErrorCode.UNSEALED_PARENT
    parent = make_genesis(executed.genesis)[0].tip.header_hash  # type: ignore[arg-type]
    for block, output in expected:
        sealed, sealed_output = seal_block(unsealed.pop(0), parent, block.header.state_root)
        assert encode(sealed) == encode(block) and encode(sealed_output) == encode(output)
        parent = compute_header_hash(sealed.header)

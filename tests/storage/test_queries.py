"""``ChainStore.read``: the value of a key at every retained height, with a proof that
``core.merkle.verify_proof`` accepts, equal to an in-memory replay; heights outside the window
are refused; pruning keeps exactly the nodes of the retained roots."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from strata.adapters.chain_store import ChainStore, StoreError
from strata.core.merkle import EMPTY, verify_proof
from strata.stf.transition import build_block
from tests.storage.chain import Replay, build_store, extend, replay
from tests.storage.workload import block_time, block_transactions

BLOCKS = 30
REFERENCE = replay(BLOCKS)


def _sample_keys(rng: random.Random, count: int) -> list[bytes]:
    """Keys that exist at some height (some later deleted or created), plus absent ones."""
    known = sorted({key for entries in REFERENCE.entries for key in entries})
    keys = rng.sample(known, min(count, len(known)))
    keys += [rng.randbytes(rng.choice((5, 13, 21))) for _ in range(8)]
    # Keys that change during the run are the interesting ones: add every one of them.
    changed = {
        key
        for before, after in zip(REFERENCE.entries, REFERENCE.entries[1:], strict=False)
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    }
    return sorted(set(keys) | changed)


def _check_window(store: ChainStore, reference: Replay, keys: list[bytes]) -> int:
    checked = 0
    for height in store.readable_heights():
        for key in keys:
            value, proof, root = store.read(key, height)
            assert root == reference.headers[height].state_root
            assert value == reference.entries[height].get(key), (key.hex(), height)
            assert verify_proof(root, key, value, proof), (key.hex(), height)
            checked += 1
    return checked


def _reachable(store: ChainStore, root: bytes) -> set[bytes]:
    found: set[bytes] = set()
    stack = [root]
    tree = store._tree()
    while stack:
        node = stack.pop()
        if node == EMPTY or node in found:
            continue
        found.add(node)
        encoding = tree.get_node(node)
        if encoding[0] == 1:
            stack += [encoding[1:33], encoding[33:]]
    return found


def test_read_every_retained_height_matches_replay(tmp_path: Path) -> None:
    rng = random.Random(3)
    keys = _sample_keys(rng, 40)
    store = build_store(tmp_path / "chain", 22, checkpoint_every=4, retain_heights=8)
    try:
        # Tip 22, checkpoint 20: heights 15..19 come from history, 20..22 from pending changes.
        assert list(store.readable_heights()) == list(range(15, 23))
        assert _check_window(store, REFERENCE, keys) == 8 * len(keys)
        _, _, root = store.read(keys[0])
        assert root == REFERENCE.headers[22].state_root
        for height in (14, 0, 23, -1):
            with pytest.raises(StoreError, match="outside the retained window"):
                store.read(keys[0], height)
        extend(store, BLOCKS)  # more checkpoints and pruning
        store.wait_for_checkpoint()
        assert list(store.readable_heights()) == list(range(23, 31))
        _check_window(store, REFERENCE, keys)
        with pytest.raises(StoreError, match=r"outside the retained window 23\.\.30"):
            store.read(keys[0], 22)
    finally:
        store.close()
    # After a restart the same window is served from LMDB alone.
    reopened = ChainStore.open(tmp_path / "chain", checkpoint_every=4, retain_heights=8)
    try:
        _check_window(reopened, REFERENCE, keys)
        # A wider window asked at open cannot reach below what pruning kept.
        assert reopened.readable_heights().start == 23
    finally:
        reopened.close()
    wide = ChainStore.open(tmp_path / "chain", checkpoint_every=4, retain_heights=100)
    try:
        assert wide.readable_heights().start == wide.pruned_height
        _check_window(wide, REFERENCE, keys)
    finally:
        wide.close()


def test_pruning_keeps_exactly_the_retained_roots(tmp_path: Path) -> None:
    """After a checkpoint the ``nodes`` database holds exactly the nodes reachable from the
    roots of the heights pruning kept: nothing missing, nothing leaked."""
    store = build_store(tmp_path / "chain", 26, checkpoint_every=4, retain_heights=6)
    try:
        store.checkpoint()
        assert store.checkpoint_height == 26
        oldest = store.pruned_height
        assert oldest == 26 - 6 - 1
        wanted: set[bytes] = set()
        for height in range(oldest, 27):
            wanted |= _reachable(store, REFERENCE.headers[height].state_root)
        with store._state_env.begin() as txn:
            records = {bytes(k): bytes(v) for k, v in txn.cursor(db=store._dbs[b"nodes"])}
        assert set(records) == wanted
        # Every record is ``encoding ‖ height`` (the last height that built the node).
        assert all(len(v) == 73 and int.from_bytes(v[65:], "big") <= 26 for v in records.values())
    finally:
        store.close()


def test_corrupt_history_value_is_refused_on_read(tmp_path: Path) -> None:
    """A value at an older height comes from ``history``; a damaged one does not match the
    tree's leaf and is refused, never returned."""
    store = build_store(tmp_path / "chain", 12, checkpoint_every=4, retain_heights=8)
    try:
        with store._state_env.begin(write=True) as txn:
            cursor = txn.cursor(db=store._dbs[b"history"])
            window = store.readable_heights()
            target = next(
                (bytes(k), bytes(v))
                for k, v in cursor
                if v[:1] == b"\x01" and int.from_bytes(k[:8], "big") - 1 in window
            )
            key, value = target
            height = int.from_bytes(key[:8], "big")
            damaged = value[:-1] + bytes([value[-1] ^ 1])
            txn.put(key, damaged, db=store._dbs[b"history"])
        assert height - 1 in store.readable_heights()
        with pytest.raises(StoreError, match="does not match the tree"):
            store.read(key[8:], height - 1)
    finally:
        store.close()


def test_live_table_holds_exactly_the_tip_tree(tmp_path: Path) -> None:
    """The tree's packed live table holds the nodes reachable from the tip's root and nothing
    else, after every block (a node a block makes stale moves to the spill) and after a
    restart; a committed checkpoint empties the spill."""
    store = build_store(tmp_path / "chain", 10, checkpoint_every=4, retain_heights=6)

    def check(checked: ChainStore) -> None:
        live = checked._tree().live
        assert live is not None
        wanted = _reachable(checked, REFERENCE.headers[checked.tip.height].state_root)
        assert len(live) == len(wanted)
        assert all(node in live for node in wanted)

    try:
        for height in range(11, 19):
            extend(store, height)
            check(store)
        assert store.memory_items()["pending_nodes"] > 0
        store.checkpoint()
        assert store.memory_items()["pending_nodes"] == 0
        check(store)
    finally:
        store.close()
    reopened = ChainStore.open(tmp_path / "chain", checkpoint_every=4, retain_heights=6)
    try:
        check(reopened)
    finally:
        reopened.close()


def test_no_checkpoint_while_a_block_is_applied_but_not_committed(tmp_path: Path) -> None:
    """The live table is the tree as the state has it: after a block is applied and not
    committed it is no longer the tip's, so a checkpoint is refused (and a graceful close
    skips it) instead of writing a tree the tip's root does not reach."""
    store = build_store(tmp_path / "chain", 6, checkpoint_every=100, retain_heights=8)
    try:
        assert store.memory_items()["pending_blocks"] == 6
        build_block(store.state, block_time(7), (), block_transactions(7), store.params)
        with pytest.raises(StoreError, match="applied to the state but not committed"):
            store.checkpoint()
    finally:
        store.close()
    reopened = ChainStore.open(tmp_path / "chain", checkpoint_every=100, retain_heights=8)
    try:
        assert reopened.tip.height == 6
        assert reopened.checkpoint_height == 0
        extend(reopened, 9)
        _, _, root = reopened.read(b"\x01")
        assert root == REFERENCE.headers[9].state_root
    finally:
        reopened.close()

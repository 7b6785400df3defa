"""Differential tests: the incremental tree (`strata.state.smt`) against the reference tree.

After every batch of a history (inserts, updates, deletes, deleting everything, re-inserting,
reverting to old values, single-key trees, keys whose paths share long prefixes) the incremental
root must equal `core.merkle.compute_root` of the full map, proofs must equal the reference's and
verify, `iter_leaves` must equal the reference's sorted leaves, `stale_nodes`/`new_nodes` must be
exactly the nodes that left/joined the reachable set, and a tree reopened from only the nodes the
pruning rule kept must give the same roots, proofs and leaves at every retained root.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core import merkle
from strata.core.merkle import (
    EMPTY,
    compute_common_prefix_bits,
    compute_leaf_hash,
    compute_root,
    compute_root_from_proof,
    verify_proof,
)
from strata.state.packed import PackedNodes
from strata.state.smt import (
    CorruptNodeError,
    MemoryNodeSource,
    MissingNodeError,
    SparseMerkleTree,
    TreeUpdate,
    compute_prunable,
)

# -- Keys whose paths share long prefixes ---------------------------------------------------------


def _path(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


@functools.cache
def prefix_keys() -> tuple[bytes, ...]:
    """Keys (4-byte big-endian integers) whose sha256 paths share 16 to ~34 leading bits.

    Brute force: hash 2**18 candidates, sort by path, keep the neighbours sharing >= 30 bits
    (about 2**35 / 2**30 = 32 such pairs are expected) and four 16-bit clusters of 5+ keys.
    """
    candidates = sorted((_path(i.to_bytes(4, "big")), i.to_bytes(4, "big")) for i in range(1 << 18))
    close: dict[bytes, None] = {}
    for (path_a, key_a), (path_b, key_b) in itertools.pairwise(candidates):
        if compute_common_prefix_bits(path_a, path_b) >= 30:
            close[key_a] = None
            close[key_b] = None
    clusters: dict[bytes, list[bytes]] = {}
    for path, key in candidates:
        clusters.setdefault(path[:2], []).append(key)
    big = [keys for keys in clusters.values() if len(keys) >= 8][:4]
    for keys in big:
        close.update(dict.fromkeys(keys))
    return tuple(close)


def test_prefix_keys_share_long_prefixes() -> None:
    keys = prefix_keys()
    paths = sorted(_path(key) for key in keys)
    shared = [compute_common_prefix_bits(a, b) for a, b in itertools.pairwise(paths)]
    assert 40 <= len(keys) <= 150
    assert max(shared) >= 32
    assert sum(bits >= 30 for bits in shared) >= 20


# -- The harness ----------------------------------------------------------------------------------


def _reference_leaves(items: Mapping[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return sorted((_path(key), hashlib.sha256(value).digest()) for key, value in items.items())


def _reachable(nodes: Mapping[bytes, bytes], root: bytes) -> set[bytes]:
    """Every node hash reachable from ``root`` in ``nodes`` (EMPTY excluded)."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node == EMPTY or node in seen:
            continue
        seen.add(node)
        encoding = nodes[node]
        if encoding[0] == 1:
            stack += [encoding[1:33], encoding[33:]]
    return seen


def check_tree_matches(
    tree: SparseMerkleTree,
    root: bytes,
    items: Mapping[bytes, bytes],
    probe_keys: list[bytes],
) -> None:
    """``tree`` read at ``root`` holds exactly ``items``: root, leaves, proofs, value hashes."""
    assert root == compute_root(items)
    assert list(tree.iter_leaves(root)) == _reference_leaves(items)
    for key in probe_keys:
        proof = tree.prove(key, root)
        assert proof == merkle.prove(items, key)
        value = items.get(key)
        assert verify_proof(root, key, value, proof)
        if value is None:
            assert tree.get_value_hash(key, root) is None
            assert not verify_proof(root, key, b"not there", proof)
        else:
            assert tree.get_value_hash(key, root) == hashlib.sha256(value).digest()
            assert not verify_proof(root, key, None, proof)


class History:
    """Drives a tree through batches and checks it, the updates and the pruning rule each step.

    The store (``source``) receives every ``new_nodes`` and loses the nodes the pruning rule
    releases once the root they were staled from leaves the window of ``retain`` roots.
    """

    def __init__(self, rng: random.Random, retain: int = 3, cache_nodes: int = 64) -> None:
        self.rng = rng
        self.retain = retain
        self.source = MemoryNodeSource()
        self.tree = SparseMerkleTree(self.source, cache_nodes=cache_nodes)
        self.items: dict[bytes, bytes] = {}
        self.height = 0
        self.roots: dict[int, tuple[bytes, dict[bytes, bytes]]] = {0: (EMPTY, {})}
        self.created_at: dict[bytes, int] = {}
        self.stale_at: dict[int, list[bytes]] = {}
        self.all_nodes: dict[bytes, bytes] = {}  # every node ever built (for reachability)
        self.pruned = 0
        self.seen_keys: set[bytes] = set()

    def step(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        old_root = self.tree.root
        update = self.tree.apply(changes)
        for key, value in changes.items():
            self.seen_keys.add(key)
            if value is None:
                self.items.pop(key, None)
            else:
                self.items[key] = value
        self.height += 1
        self.check_update(old_root, update)
        # Persist, then let the tree read through the store only.
        self.source.put_nodes(update.new_nodes)
        self.tree.mark_persisted()
        for node in update.new_nodes:
            self.created_at[node] = self.height
        self.stale_at[self.height] = list(update.stale_nodes)
        self.roots[self.height] = (update.root, dict(self.items))
        self.prune()
        self.check_current()
        # The cache holds live nodes only: an update evicts what it makes stale (and the probes
        # above read the current root alone).
        assert self.tree.cached_hashes() <= _reachable(self.all_nodes, update.root)
        return update

    def check_update(self, old_root: bytes, update: TreeUpdate) -> None:
        assert update.root == self.tree.root
        self.all_nodes.update(update.new_nodes)
        assert EMPTY not in update.new_nodes and EMPTY not in update.stale_nodes
        assert len(set(update.stale_nodes)) == len(update.stale_nodes)
        for node, encoding in update.new_nodes.items():
            assert len(encoding) == 65 and hashlib.sha256(encoding).digest() == node
        old = _reachable(self.all_nodes, old_root)
        new = _reachable(self.all_nodes, update.root)
        assert set(update.stale_nodes) == old - new
        assert new - old <= set(update.new_nodes) <= new

    def prune(self) -> None:
        oldest = self.height - self.retain + 1
        for height in [h for h in self.roots if h < oldest]:
            del self.roots[height]
        prunable = compute_prunable(self.stale_at, self.created_at, oldest)
        for height in [h for h in self.stale_at if h <= oldest]:
            del self.stale_at[height]
        for node in prunable:
            del self.created_at[node]
        self.source.delete_nodes(prunable)
        self.pruned += len(prunable)
        # Nothing a retained root reaches was pruned, and nothing else is kept forever.
        kept = set(self.source.nodes)
        reachable = set().union(*(_reachable(self.all_nodes, r) for r, _ in self.roots.values()))
        assert reachable <= kept
        pending_stale = {node for nodes in self.stale_at.values() for node in nodes}
        assert kept - reachable <= pending_stale

    def probe_keys(self, items: Mapping[bytes, bytes]) -> list[bytes]:
        present = sorted(items)
        absent = [*sorted(self.seen_keys - set(items)), b"never-written"]
        return self.rng.sample(present, min(4, len(present))) + self.rng.sample(
            absent, min(3, len(absent))
        )

    def check_current(self) -> None:
        check_tree_matches(self.tree, self.tree.root, self.items, self.probe_keys(self.items))
        # A tree reopened from the store alone (no pending nodes, cold cache) at each retained root.
        reopened = SparseMerkleTree(MemoryNodeSource(self.source.nodes), cache_nodes=0)
        for root, items in self.roots.values():
            check_tree_matches(reopened, root, items, self.probe_keys(items))
            assert SparseMerkleTree(self.source, root).root == root


def random_batch(
    rng: random.Random, pool: list[bytes], items: Mapping[bytes, bytes], size: int
) -> dict[bytes, bytes | None]:
    """Inserts, updates, deletes and no-ops; values from a small alphabet so values revert."""
    changes: dict[bytes, bytes | None] = {}
    for _ in range(size):
        roll = rng.random()
        if roll < 0.3 and items:
            changes[rng.choice(sorted(items))] = None
        elif roll < 0.35:
            changes[rng.choice(pool)] = None  # often absent: a no-op delete
        else:
            changes[rng.choice(pool)] = rng.choice([b"a", b"b", b"c", b""])
    return changes


def run_history(seed: int, steps: int, retain: int, cache_nodes: int) -> History:
    rng = random.Random(seed)
    pool = [f"key-{i}".encode() for i in range(48)] + list(prefix_keys())
    history = History(rng, retain=retain, cache_nodes=cache_nodes)
    for step in range(steps):
        phase = step % 40
        if phase == 30:  # delete everything
            history.step(dict.fromkeys(history.items))
            assert history.tree.root == EMPTY
        elif phase == 31:  # a single-key tree
            history.step({rng.choice(pool): b"solo"})
        elif phase == 32:  # revert: restore the map of a few steps ago (as far as retained)
            past = history.roots[min(history.roots)][1]
            changes: dict[bytes, bytes | None] = dict.fromkeys(history.items)
            changes.update(past)
            history.step(changes)
        else:
            history.step(random_batch(rng, pool, history.items, rng.choice([1, 1, 2, 5, 20, 60])))
    return history


@pytest.mark.parametrize(("seed", "retain", "cache_nodes"), [(1, 1, 0), (2, 3, 64), (3, 5, 7)])
def test_seeded_histories(seed: int, retain: int, cache_nodes: int) -> None:
    history = run_history(seed, steps=90, retain=retain, cache_nodes=cache_nodes)
    assert history.pruned > 0


@pytest.mark.long
@pytest.mark.parametrize("seed", range(10, 16))
def test_seeded_histories_long(seed: int) -> None:
    run_history(seed, steps=800, retain=1 + seed % 4, cache_nodes=seed * 13 % 100)


_KEYS = st.sampled_from([f"k{i}".encode() for i in range(24)] + list(prefix_keys()[:24]))
_BATCH = st.dictionaries(_KEYS, st.one_of(st.none(), st.sampled_from([b"x", b"y", b"z"])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(_BATCH, max_size=12), retain=st.integers(1, 3), seed=st.integers(0, 9))
def test_hypothesis_histories(
    batches: list[dict[bytes, bytes | None]], retain: int, seed: int
) -> None:
    history = History(random.Random(seed), retain=retain, cache_nodes=seed * 3)
    for changes in batches:
        history.step(changes)


# -- Edge cases -----------------------------------------------------------------------------------


def test_empty_tree() -> None:
    tree = SparseMerkleTree(MemoryNodeSource())
    assert tree.root == EMPTY
    assert list(tree.iter_leaves()) == []
    assert tree.prove(b"x") == merkle.prove({}, b"x")
    assert verify_proof(EMPTY, b"x", None, tree.prove(b"x"))
    assert tree.get_value_hash(b"x") is None
    update = tree.apply({})
    assert update == TreeUpdate(root=EMPTY, new_nodes={}, stale_nodes=[])
    assert tree.apply({b"x": None}) == TreeUpdate(root=EMPTY, new_nodes={}, stale_nodes=[])


def test_single_key_insert_and_delete() -> None:
    tree = SparseMerkleTree(MemoryNodeSource())
    first = tree.apply({b"only": b"1"})
    leaf = compute_leaf_hash(_path(b"only"), hashlib.sha256(b"1").digest())
    assert first.root == leaf == compute_root({b"only": b"1"})
    assert list(first.new_nodes) == [leaf] and first.stale_nodes == []
    assert tree.prove(b"other") == merkle.prove({b"only": b"1"}, b"other")
    same = tree.apply({b"only": b"1"})  # writing the same value changes nothing
    assert same == TreeUpdate(root=leaf, new_nodes={}, stale_nodes=[])
    gone = tree.apply({b"only": None})
    assert gone == TreeUpdate(root=EMPTY, new_nodes={}, stale_nodes=[leaf])


def test_revert_recreates_nodes_and_rule_keeps_them() -> None:
    """k: a -> b -> a. The leaf (k, a) is staled at height 2 and re-created at height 3: a
    store that deleted every stale node once its old root left the window would lose it."""
    history = History(random.Random(0), retain=1, cache_nodes=0)
    history.step({b"k": b"a", b"j": b"j"})
    leaf_a = compute_leaf_hash(_path(b"k"), hashlib.sha256(b"a").digest())
    second = history.step({b"k": b"b"})
    assert leaf_a in second.stale_nodes
    third = history.step({b"k": b"a"})
    assert leaf_a in third.new_nodes  # listed even though the store may still hold it
    assert history.created_at[leaf_a] == 3
    # Height 2's stale record is decided once height 2 is the oldest root retained (it is now):
    # the rule keeps leaf_a, which the current root reaches.
    assert leaf_a in history.source.nodes
    assert compute_prunable({2: [leaf_a]}, {leaf_a: 3}, 3) == set()
    assert compute_prunable({2: [leaf_a]}, {leaf_a: 1}, 3) == {leaf_a}
    assert compute_prunable({4: [leaf_a]}, {leaf_a: 1}, 3) == set()  # undecided yet
    history.step({b"k": b"c"})
    history.step({b"j": b"j2"})
    assert leaf_a not in history.source.nodes  # staled again at 4, released by that record


def test_delete_everything_and_reinsert() -> None:
    history = History(random.Random(5), retain=2)
    items = {f"x{i}".encode(): bytes([i]) for i in range(30)}
    first = history.step(items)
    history.step(dict.fromkeys(items))
    assert history.tree.root == EMPTY
    again = history.step(items)
    assert again.root == first.root
    assert again.new_nodes == first.new_nodes


def test_prefix_keys_one_at_a_time() -> None:
    """Keys sharing 30+ bits, inserted and deleted one per block: the single-change path walks
    deep chains of internal nodes with an empty side and pulls leaves back up."""
    history = History(random.Random(7), retain=2, cache_nodes=0)
    keys = list(prefix_keys())
    for key in keys:
        history.step({key: key})
    for key in reversed(keys[::2]):
        history.step({key: None})
    for key in keys[1::2]:
        history.step({key: None})
    assert history.tree.root == EMPTY


# -- The update at the path level: prefixes of any length -----------------------------------------


def _reference_root_of_leaves(leaves: dict[bytes, bytes]) -> bytes:
    ordered = sorted(leaves.items())
    return merkle._subtree_hash(ordered, 0, len(ordered), 0)


def _random_path_sharing(rng: random.Random, base: bytes, bits: int) -> bytes:
    """A path equal to ``base`` on its first ``bits`` bits and different at bit ``bits``."""
    number = int.from_bytes(base, "big")
    flipped = number ^ (1 << (255 - bits))
    low = rng.getrandbits(255 - bits) if bits < 255 else 0
    mask = (1 << (255 - bits)) - 1
    return ((flipped & ~mask) | low).to_bytes(32, "big")


def test_paths_sharing_up_to_255_bits() -> None:
    rng = random.Random(11)
    source = MemoryNodeSource()
    tree = SparseMerkleTree(source, cache_nodes=0)
    leaves: dict[bytes, bytes] = {}
    base = rng.randbytes(32)
    family = [base] + [_random_path_sharing(rng, base, bits) for bits in (1, 8, 64, 200, 254, 255)]
    family += [_random_path_sharing(rng, family[-1], 250), rng.randbytes(32)]
    for step in range(200):
        changes: dict[bytes, bytes | None] = {}
        for path in rng.sample(family, rng.randint(1, 4)):
            changes[path] = None if rng.random() < 0.35 else rng.randbytes(32)
        update = tree.apply_paths(changes)
        source.put_nodes(update.new_nodes)
        tree.mark_persisted()
        for path, value_hash in changes.items():
            if value_hash is None:
                leaves.pop(path, None)
            else:
                leaves[path] = value_hash
        assert update.root == _reference_root_of_leaves(leaves), step
        assert list(tree.iter_leaves()) == sorted(leaves.items())
        for path in family:
            proof = tree.prove_path(path)
            if path in leaves:
                bottom = compute_leaf_hash(path, leaves[path])
                assert proof.leaf is None
            elif proof.leaf is None:
                bottom = EMPTY
            else:
                bottom = compute_leaf_hash(*proof.leaf)
                assert compute_common_prefix_bits(proof.leaf[0], path) >= len(proof.siblings)
            assert compute_root_from_proof(path, bottom, proof.siblings) == update.root


def test_apply_paths_rejects_bad_lengths() -> None:
    tree = SparseMerkleTree(MemoryNodeSource())
    with pytest.raises(ValueError):
        tree.apply_paths({b"short": None})
    with pytest.raises(ValueError):
        tree.apply_paths({bytes(32): b"short"})
    assert tree.root == EMPTY


# -- Store faults ---------------------------------------------------------------------------------


def test_missing_and_corrupt_nodes_leave_the_tree_unchanged() -> None:
    source = MemoryNodeSource()
    tree = SparseMerkleTree(source)
    items = {f"m{i}".encode(): b"v" for i in range(20)}
    update = tree.apply(items)
    source.put_nodes(update.new_nodes)
    root = update.root
    victim = next(iter(_reachable(update.new_nodes, root) - {root}))

    missing = MemoryNodeSource({h: e for h, e in update.new_nodes.items() if h != victim})
    tree = SparseMerkleTree(missing, root)
    with pytest.raises(MissingNodeError):
        tree.apply({key: b"w" for key in items})
    assert tree.root == root
    with pytest.raises(MissingNodeError):
        list(tree.iter_leaves())

    corrupt = dict(update.new_nodes)
    corrupt[victim] = corrupt[victim][:-1] + bytes([corrupt[victim][-1] ^ 1])
    tree = SparseMerkleTree(MemoryNodeSource(corrupt), root)
    with pytest.raises(CorruptNodeError):
        list(tree.iter_leaves())
    assert tree.root == root


@pytest.mark.parametrize(("seed", "keys"), [(21, 3), (22, 40), (23, 3000)])
def test_live_table_walks_give_the_reference_proofs(seed: int, keys: int) -> None:
    """With a live table, a walk at the current root takes the top levels from strings made
    once the root has served ``top_after_reads`` walks (16 here), and the rest from the table:
    the proofs before and after those exist, at the current root and at older ones, are the
    reference's. Sizes where the top levels end early (a leaf or ``EMPTY`` high up: 3 and 40
    keys) and deep (3,000 keys), with keys sharing long prefixes."""
    rng = random.Random(seed)
    tree = SparseMerkleTree(
        MemoryNodeSource(), cache_nodes=64, live=PackedNodes(), top_after_reads=16
    )
    source = MemoryNodeSource()
    plain = SparseMerkleTree(source, cache_nodes=0)
    values: dict[bytes, bytes] = {}
    older: list[tuple[bytes, dict[bytes, bytes]]] = []
    pool = [rng.randbytes(8) for _ in range(keys)] + list(prefix_keys()[:4])
    for height in range(1, 5):
        changes: dict[bytes, bytes | None] = {
            key: None if key in values and rng.random() < 0.2 else rng.randbytes(4)
            for key in rng.sample(pool, max(1, len(pool) // 2))
        }
        tree.born = height
        update = tree.apply(changes)
        plain_update = plain.apply(changes)
        source.put_nodes(plain_update.new_nodes)
        plain.mark_persisted()
        assert update.root == plain_update.root
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        probes = rng.sample(pool, min(len(pool), 30)) + [rng.randbytes(8) for _ in range(50)]
        for key in probes * 2:  # the second round walks through the top levels
            assert tree.prove(key) == merkle.prove(values, key)
        if keys >= 3000:
            top = tree._top_levels()
            assert top is not None and len(top) > 8
        older.append((tree.root, dict(values)))
    # Older roots (their nodes released by the table, kept by the tree) are walked without them.
    for root, then in older[:-1]:
        for key in pool[:10]:
            assert tree.prove(key, root) == merkle.prove(then, key)


def test_top_levels_follow_the_root() -> None:
    """The strings are made for one root: after an update they are made again before use."""
    rng = random.Random(5)
    tree = SparseMerkleTree(
        MemoryNodeSource(), cache_nodes=64, live=PackedNodes(), top_after_reads=16
    )
    values = {rng.randbytes(8): rng.randbytes(4) for _ in range(500)}
    tree.apply(values)
    for _ in range(16):
        tree.prove(b"x")
    first = tree._top_levels()
    assert first is not None and first[0] == tree.root
    changed = dict.fromkeys(rng.sample(sorted(values), 50), b"new")
    tree.apply(changed)
    values.update(changed)
    assert tree._top_levels() is None  # a new root: walks count again
    for key in list(values)[: 16 + 5]:
        assert tree.prove(key) == merkle.prove(values, key)
    second = tree._top_levels()
    assert second is not None and second[0] == tree.root != first[0]

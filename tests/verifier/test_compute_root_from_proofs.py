"""``core.merkle.compute_root_from_proofs`` against the full reference tree.

The contract: from the old root and proofs of the changed keys (plus the openings it asks for),
the new root equals ``compute_root`` of the changed map; with fewer proofs it raises, and never
returns a wrong root. Random maps and change sets (Hypothesis), plus keys chosen to share long path
prefixes, so inserts split compressed leaves deep down and deletes re-compress across runs of
nodes with an empty side.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core.merkle import (
    EMPTY,
    IncompleteProofsError,
    SparseMerkleProof,
    compute_common_prefix_bits,
    compute_path,
    compute_root,
    compute_root_from_proofs,
    prove,
)


def _clustered_keys() -> list[bytes]:
    """Keys in groups of three whose paths share their first 12 bits (or more)."""
    buckets: dict[int, list[bytes]] = {}
    for i in range(12_000):
        key = b"k" + i.to_bytes(4, "big")
        buckets.setdefault(int.from_bytes(compute_path(key)[:2], "big") >> 4, []).append(key)
    groups = [keys[:3] for keys in buckets.values() if len(keys) >= 3]
    return [key for group in groups[:8] for key in group]


CLUSTERED = _clustered_keys()
POOL = CLUSTERED + [b"p" + bytes([i]) for i in range(24)]

Proven = dict[bytes, tuple[bytes | None, SparseMerkleProof]]


def _proven(items: Mapping[bytes, bytes], keys: set[bytes]) -> Proven:
    return {key: (items.get(key), prove(items, key)) for key in keys}


def _apply(items: dict[bytes, bytes], changes: Mapping[bytes, bytes | None]) -> dict[bytes, bytes]:
    after = dict(items)
    for key, value in changes.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    return after


def _root_with_openings(
    items: dict[bytes, bytes], changes: Mapping[bytes, bytes | None]
) -> tuple[bytes, int]:
    """Start from proofs of the changed keys; open each subtree asked for by proving a key under
    it (as the fraud-proof builder does). Returns the root and how many openings it took."""
    pre_root = compute_root(items)
    proven = _proven(items, set(changes))
    openings = 0
    while True:
        try:
            return compute_root_from_proofs(pre_root, proven, changes), openings
        except IncompleteProofsError as missing:
            shift = 256 - missing.depth
            target = int.from_bytes(missing.path, "big") >> shift
            under = [k for k in items if int.from_bytes(compute_path(k), "big") >> shift == target]
            assert under, "asked to open a subtree that holds no key"
            assert under[0] not in proven
            proven[under[0]] = (items[under[0]], prove(items, under[0]))
            openings += 1
            assert openings <= len(changes)


values = st.binary(min_size=0, max_size=3)
maps = st.dictionaries(st.sampled_from(POOL), values, max_size=30)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[bytes, bytes], dict[bytes, bytes | None]]:
    items = draw(maps)
    changes = draw(st.dictionaries(st.sampled_from(POOL), st.none() | values, max_size=12))
    return items, changes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_equals_the_reference_tree(
    scenario: tuple[dict[bytes, bytes], dict[bytes, bytes | None]],
) -> None:
    items, changes = scenario
    root, _ = _root_with_openings(items, changes)
    assert root == compute_root(_apply(items, changes))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.data())
def test_never_returns_a_wrong_root(
    scenario: tuple[dict[bytes, bytes], dict[bytes, bytes | None]], data: st.DataObject
) -> None:
    """With any subset of proofs (changed keys or not), the result is right or an exception."""
    items, changes = scenario
    keys = data.draw(st.sets(st.sampled_from(POOL), max_size=12))
    try:
        root = compute_root_from_proofs(compute_root(items), _proven(items, keys), changes)
    except IncompleteProofsError:
        return
    assert root == compute_root(_apply(items, changes))


def test_an_insert_splits_a_compressed_leaf_deep_down() -> None:
    a, b, c = CLUSTERED[:3]
    assert len(CLUSTERED) == 24
    assert compute_common_prefix_bits(compute_path(a), compute_path(b)) >= 12
    items = {a: b"a", b"p\x01": b"x"}
    for changes in ({b: b"b"}, {b: b"b", c: b"c"}, {b: b"b", a: None}):
        root, openings = _root_with_openings(items, changes)
        assert root == compute_root(_apply(items, changes))
        assert openings == 0


def test_a_delete_re_compresses_and_asks_for_the_sibling() -> None:
    a, b, c = CLUSTERED[:3]
    items = {a: b"a", b: b"b", b"p\x01": b"x", b"p\x02": b"y"}
    pre_root = compute_root(items)
    # The leaf left alone must be pulled up past the run of nodes with an empty side, but a hash
    # does not tell a leaf from a node: the function asks rather than guess.
    with pytest.raises(IncompleteProofsError) as asked:
        compute_root_from_proofs(pre_root, _proven(items, {a}), {a: None})
    shift = 256 - asked.value.depth
    assert int.from_bytes(asked.value.path, "big") >> shift == (
        int.from_bytes(compute_path(b), "big") >> shift
    )
    root = compute_root_from_proofs(pre_root, _proven(items, {a, b}), {a: None})
    assert root == compute_root(_apply(items, {a: None}))
    # All three in one cluster, two deleted.
    items[c] = b"c"
    changes: dict[bytes, bytes | None] = {a: None, b: None}
    root, openings = _root_with_openings(items, changes)
    assert root == compute_root(_apply(items, changes)) and openings == 1


def test_delete_everything_and_insert_into_empty() -> None:
    items = {key: key for key in POOL[:5]}
    changes: dict[bytes, bytes | None] = dict.fromkeys(items)
    root, _ = _root_with_openings(items, changes)
    assert root == EMPTY
    inserted: dict[bytes, bytes | None] = {b"p\x05": b"v", b"p\x06": b"w"}
    assert _root_with_openings({}, inserted)[0] == compute_root({b"p\x05": b"v", b"p\x06": b"w"})


def test_no_changes_give_the_old_root() -> None:
    items = {b"p\x01": b"x"}
    root = compute_root(items)
    assert compute_root_from_proofs(root, {}, {}) == root
    assert compute_root_from_proofs(root, _proven(items, {b"p\x01"}), {}) == root


def test_a_changed_key_without_proof_is_refused() -> None:
    items = {b"p\x01": b"x", b"p\x02": b"y"}
    with pytest.raises(IncompleteProofsError, match="no proof"):
        compute_root_from_proofs(compute_root(items), _proven(items, {b"p\x01"}), {b"p\x03": b"z"})


def test_a_proof_that_does_not_verify_is_refused() -> None:
    items = {b"p\x01": b"x", b"p\x02": b"y"}
    root = compute_root(items)
    wrong_value: Proven = {b"p\x01": (b"not x", prove(items, b"p\x01"))}
    with pytest.raises(ValueError, match="does not verify"):
        compute_root_from_proofs(root, wrong_value, {b"p\x01": None})
    other_root = compute_root({b"p\x01": b"x"})
    with pytest.raises(ValueError, match="does not verify"):
        compute_root_from_proofs(other_root, _proven(items, {b"p\x01"}), {b"p\x01": b"q"})

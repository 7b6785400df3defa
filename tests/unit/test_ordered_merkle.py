"""The ordered (RFC 6962) Merkle tree of block lists, against an independent recursive reference."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core import ordered_merkle
from strata.core.ordered_merkle import (
    compute_list_leaf_hash,
    compute_ordered_root,
    compute_ordered_root_of_leaves,
    compute_tree_hash,
    prove_list_item,
    verify_list_proof,
)
from strata.stf.transactions import compute_transaction_hash


def reference_mth(items: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC states it (split at the largest power of two)."""
    if not items:
        return hashlib.sha256(b"").digest()
    if len(items) == 1:
        return hashlib.sha256(b"\x00" + items[0]).digest()
    k = 1
    while k * 2 < len(items):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(items[:k]) + reference_mth(items[k:])).digest()


def test_known_rfc6962_values() -> None:
    # The empty tree and the leaf of the empty string, as Certificate Transparency defines them.
    assert compute_tree_hash([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert compute_list_leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=12), max_size=40))
def test_tree_hash_matches_reference(items: list[bytes]) -> None:
    assert compute_tree_hash(items) == reference_mth(items)


def test_length_is_committed_no_duplicate_leaf_ambiguity() -> None:
    a, b, c = b"a", b"b", b"c"
    assert compute_ordered_root([a, b, c]) != compute_ordered_root([a, b, c, c])
    assert compute_ordered_root([]) != compute_ordered_root([b""])
    assert compute_ordered_root([a, b]) != compute_ordered_root([b, a])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=33), st.data())
def test_every_item_proves_and_mutations_fail(items: list[bytes], data: st.DataObject) -> None:
    root = compute_ordered_root(items)
    index = data.draw(st.integers(0, len(items) - 1))
    path = prove_list_item(items, index)
    n = len(items)
    assert verify_list_proof(root, index, n, items[index], path)
    assert not verify_list_proof(root, index, n, items[index] + b"x", path)
    assert not verify_list_proof(root, index, n + 1, items[index], path)
    if n > 1:
        other = (index + 1) % n
        assert not verify_list_proof(root, other, n, items[index], path) or (
            items[other] == items[index] and prove_list_item(items, other) == path
        )
        assert not verify_list_proof(root, index, n, items[index], path[:-1])
    assert not verify_list_proof(root, index, n, items[index], (*path, bytes(32)))
    if path:
        flipped = bytes([path[0][0] ^ 1]) + path[0][1:]
        assert not verify_list_proof(root, index, n, items[index], (flipped, *path[1:]))


def test_node_cannot_pass_as_leaf() -> None:
    items = [b"a", b"b", b"c", b"d"]
    root = compute_ordered_root(items)
    left = hashlib.sha256(
        b"\x01" + compute_list_leaf_hash(b"a") + compute_list_leaf_hash(b"b")
    ).digest()
    # Present the inner node's preimage as if it were an item of a 2-item list.
    forged_item = compute_list_leaf_hash(b"a") + compute_list_leaf_hash(b"b")
    assert not verify_list_proof(root, 0, 2, forged_item, (left,))
    assert not verify_list_proof(root, 0, 4, forged_item, prove_list_item(items, 0))


def test_malformed_inputs_are_false_not_errors() -> None:
    root = compute_ordered_root([b"x"])
    assert verify_list_proof(root, 0, 1, b"x", ())
    assert not verify_list_proof(root, -1, 1, b"x", ())
    assert not verify_list_proof(root, 1, 1, b"x", ())
    assert not verify_list_proof(root[:31], 0, 1, b"x", ())
    assert not verify_list_proof(root, 0, 2, b"x", (b"short",))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=150), max_size=40))
def test_root_of_leaves_is_the_root_of_the_items(items: list[bytes]) -> None:
    """A block's transactions root is computed from its transactions' ids: each id is the
    transaction's leaf hash, so the root is the one over the transactions themselves."""
    ids = [compute_transaction_hash(item) for item in items]
    assert ids == [hashlib.sha256(b"\x00" + item).digest() for item in items]
    assert ids == [compute_list_leaf_hash(item) for item in items]
    assert compute_ordered_root_of_leaves(ids) == compute_ordered_root(items)


def test_root_of_leaves_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python definition (without the C extension) gives the same roots and refuses a leaf
    hash that is not 32 bytes."""
    monkeypatch.setattr(ordered_merkle, "native_tree_hash_of_leaves", None)
    for n in range(12):
        items = [bytes([i]) * i for i in range(n)]
        leaves = [compute_list_leaf_hash(item) for item in items]
        assert compute_ordered_root_of_leaves(leaves) == compute_ordered_root(items)
    with pytest.raises(ValueError, match="32 bytes"):
        compute_ordered_root_of_leaves([bytes(31)])

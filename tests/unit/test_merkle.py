"""Tests for the reference sparse Merkle tree (`strata.core.merkle`).

Rungs: golden vectors derived by a second, independent construction; order independence;
Hypothesis properties (a proof verifies if and only if the claim is true, single-byte mutations
fail); the `merkle_ambiguity` cases of the test plan (Bitcoin CVE-2012-2459 and friends); and the
proof codec (round trip, garbage rejected with ValueError, verify never raises).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping
from types import SimpleNamespace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from strata import compiled
from strata.core import merkle
from strata.core.merkle import (
    EMPTY,
    LIST_LENGTH_KEY,
    SparseMerkleProof,
    compute_list_entries,
    compute_list_root,
    compute_root,
    compute_root_from_pairs,
    compute_root_from_proof,
    decode_proof,
    encode_proof,
    get_list_item_key,
    prove,
    verify_proof,
)

# -- An independent construction ------------------------------------------------------------------
# Written from the spec without the module's helpers: every leaf starts at depth 256 of a full
# binary tree whose absent nodes are empty; the levels are folded bottom-up on integer indices, and
# the compression rule (a subtree holding one leaf *is* that leaf) is applied at every level.


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _ref_leaf(key: bytes, value: bytes) -> bytes:
    return _sha256(b"\x00" + _sha256(key) + _sha256(value))


def _ref_node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def _ref_bits(path: bytes) -> str:
    return "".join(format(byte, "08b") for byte in path)


def _ref_shared_bits(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(_ref_bits(a), _ref_bits(b))) if x != y), 256)


def _reference_root(items: Mapping[bytes, bytes]) -> bytes:
    # index -> (hash, holds exactly one leaf)
    level: dict[int, tuple[bytes, bool]] = {
        int.from_bytes(_sha256(key), "big"): (_ref_leaf(key, value), True)
        for key, value in items.items()
    }
    for _ in range(256):
        parents: dict[int, tuple[bytes, bool]] = {}
        for index in sorted({child >> 1 for child in level}):
            left = level.get(2 * index)
            right = level.get(2 * index + 1)
            if right is None and left is not None and left[1]:
                parents[index] = left
            elif left is None and right is not None and right[1]:
                parents[index] = right
            else:
                left_hash = bytes(32) if left is None else left[0]
                right_hash = bytes(32) if right is None else right[0]
                parents[index] = (_ref_node(left_hash, right_hash), False)
        level = parents
    return level[0][0] if level else bytes(32)


# -- Golden vectors -------------------------------------------------------------------------------

GOLDEN_ITEMS: dict[bytes, bytes] = {b"alpha": b"1", b"bravo": b"2", b"charlie": b"3"}
# Frozen once from compute_root and cross-checked below by two other constructions.
GOLDEN_ROOT_HEX = "580eae4b5510fb58695e39dcb93d1b693bd701cb3b13e7f602f1ba5b23c13a11"
# encode_proof(prove(GOLDEN_ITEMS, b"alpha")): kind 0, then 3 siblings:
# EMPTY, leaf(bravo), leaf(charlie).
GOLDEN_ALPHA_PROOF_HEX = (
    "000003"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "04e51e974622c6b558a2592e58eafa028e308763526c9e02cdd547dceedb5334"
    "7f9567a31888544114f5499457693d366741dd8db4afcfe207e86aa8a466ecb9"
)


def test_empty_map_root_is_32_zero_bytes() -> None:
    assert compute_root({}) == bytes(32) == EMPTY
    assert compute_root_from_pairs([]) == EMPTY
    assert _reference_root({}) == EMPTY


def test_single_item_root_is_its_leaf_hash() -> None:
    expected = _sha256(b"\x00" + _sha256(b"key") + _sha256(b"value"))
    assert compute_root({b"key": b"value"}) == expected
    assert _reference_root({b"key": b"value"}) == expected


def test_golden_three_item_root() -> None:
    root = compute_root(GOLDEN_ITEMS)
    assert root.hex() == GOLDEN_ROOT_HEX
    assert _reference_root(GOLDEN_ITEMS) == root
    # Third derivation, by hand: the paths start 1000.. (alpha), 1111.. (bravo), 1011.. (charlie),
    # so the root's left side is empty, bravo splits off at depth 1 and alpha/charlie at depth 2.
    assert [_sha256(key)[0] >> 4 for key in GOLDEN_ITEMS] == [0b1000, 0b1111, 0b1011]
    alpha, bravo, charlie = (_ref_leaf(key, value) for key, value in GOLDEN_ITEMS.items())
    assert _ref_node(bytes(32), _ref_node(_ref_node(alpha, charlie), bravo)) == root


def test_golden_proofs() -> None:
    root = bytes.fromhex(GOLDEN_ROOT_HEX)
    alpha_proof = prove(GOLDEN_ITEMS, b"alpha")
    assert encode_proof(alpha_proof).hex() == GOLDEN_ALPHA_PROOF_HEX
    assert alpha_proof.siblings == (
        bytes(32),
        _ref_leaf(b"bravo", b"2"),
        _ref_leaf(b"charlie", b"3"),
    )
    assert verify_proof(root, b"alpha", b"1", decode_proof(bytes.fromhex(GOLDEN_ALPHA_PROOF_HEX)))
    # absent-0 starts with bit 0: the root's empty left side. absent-3 starts 110..: bravo's spot.
    empty_side = prove(GOLDEN_ITEMS, b"absent-0")
    assert empty_side == SparseMerkleProof(
        siblings=(
            _ref_node(
                _ref_node(_ref_leaf(b"alpha", b"1"), _ref_leaf(b"charlie", b"3")),
                _ref_leaf(b"bravo", b"2"),
            ),
        ),
        leaf=None,
    )
    occupied = prove(GOLDEN_ITEMS, b"absent-3")
    assert occupied.leaf == (_sha256(b"bravo"), _sha256(b"2"))
    assert len(occupied.siblings) == 2
    assert verify_proof(root, b"absent-0", None, empty_side)
    assert verify_proof(root, b"absent-3", None, occupied)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.binary(max_size=4), st.binary(max_size=4), max_size=12))
def test_root_matches_independent_construction(items: dict[bytes, bytes]) -> None:
    assert compute_root(items) == _reference_root(items)


# -- Order independence ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=6), st.binary(max_size=6), max_size=20),
    st.randoms(use_true_random=False),
)
def test_root_is_independent_of_input_order(items: dict[bytes, bytes], rng: random.Random) -> None:
    pairs = list(items.items())
    rng.shuffle(pairs)
    root = compute_root(items)
    assert compute_root_from_pairs(pairs) == root
    assert compute_root(dict(reversed(pairs))) == root


def test_duplicate_key_in_pairs_is_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate key"):
        compute_root_from_pairs([(b"k", b"v"), (b"other", b"w"), (b"k", b"v")])


# -- Proofs: a proof verifies if and only if the claim is true ------------------------------------

maps = st.dictionaries(st.binary(max_size=6), st.binary(max_size=6), max_size=24)


@settings(max_examples=60, deadline=None)
@given(maps)
def test_inclusion_proofs_verify_for_every_key(items: dict[bytes, bytes]) -> None:
    root = compute_root(items)
    for key, value in items.items():
        proof = prove(items, key)
        assert proof.leaf is None
        assert verify_proof(root, key, value, proof)
        assert not verify_proof(root, key, None, proof)


@settings(max_examples=60, deadline=None)
@given(maps, st.lists(st.binary(max_size=6), max_size=8))
def test_exclusion_proofs_verify_for_absent_keys(
    items: dict[bytes, bytes], candidates: list[bytes]
) -> None:
    root = compute_root(items)
    for key in candidates:
        if key in items:
            continue
        proof = prove(items, key)
        assert verify_proof(root, key, None, proof)
        assert not verify_proof(root, key, b"", proof)
        if proof.leaf is not None:
            assert proof.leaf[0] != merkle.compute_path(key)


@settings(max_examples=40, deadline=None)
@given(maps, st.lists(st.binary(max_size=6), max_size=6))
def test_proof_verifies_iff_claim_is_true(
    items: dict[bytes, bytes], extra_keys: list[bytes]
) -> None:
    root = compute_root(items)
    keys = sorted(set(items) | set(extra_keys))[:14]
    proofs = [prove(items, key) for key in keys]
    for key in keys:
        claims: list[bytes | None] = [None, items.get(key, b"x"), items.get(key, b"") + b"!"]
        for claim in claims:
            truth = items.get(key) == claim
            assert verify_proof(root, key, claim, prove(items, key)) == truth
            for proof in proofs:
                if verify_proof(root, key, claim, proof):
                    assert truth


# -- Single-byte mutations ------------------------------------------------------------------------


def _flip(data: bytes, position: int, delta: int) -> bytes:
    return data[:position] + bytes([data[position] ^ delta]) + data[position + 1 :]


def _verifies_encoded(root: bytes, key: bytes, value: bytes | None, encoded: bytes) -> bool:
    try:
        proof = decode_proof(encoded)
    except ValueError:
        return False
    return verify_proof(root, key, value, proof)


@settings(max_examples=40, deadline=None)
@given(maps, st.binary(max_size=6), st.integers(1, 255))
def test_any_single_byte_mutation_fails(
    items: dict[bytes, bytes], probe: bytes, delta: int
) -> None:
    root = compute_root(items)
    cases: list[tuple[bytes, bytes | None]] = [(probe, items.get(probe))]
    cases += [(key, value) for key, value in sorted(items.items())[:3]]
    for key, value in cases:
        encoded = encode_proof(prove(items, key))
        assert _verifies_encoded(root, key, value, encoded)
        for position in range(len(encoded)):
            assert not _verifies_encoded(root, key, value, _flip(encoded, position, delta))
        for position in range(len(root)):
            assert not _verifies_encoded(_flip(root, position, delta), key, value, encoded)
        if value is None:
            assert not _verifies_encoded(root, key, b"", encoded)
            continue
        # Inclusion: the value and the key are bound too. (An exclusion proof of an empty spot
        # rightly proves every other absent key that falls in the same spot.)
        mutated_values = [_flip(value, i, delta) for i in range(len(value))] + [value + b"\x00"]
        for mutated in mutated_values:
            assert not _verifies_encoded(root, key, mutated, encoded)
        mutated_keys = [_flip(key, i, delta) for i in range(len(key))] + [key + b"\x00"]
        for mutated in mutated_keys:
            assert not _verifies_encoded(root, mutated, value, encoded)


# -- merkle_ambiguity (test plan: Bitcoin CVE-2012-2459 and leaf/node confusion) ------------------


def _key_with_prefix(path: bytes, bits: int, avoid: bytes) -> bytes:
    """Find a key whose path shares its first ``bits`` bits with ``path`` and is not ``avoid``."""
    for counter in itertools.count():
        key = b"probe-%d" % counter
        candidate = _sha256(key)
        if candidate != avoid and _ref_shared_bits(candidate, path) >= bits:
            return key
    raise AssertionError("unreachable")


def test_merkle_ambiguity_leaf_as_internal_node() -> None:
    # Walk every internal node on every key's path. Its 64-byte preimage (left, right) is passed
    # off as an occupying leaf (path, value_hash) in an exclusion proof, for a probe key chosen so
    # that every structural check passes: only domain separation stands in the way.
    items = {b"item-%d" % i: b"value-%d" % i for i in range(64)}
    root = compute_root(items)
    forged_depths: set[int] = set()
    for key, value in sorted(items.items()):
        path = _sha256(key)
        siblings = prove(items, key).siblings
        node = _ref_leaf(key, value)
        for depth in range(len(siblings) - 1, -1, -1):
            if _ref_bits(path)[depth] == "0":
                left, right = node, siblings[depth]
            else:
                left, right = siblings[depth], node
            node = _ref_node(left, right)
            upper = siblings[:depth]
            if _ref_shared_bits(left, path) < depth or EMPTY in upper[-1:]:
                continue
            probe = _key_with_prefix(path, depth, avoid=left)
            # The structure is right: with one hash for leaves and nodes, this would verify.
            assert compute_root_from_proof(_sha256(probe), node, upper) == root
            assert not verify_proof(root, probe, None, SparseMerkleProof(upper, (left, right)))
            # The same node as an inclusion: its preimage, with or without the prefix, as a value.
            for forged_value in (left + right, b"\x01" + left + right):
                assert not verify_proof(root, key, forged_value, SparseMerkleProof(upper))
                assert not verify_proof(root, probe, forged_value, SparseMerkleProof(upper))
            forged_depths.add(depth)
    assert {0, 1, 2} <= forged_depths


def test_merkle_ambiguity_duplicated_last_item_lists_differ() -> None:
    a, b, c = b"tx-a", b"tx-b", b"tx-c"
    roots = [
        compute_list_root([a, b, c]),
        compute_list_root([a, b, c, c]),
        compute_list_root([a, b, c, c, c, c]),
        compute_list_root([a, b]),
        compute_list_root([a, b, b""]),
        compute_list_root([b, a, c]),
        compute_list_root([]),
    ]
    assert len(set(roots)) == len(roots)
    assert EMPTY not in roots
    # Index 3 of [a, b, c] is provably absent and the length is provably 3.
    entries = compute_list_entries([a, b, c])
    root = roots[0]
    missing = prove(entries, get_list_item_key(3))
    assert verify_proof(root, get_list_item_key(3), None, missing)
    assert not verify_proof(root, get_list_item_key(3), c, missing)
    length_proof = prove(entries, LIST_LENGTH_KEY)
    assert verify_proof(root, LIST_LENGTH_KEY, (3).to_bytes(8, "big"), length_proof)
    assert not verify_proof(root, LIST_LENGTH_KEY, (4).to_bytes(8, "big"), length_proof)
    for index, item in enumerate([a, b, c]):
        key = get_list_item_key(index)
        assert verify_proof(root, key, item, prove(entries, key))


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.binary(max_size=6), st.binary(max_size=6), min_size=2, max_size=24),
    st.binary(max_size=6),
    st.binary(min_size=32, max_size=32),
)
def test_merkle_ambiguity_truncated_and_extended_paths_fail(
    items: dict[bytes, bytes], probe: bytes, junk: bytes
) -> None:
    root = compute_root(items)
    cases: list[tuple[bytes, bytes | None]] = [(probe, items.get(probe))]
    cases += sorted(items.items())[:4]
    for key, value in cases:
        proof = prove(items, key)
        siblings = proof.siblings
        variants = [(*siblings, EMPTY), (*siblings, junk), (*siblings, root), (root, *siblings)]
        if siblings:
            variants += [siblings[:-1], siblings[1:], (*siblings[:-1], EMPTY)]
        for variant in variants:
            assert not verify_proof(root, key, value, SparseMerkleProof(variant, proof.leaf))


def test_exclusion_leaf_with_the_keys_own_path_is_rejected() -> None:
    # The key is present; an "exclusion" whose occupying leaf is the key's own leaf folds to the
    # root but must not prove absence.
    root = compute_root(GOLDEN_ITEMS)
    proof = prove(GOLDEN_ITEMS, b"charlie")
    leaf = (_sha256(b"charlie"), _sha256(b"3"))
    assert compute_root_from_proof(leaf[0], merkle.compute_leaf_hash(*leaf), proof.siblings) == root
    assert not verify_proof(root, b"charlie", None, SparseMerkleProof(proof.siblings, leaf))


def test_exclusion_leaf_off_the_keys_prefix_is_rejected() -> None:
    root = compute_root(GOLDEN_ITEMS)
    occupied = prove(GOLDEN_ITEMS, b"absent-3")  # bravo's spot, depth 2
    assert occupied.leaf is not None
    assert verify_proof(root, b"absent-3", None, occupied)
    bravo_path = occupied.leaf[0]
    for shared_bits in (0, 1):
        key = next(
            b"other-%d" % counter
            for counter in itertools.count()
            if _ref_shared_bits(_sha256(b"other-%d" % counter), bravo_path) == shared_bits
        )
        assert not verify_proof(root, key, None, occupied)
    # Against a root the forger folds himself (the verifier is stateless): an occupying leaf that
    # is not on the key's branch must be refused even though the hashes line up.
    key_path = _sha256(b"absent-3")
    stranger = next(
        path
        for path in (_sha256(b"stranger-%d" % counter) for counter in itertools.count())
        if _ref_shared_bits(path, key_path) == 0
    )
    siblings = (_sha256(b"s0"), _sha256(b"s1"))
    leaf = (stranger, _sha256(b"v"))
    forged_root = compute_root_from_proof(key_path, merkle.compute_leaf_hash(*leaf), siblings)
    assert not verify_proof(forged_root, b"absent-3", None, SparseMerkleProof(siblings, leaf))


def _proof(siblings: object, leaf: object = None) -> SparseMerkleProof:
    """A proof with any fields. Compiled (``strata/compiled.py``), the class checks its fields'
    types when it is made, so junk of the wrong type cannot become a proof; a look-alike object
    carrying the junk stands in for it (``verify_proof`` must refuse both)."""
    try:
        return SparseMerkleProof(siblings, leaf)  # type: ignore[arg-type]
    except TypeError:
        assert compiled.status()["compiled"], "only the compiled class checks its fields' types"
        return SimpleNamespace(siblings=siblings, leaf=leaf)  # type: ignore[return-value]


def test_malformed_proofs_return_false() -> None:
    root = compute_root(GOLDEN_ITEMS)
    good = prove(GOLDEN_ITEMS, b"alpha")
    assert verify_proof(root, b"alpha", b"1", good)
    bad_proofs = [
        SparseMerkleProof((EMPTY,) * 257),
        SparseMerkleProof((b"\x11" * 32,) * 257),
        SparseMerkleProof((*good.siblings[:-1], good.siblings[-1][:31])),
        SparseMerkleProof((*good.siblings[:-1], good.siblings[-1] + b"\x00")),
        _proof(list(good.siblings)),
        _proof((good.siblings[0], "x" * 32, good.siblings[2])),
        SparseMerkleProof(good.siblings, leaf=(b"", b"")),
        SparseMerkleProof(good.siblings, leaf=(_sha256(b"alpha"), _sha256(b"1"))),
        _proof(good.siblings, leaf=(b"\x00" * 32,)),
        _proof(None),
    ]
    for proof in bad_proofs:
        assert not verify_proof(root, b"alpha", b"1", proof)
        assert not verify_proof(root, b"alpha", None, proof)
    assert not verify_proof(root[:31], b"alpha", b"1", good)
    assert not verify_proof(root, "alpha", b"1", good)  # type: ignore[arg-type]
    assert not verify_proof(root, b"alpha", "1", good)  # type: ignore[arg-type]
    assert not verify_proof(root, b"alpha", b"1", None)  # type: ignore[arg-type]


def test_deepest_sibling_empty_is_not_canonical() -> None:
    # A node with one empty side and a single leaf on the other would have been compressed.
    leaf = _ref_leaf(b"k", b"v")
    path = _sha256(b"k")
    padded_siblings = (EMPTY,)
    padded_root = compute_root_from_proof(path, leaf, padded_siblings)
    assert not verify_proof(padded_root, b"k", b"v", SparseMerkleProof(padded_siblings))
    assert verify_proof(leaf, b"k", b"v", SparseMerkleProof(()))


junk = st.one_of(st.binary(min_size=30, max_size=34), st.integers(), st.none(), st.text(max_size=3))


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(st.lists(junk, max_size=4).map(tuple), junk),
    st.one_of(st.none(), st.tuples(junk, junk), st.tuples(junk), junk),
    st.one_of(st.binary(min_size=32, max_size=32), junk),
    st.one_of(st.binary(max_size=4), junk),
)
@example((), None, EMPTY, None)
def test_verify_never_raises_on_junk(
    siblings: object, leaf: object, root: object, value: object
) -> None:
    result = verify_proof(root, b"key", value, _proof(siblings, leaf))
    # The one honest proof junk can spell: the key is absent from the empty map.
    honest = root == EMPTY and value is None and siblings == () and leaf is None
    assert result is honest


# -- Proof codec ----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(maps, st.lists(st.binary(max_size=6), max_size=6))
def test_codec_round_trips_real_proofs(items: dict[bytes, bytes], probes: list[bytes]) -> None:
    for key in [*items, *probes]:
        proof = prove(items, key)
        encoded = encode_proof(proof)
        assert decode_proof(encoded) == proof
        assert encode_proof(decode_proof(encoded)) == encoded


hashes = st.binary(min_size=32, max_size=32)


@settings(max_examples=100, deadline=None)
@given(st.lists(hashes, max_size=256).map(tuple), st.one_of(st.none(), st.tuples(hashes, hashes)))
def test_codec_round_trips_any_well_formed_proof(
    siblings: tuple[bytes, ...], leaf: tuple[bytes, bytes] | None
) -> None:
    proof = SparseMerkleProof(siblings, leaf)
    encoded = encode_proof(proof)
    assert len(encoded) == 3 + (0 if leaf is None else 64) + 32 * len(siblings)
    assert decode_proof(encoded) == proof


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=8).map(lambda b: b"\x00\x00\x01" + b)))
def test_decode_garbage_raises_value_error_or_round_trips(data: bytes) -> None:
    try:
        proof = decode_proof(data)
    except ValueError:
        return
    assert encode_proof(proof) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x02\x00\x00", "unknown proof kind"),
        (b"\xff\x00\x00", "unknown proof kind"),
        (b"\x00\x01\x01" + bytes(32 * 257), "too many siblings"),
        (b"\x00\x00\x01", "does not match"),
        (b"\x00\x00\x01" + bytes(31), "does not match"),
        (b"\x00\x00\x01" + bytes(33), "does not match"),
        (b"\x00\x00\x00" + bytes(1), "does not match"),
        (b"\x01\x00\x00" + bytes(63), "does not match"),
        (b"\x01\x00\x00" + bytes(96), "does not match"),
        ("000000", "must be bytes"),
        (bytearray(3), "must be bytes"),
    ],
)
def test_decode_rejects_malformed_input(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_proof(data)


def test_encode_rejects_malformed_proof() -> None:
    with pytest.raises(ValueError, match="malformed"):
        encode_proof(SparseMerkleProof((EMPTY,) * 257))
    with pytest.raises(ValueError, match="malformed"):
        encode_proof(SparseMerkleProof((b"short",)))


def test_empty_map_exclusion_proof() -> None:
    proof = prove({}, b"anything")
    assert proof == SparseMerkleProof(())
    assert encode_proof(proof) == b"\x00\x00\x00"
    assert verify_proof(EMPTY, b"anything", None, proof)
    assert not verify_proof(EMPTY, b"anything", b"", proof)


def test_list_item_key_range() -> None:
    assert get_list_item_key(0) == bytes(8)
    assert get_list_item_key(2**64 - 1) == b"\xff" * 8
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="out of range"):
            get_list_item_key(bad)


@given(hashes, hashes, st.integers(0, 255))
def test_path_bit_helpers_match_the_bit_string(a: bytes, b: bytes, depth: int) -> None:
    assert merkle.compute_common_prefix_bits(a, b) == _ref_shared_bits(a, b)
    assert merkle.compute_common_prefix_bits(a, a) == 256
    assert merkle.get_path_bit(a, depth) == int(_ref_bits(a)[depth])

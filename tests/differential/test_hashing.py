"""The hashing extension (``strata.core._sha256``) against ``hashlib`` and the Python definitions
of the two tree computations it runs (the list tree hash, the sparse tree's root).

It is loaded only from a current compiled build (``make setup``); without one these tests skip,
except ``test_native_goes_with_the_compiled_build``, which checks that ring 0 then hashes with
``hashlib``.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata import compiled
from strata.core import hashing
from strata.core.merkle import EMPTY, compute_root_from_pairs, compute_root_from_pairs_reference
from strata.core.ordered_merkle import (
    compute_list_leaf_hash,
    compute_tree_hash,
    compute_tree_hash_of_leaves,
    compute_tree_hash_reference,
)

native = pytest.mark.skipif(not hashing.NATIVE, reason="the hashing extension is not built")

_BYTES = st.binary(max_size=300)


@native
@settings(max_examples=300, deadline=None)
@given(_BYTES)
def test_sha256_is_hashlibs(data: bytes) -> None:
    assert hashing.sha256(data) == hashlib.sha256(data).digest()
    assert hashing.sha256(bytearray(data)) == hashlib.sha256(data).digest()
    assert hashing.sha256(memoryview(data)) == hashlib.sha256(data).digest()


@native
@settings(max_examples=300, deadline=None)
@given(st.lists(_BYTES, max_size=5))
def test_sha256_concat_is_hashlib_of_the_join(parts: list[bytes]) -> None:
    assert hashing.sha256_concat(*parts) == hashlib.sha256(b"".join(parts)).digest()


@native
def test_sha256_on_long_inputs() -> None:
    """Inputs across OpenSSL's internal block and buffer boundaries."""
    for size in (0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 4095, 4096, 4097, 1 << 20):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert hashing.sha256(data) == hashlib.sha256(data).digest(), size


@native
@settings(max_examples=300, deadline=None)
@given(st.lists(_BYTES, max_size=70))
def test_list_tree_hash_is_the_python_one(items: list[bytes]) -> None:
    assert hashing.native_list_tree_hash is not None
    want = compute_tree_hash_reference(items)
    assert hashing.native_list_tree_hash(items) == want
    assert hashing.native_list_tree_hash(tuple(items)) == want
    assert compute_tree_hash(items) == want


@native
def test_list_tree_hash_at_every_size_to_300() -> None:
    """Every shape of the lone-last-node rule, and RFC 6962's value for the empty list."""
    items = [i.to_bytes(2, "big") * (i % 7) for i in range(300)]
    assert hashing.native_list_tree_hash is not None
    for n in range(301):
        assert hashing.native_list_tree_hash(items[:n]) == compute_tree_hash_reference(items[:n])
    assert hashing.native_list_tree_hash([]) == hashlib.sha256(b"").digest()


@native
@settings(max_examples=300, deadline=None)
@given(st.lists(_BYTES, max_size=70))
def test_tree_hash_of_leaves_is_the_tree_hash_of_the_items(items: list[bytes]) -> None:
    """The leaf hash in C is ``SHA256(0x00 || item)``, and the tree hash from leaf hashes (in C
    and in Python) is the tree hash of the items: the transactions root computed from the ids."""
    assert hashing.native_list_leaf_hash is not None
    assert hashing.native_tree_hash_of_leaves is not None
    leaves = [hashing.native_list_leaf_hash(item) for item in items]
    assert leaves == [hashlib.sha256(b"\x00" + item).digest() for item in items]
    want = compute_tree_hash_reference(items)
    assert hashing.native_tree_hash_of_leaves(leaves) == want
    assert compute_tree_hash_of_leaves(leaves) == want
    assert [compute_list_leaf_hash(item) for item in items] == leaves


@native
@pytest.mark.parametrize("bad", [[b"short"], [bytes(33)], [bytes(32), None], [bytearray(32)]])
def test_tree_hash_of_leaves_refuses_what_is_not_a_leaf_hash(bad: list[object]) -> None:
    assert hashing.native_tree_hash_of_leaves is not None
    with pytest.raises(ValueError, match="32 bytes"):
        hashing.native_tree_hash_of_leaves(bad)  # type: ignore[arg-type]


@native
@pytest.mark.parametrize("bad", [None, 3, "text", [b"ok", "text"], [b"ok", None]])
def test_bad_arguments_raise_type_error(bad: object) -> None:
    assert hashing.native_list_tree_hash is not None
    with pytest.raises(TypeError):
        if isinstance(bad, list):
            hashing.native_list_tree_hash(bad)
        else:
            hashing.sha256(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        hashing.sha256_concat(b"ok", bad)


def test_native_goes_with_the_compiled_build() -> None:
    """The extension is in use exactly when the compiled ring 0 says it loaded it."""
    loaded = "strata.core._sha256" in compiled.status()["native"]  # type: ignore[operator]
    assert hashing.NATIVE is loaded
    if not loaded:
        assert hashing.sha256 is hashing._sha256
        assert hashing.native_list_tree_hash is None


_PAIRS = st.dictionaries(st.binary(max_size=40), st.binary(max_size=80), max_size=60)


@native
@settings(max_examples=300, deadline=None)
@given(_PAIRS)
def test_sparse_root_is_the_python_one(items: dict[bytes, bytes]) -> None:
    assert hashing.native_sparse_root is not None
    want = compute_root_from_pairs_reference(items.items())
    assert hashing.native_sparse_root(items.items()) == want
    assert hashing.native_sparse_root(list(items.items())[::-1]) == want  # any order
    assert hashing.native_sparse_root([list(p) for p in items.items()]) == want  # any pairs
    assert compute_root_from_pairs(iter(items.items())) == want


@native
def test_sparse_root_of_many_keys_and_of_none() -> None:
    """Past the first buffer's 1,024 leaves, and the empty map's root ``EMPTY``."""
    items = {i.to_bytes(4, "big"): bytes(i % 5) for i in range(5_000)}
    assert hashing.native_sparse_root is not None
    assert hashing.native_sparse_root(items.items()) == compute_root_from_pairs_reference(
        items.items()
    )
    assert hashing.native_sparse_root([]) == EMPTY


@native
@pytest.mark.parametrize(
    ("pairs", "error"),
    [
        ([(b"k", b"1"), (b"j", b"2"), (b"k", b"3")], ValueError),  # a repeated key
        # Not pairs: the interpreted definition fails to unpack (ValueError), the compiled one
        # and the extension check the type (TypeError).
        ([(b"k", b"1", b"extra")], (TypeError, ValueError)),
        ([(b"k",)], (TypeError, ValueError)),
        ([b"kv"], TypeError),  # bytes are a sequence of two ints, not a pair
        ([(b"k", "text")], TypeError),
        ([(None, b"v")], TypeError),
        ([3], TypeError),
        (3, TypeError),
    ],
)
def test_sparse_root_rejects_what_the_python_one_rejects(
    pairs: object, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    assert hashing.native_sparse_root is not None
    with pytest.raises(error) as native_error:
        hashing.native_sparse_root(pairs)  # type: ignore[arg-type]
    with pytest.raises(error) as python_error:
        compute_root_from_pairs_reference(pairs)  # type: ignore[arg-type]
    if "duplicate" in str(python_error.value):
        assert str(native_error.value) == str(python_error.value)

"""SHA-256, the chain's one hash, and where it comes from.

Every hash of the chain is SHA-256 (cheap on the EVM through its precompile): transaction ids,
the state tree (``core/merkle.py``), the ordered lists (``core/ordered_merkle.py``), headers. The
functions here are the only way ring 0 computes it:

- :func:`sha256` ``(data)``: the digest of ``data``;
- :func:`sha256_concat` ``(*parts)``: the digest of the parts concatenated (a tree node's
  ``0x01 || left || right`` without building the 65 bytes first).

Both come from ``hashlib``, or, when ring 0 is compiled (``strata compile``, ``make setup``), from
``strata.core._sha256``, a small C extension calling OpenSSL's ``SHA256_Init``/``Update``/``Final``
with the context on the stack. It is the same function at a fifth of the cost per call: OpenSSL 3's
EVP interface, which ``hashlib`` uses, allocates and frees two digest contexts per digest, which
on a 65-byte Merkle node is most of the work (measured with ``perf`` on ``strata bench engine``:
about 85% of the time spent hashing was context management). Two whole computations come in C
too, each the exact loop of its Python definition, or ``None``: :data:`native_list_tree_hash`,
the RFC 6962 tree hash of ``core/ordered_merkle.py`` (:data:`native_tree_hash_of_leaves`, the
same from leaf hashes already computed), and :data:`native_sparse_root`, the root of
``core/merkle.py``'s sparse tree over ``(key, value)`` pairs (hash, sort, split, hash: the
interpreter's share of that was most of the state root's cost).

The extension is loaded like the compiled ring 0 (``strata/compiled.py``): only from a current
build, never with ``STRATA_PURE=1``. ``tests/differential/test_hashing.py`` checks it against
``hashlib`` and the two computations against their Python definitions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType

_native: ModuleType | None
try:
    from strata.core import _sha256 as _native
except ImportError:  # not built, stale, or STRATA_PURE=1
    _native = None


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sha256_concat(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


sha256: Callable[[bytes], bytes]
"""``SHA256(data)``."""
sha256_concat: Callable[..., bytes]
"""``SHA256(parts[0] || parts[1] || ...)``."""
native_list_leaf_hash: Callable[[bytes], bytes] | None
"""``SHA256(0x00 || item)`` in C (``ordered_merkle.compute_list_leaf_hash``), if built."""
native_list_tree_hash: Callable[[Sequence[bytes]], bytes] | None
"""RFC 6962's Merkle Tree Hash in C (``ordered_merkle.compute_tree_hash``), if built."""
native_tree_hash_of_leaves: Callable[[Sequence[bytes]], bytes] | None
"""The same from the leaf hashes (``ordered_merkle.compute_tree_hash_of_leaves``), if built."""
native_sparse_root: Callable[[Iterable[tuple[bytes, bytes]]], bytes] | None
"""The sparse tree's root in C (``merkle.compute_root_from_pairs``), if built."""

if _native is not None:
    sha256 = _native.sha256
    sha256_concat = _native.sha256_concat
    native_list_leaf_hash = _native.list_leaf_hash
    native_list_tree_hash = _native.list_tree_hash
    native_tree_hash_of_leaves = _native.list_tree_hash_of_leaves
    native_sparse_root = _native.sparse_root
else:
    sha256 = _sha256
    sha256_concat = _sha256_concat
    native_list_leaf_hash = None
    native_list_tree_hash = None
    native_tree_hash_of_leaves = None
    native_sparse_root = None

NATIVE: bool = _native is not None
"""Whether the C extension is in use."""

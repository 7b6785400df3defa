"""Ordered Merkle trees: the commitment to a block's lists (transactions, receipts, withdrawals).

A list is not a map: it has an order and a length, and its items are proven by index. It is
committed with the Merkle Tree Hash of RFC 6962 (Certificate Transparency), with its length bound
into the root::

    leaf(d)          = SHA256(0x00 || d)
    node(l, r)       = SHA256(0x01 || l || r)
    MTH([])          = SHA256(b"")
    MTH([d])         = leaf(d)
    MTH(D[0:n])      = node(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two < n
    list_root(D)     = SHA256(0x02 || n as 8 bytes big-endian || MTH(D))

Leaves and nodes are domain-separated and no leaf is ever duplicated, so ``[a, b, c]`` and
``[a, b, c, c]`` have different roots (Bitcoin's CVE-2012-2459 cannot happen), and a node cannot
be passed off as a leaf. The state, which is a map, uses the sparse tree of ``core/merkle.py``.

Computing the tree bottom-up, pairing neighbours and carrying a lone last node up unchanged, gives
exactly the tree above; it costs ``2n`` hashes, which is why lists use it (a block's receipts are
hashed once, never updated).

:func:`compute_tree_hash_reference` is that computation in Python; :func:`compute_tree_hash`
runs the same loop in C when the hashing extension is built (``core/hashing.py``), which spares
the interpreter its ``2n`` calls (``tests/differential/test_hashing.py`` compares the two).

An inclusion proof of item ``i`` is the audit path of RFC 6962: the sibling hashes from the leaf
up. :func:`verify_list_proof` recomputes the root from the item, its index, the length and the path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from strata.core.hashing import (
    native_list_leaf_hash,
    native_list_tree_hash,
    native_tree_hash_of_leaves,
    sha256,
    sha256_concat,
)

_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"
_LIST: Final = b"\x02"
_EMPTY_TREE: Final = sha256(b"")
MAX_LIST_LENGTH: Final = (1 << 64) - 1


def compute_list_leaf_hash(item: bytes) -> bytes:
    """``SHA256(0x00 || item)``."""
    if native_list_leaf_hash is not None:
        return native_list_leaf_hash(item)
    return sha256_concat(_LEAF, item)


def _node(left: bytes, right: bytes) -> bytes:
    return sha256_concat(_NODE, left, right)


def _seal(length: int, tree_hash: bytes) -> bytes:
    return sha256_concat(_LIST, length.to_bytes(8, "big"), tree_hash)


def compute_tree_hash(items: Sequence[bytes]) -> bytes:
    """RFC 6962's Merkle Tree Hash of ``items`` (without the length)."""
    if native_list_tree_hash is not None:
        return native_list_tree_hash(items)
    return compute_tree_hash_reference(items)


def compute_tree_hash_reference(items: Sequence[bytes]) -> bytes:
    """:func:`compute_tree_hash`, bottom-up in Python (the definition the C loop follows)."""
    return _reduce([compute_list_leaf_hash(item) for item in items])


def _reduce(level: list[bytes]) -> bytes:
    """The tree hash over the leaf hashes ``level``: pair neighbours, level by level, a lone
    last node going up unchanged."""
    if not level:
        return _EMPTY_TREE
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
    return level[0]


def compute_tree_hash_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """:func:`compute_tree_hash` of the items whose leaf hashes are ``leaves`` (32 bytes each:
    :func:`compute_list_leaf_hash` of each item, in order), for a list whose leaves were computed
    already (a block's transactions: each one's id is its leaf, ``stf.transactions``).

    Raises
    ------
    ValueError
        If a leaf hash is not 32 bytes.
    """
    if native_tree_hash_of_leaves is not None:
        return native_tree_hash_of_leaves(leaves)
    if any(len(leaf) != 32 for leaf in leaves):
        raise ValueError("a leaf hash is 32 bytes")
    return _reduce(list(leaves))


def compute_ordered_root(items: Sequence[bytes]) -> bytes:
    """The root of an ordered list: its tree hash sealed with its length."""
    return _seal(len(items), compute_tree_hash(items))


def compute_ordered_root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """:func:`compute_ordered_root` of the items whose leaf hashes are ``leaves``."""
    return _seal(len(leaves), compute_tree_hash_of_leaves(leaves))


def prove_list_item(items: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """The audit path of ``items[index]``: sibling hashes from the leaf up.

    Raises
    ------
    IndexError
        If ``index`` is not a position of ``items``.
    """
    if not 0 <= index < len(items):
        raise IndexError(f"index {index} outside a list of {len(items)}")
    level = [compute_list_leaf_hash(item) for item in items]
    path: list[bytes] = []
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            paired.append(level[-1])
        level = paired
        position >>= 1
    return tuple(path)


def verify_list_proof(
    root: bytes, index: int, length: int, item: bytes, path: Sequence[bytes]
) -> bool:
    """Whether ``item`` is at ``index`` of a list of ``length`` items committed by ``root``.

    Never raises on malformed input: a wrong index, length, item, path length or hash size gives
    ``False``.
    """
    if not (0 <= index < length <= MAX_LIST_LENGTH) or len(root) != 32:
        return False
    if any(len(h) != 32 for h in path):
        return False
    node = compute_list_leaf_hash(item)
    position = index
    width = length
    used = 0
    while width > 1:
        sibling = position ^ 1
        if sibling < width:
            if used >= len(path):
                return False
            other = path[used]
            used += 1
            node = _node(other, node) if position & 1 else _node(node, other)
        position >>= 1
        width = (width + 1) >> 1
    return used == len(path) and _seal(length, node) == root

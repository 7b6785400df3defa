"""Reference sparse Merkle tree: a readable, stateless commitment to a map of bytes to bytes.

This module is the *spec* of the tree. A faster incremental tree may replace it on the hot path,
but it must produce the same roots and proofs, and is differentially tested against this one.

Shape
-----
- A map from keys (arbitrary bytes) to values (arbitrary bytes).
- A key lives at ``path = sha256(key)``: 256 bits read most significant bit first. Bit ``d`` of the
  path chooses the branch at depth ``d``: ``0`` is left, ``1`` is right.
- Hashes are domain separated as in RFC 6962, so a leaf can never pass for an internal node::

      value_hash = sha256(value)
      leaf_hash  = sha256(0x00 || path || value_hash)      # 1 + 32 + 32 bytes hashed
      node_hash  = sha256(0x01 || left || right)           # 1 + 32 + 32 bytes hashed
      EMPTY      = 32 zero bytes                           # the hash of an empty subtree

- Path compression, as in the binary form of the Diem/Aptos Jellyfish tree. The hash of the subtree
  of leaves whose paths share a ``d``-bit prefix is:

  * ``EMPTY`` if it holds no leaf;
  * that leaf's ``leaf_hash`` if it holds exactly one leaf (the leaf is *not* pushed down to depth
    256: it sits at the shallowest depth where it is alone);
  * ``node_hash(left, right)`` if it holds two or more leaves, where ``left`` and ``right`` are the
    subtrees split on path bit ``d`` (an empty side is ``EMPTY``).

  The root is the subtree at depth 0; the root of the empty map is ``EMPTY``. A leaf therefore sits
  at depth about ``log2(n)`` and costs that many hashes to prove. A tree built this way is
  *canonical*: one map has exactly one shape, whatever order its items arrive in.

Proofs
------
A :class:`SparseMerkleProof` for a key lists the ``siblings`` of the nodes on the key's path, from
the root's children down to depth ``d = len(siblings)``, where the key's subtree is a single leaf or
empty. What sits there decides the kind of proof:

- *inclusion*: the key's own leaf; ``leaf`` is ``None`` and the verifier rebuilds the leaf from the
  key and the claimed value;
- *exclusion, empty*: nothing; ``leaf`` is ``None``;
- *exclusion, occupied*: another key's leaf, whose paths share the first ``d`` bits; ``leaf`` is
  that leaf's ``(path, value_hash)``.

:func:`verify_proof` is stateless and never raises on a malformed proof: it returns ``False``.
Besides refolding the root, it checks that the proof is canonical: at most 256 siblings, each 32
bytes; the deepest sibling is not ``EMPTY`` (a node with one empty side and a single leaf on the
other would have been compressed); an inclusion proof carries no ``leaf``; an occupying leaf has a
path different from the key's and shares the key's first ``d`` bits.

Lists
-----
:func:`compute_list_root` commits to an ordered list (transactions, receipts, withdrawals) as the
map ``{index.to_bytes(8, "big"): item} | {b"length": len(items).to_bytes(8, "big")}``. Every item
has its own key, so no item is ever duplicated to fill a level (Bitcoin CVE-2012-2459), and the
length is committed too, so a proof of ``b"length"`` bounds the list and ``[]`` is not ``EMPTY``.
``LIST_LENGTH_KEY`` is 6 bytes and cannot collide with an 8-byte index key.

A new root from proofs alone
----------------------------
:func:`compute_root_from_proofs` is what a stateless checker (a fraud-proof verifier) needs: the
root after a set of changes, knowing only the old root and proofs of some keys under it. The
proofs, merged, reveal a *partial tree*: every node on a proven key's path is known (internal),
its siblings are known by their hash only (opaque), and each path ends at a known leaf or
``EMPTY``. Every changed key must be proven, so every changed path ends at a known node; the same
recursion as the full tree's update then rebuilds the changed paths and keeps opaque subtrees by
their hashes.

One thing a hash does not tell is whether an opaque subtree is a single leaf. That matters only
when the other side of its parent becomes ``EMPTY`` after deletes: a single leaf is then pulled up
(the tree re-compresses), two or more leaves are not. The function never guesses: it raises
:class:`IncompleteProofsError` naming the subtree, and a proof of any key under that subtree
(which expands it one level at least) answers the question. The result is therefore either the
root the full tree would compute or an exception, never a wrong root.

Proof encoding
--------------
:func:`encode_proof` is canonical (one proof, one byte string)::

    kind            1 byte    0x00 no leaf, 0x01 leaf present
    sibling_count   2 bytes   big-endian, at most 256
    leaf            64 bytes  path || value_hash, only when kind == 0x01
    siblings        32 bytes each, root side first

:func:`decode_proof` accepts exactly these strings (no trailing bytes) and raises ``ValueError``
on anything else, so ``encode_proof(decode_proof(b)) == b`` whenever decoding succeeds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Final, TypeGuard

from strata.core.hashing import native_sparse_root, sha256, sha256_concat

HASH_BYTES: Final = 32
"""Length of every hash, path and value hash, in bytes."""

MAX_DEPTH: Final = 256
"""Bits in a path, hence the most siblings a proof can hold."""

EMPTY: Final = bytes(HASH_BYTES)
"""Hash of an empty subtree, and root of the empty map."""

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"

LIST_LENGTH_KEY: Final = b"length"
"""Key under which :func:`compute_list_root` commits the list length (8 bytes, big-endian)."""

LIST_INDEX_BYTES: Final = 8

_PROOF_KIND_NO_LEAF: Final = 0
_PROOF_KIND_LEAF: Final = 1
_PROOF_HEADER_BYTES: Final = 3
_PROOF_LEAF_BYTES: Final = 2 * HASH_BYTES


@dataclass(frozen=True, slots=True)
class SparseMerkleProof:
    """Proof that a key holds a value, or holds none, under a root.

    ``siblings`` are 32-byte hashes, root side first. ``leaf`` is ``None`` for an inclusion proof
    and for an exclusion proof whose position is empty; otherwise it is the ``(path, value_hash)``
    of the other leaf occupying the key's position. The class does not validate its fields
    (compiled, it checks only that they are a tuple and a tuple or ``None``): :func:`verify_proof`
    rejects malformed proofs and :func:`decode_proof` never builds one.
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None = None


# -- Hashes ---------------------------------------------------------------------------------------


def compute_path(key: bytes) -> bytes:
    """Return the 32-byte path of ``key``: ``sha256(key)``."""
    return sha256(key)


def compute_value_hash(value: bytes) -> bytes:
    """Return the 32-byte hash of ``value`` stored in its leaf: ``sha256(value)``."""
    return sha256(value)


def compute_leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    """Return ``sha256(0x00 || path || value_hash)``; both arguments are 32 bytes."""
    return sha256_concat(LEAF_PREFIX, path, value_hash)


def compute_node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``sha256(0x01 || left || right)``; both arguments are 32 bytes."""
    return sha256_concat(NODE_PREFIX, left, right)


def get_path_bit(path: bytes, depth: int) -> int:
    """Return bit ``depth`` (0 = most significant bit of byte 0) of ``path``: 0 left, 1 right."""
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def compute_common_prefix_bits(a: bytes, b: bytes) -> int:
    """Return how many leading bits two 32-byte paths share (256 when they are equal)."""
    diff = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return MAX_DEPTH - diff.bit_length()


# -- Roots ----------------------------------------------------------------------------------------

# A leaf as the tree builder sees it: (path, value_hash). Lists of them are sorted by path.
_Leaf = tuple[bytes, bytes]


def _sorted_leaves(pairs: Iterable[tuple[bytes, bytes]]) -> list[_Leaf]:
    """Hash and sort ``(key, value)`` pairs into leaves; raise ``ValueError`` on a repeated key."""
    leaves = sorted((compute_path(key), compute_value_hash(value)) for key, value in pairs)
    for previous, current in pairwise(leaves):
        if previous[0] == current[0]:
            raise ValueError("duplicate key: two pairs share the path " + current[0].hex())
    return leaves


def _split(leaves: Sequence[_Leaf], lo: int, hi: int, depth: int) -> int:
    """Return the first index in ``[lo, hi)`` whose path has bit ``depth`` set.

    The leaves in ``[lo, hi)`` share their first ``depth`` bits and are sorted by path, so bit
    ``depth`` reads 0...0 1...1 across the range and a binary search finds the boundary.
    """
    return bisect_left(leaves, 1, lo, hi, key=lambda leaf: get_path_bit(leaf[0], depth))


def _subtree_hash(leaves: Sequence[_Leaf], lo: int, hi: int, depth: int) -> bytes:
    """Hash of the subtree at ``depth`` holding ``leaves[lo:hi]`` (which share ``depth`` bits)."""
    count = hi - lo
    if count == 0:
        return EMPTY
    if count == 1:
        path, value_hash = leaves[lo]
        return compute_leaf_hash(path, value_hash)
    # Two distinct paths differ in some bit below 256, so this recursion ends before MAX_DEPTH.
    mid = _split(leaves, lo, hi, depth)
    left = _subtree_hash(leaves, lo, mid, depth + 1)
    right = _subtree_hash(leaves, mid, hi, depth + 1)
    return compute_node_hash(left, right)


def compute_root_from_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Return the root of the map given as ``(key, value)`` pairs, in any order.

    Costs ``O(n log n)`` (one sort, about ``2n`` hashes). Raises ``ValueError`` if a key appears
    twice, even with the same value: the input would not be a map. Runs
    :func:`compute_root_from_pairs_reference`'s steps in C when the hashing extension is built
    (``core/hashing.py``).
    """
    if native_sparse_root is not None:
        return native_sparse_root(pairs)
    return compute_root_from_pairs_reference(pairs)


def compute_root_from_pairs_reference(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """:func:`compute_root_from_pairs` in Python: hash the pairs into leaves, sort them by path,
    and hash the tree top-down (the definition the C code follows)."""
    leaves = _sorted_leaves(pairs)
    return _subtree_hash(leaves, 0, len(leaves), 0)


def compute_root(items: Mapping[bytes, bytes]) -> bytes:
    """Return the root of ``items``; the result does not depend on the mapping's order."""
    return compute_root_from_pairs(items.items())


def get_list_item_key(index: int) -> bytes:
    """Return the key of item ``index`` in a committed list: 8 bytes, big-endian.

    Raises ``ValueError`` if ``index`` is negative or does not fit in 64 bits.
    """
    if not 0 <= index < 1 << (8 * LIST_INDEX_BYTES):
        raise ValueError(f"list index out of range: {index}")
    return index.to_bytes(LIST_INDEX_BYTES, "big")


def compute_list_entries(items: Sequence[bytes]) -> dict[bytes, bytes]:
    """Return the map that :func:`compute_list_root` commits to; use it to prove list items.

    Item ``i`` sits at :func:`get_list_item_key` ``(i)`` and the length, as 8 bytes big-endian,
    at :data:`LIST_LENGTH_KEY`.
    """
    entries = {get_list_item_key(index): item for index, item in enumerate(items)}
    entries[LIST_LENGTH_KEY] = len(items).to_bytes(LIST_INDEX_BYTES, "big")
    return entries


def compute_list_root(items: Sequence[bytes]) -> bytes:
    """Return the root of an ordered list: the root of :func:`compute_list_entries` ``(items)``.

    Lists that differ in any item, in order or in length (``[a, b, c]`` and ``[a, b, c, c]``)
    have different roots, and the empty list's root is not ``EMPTY``.
    """
    return compute_root(compute_list_entries(items))


# -- Proofs ---------------------------------------------------------------------------------------


def prove(items: Mapping[bytes, bytes], key: bytes) -> SparseMerkleProof:
    """Return the inclusion proof of ``key`` if ``items`` holds it, else its exclusion proof.

    Costs ``O(n log n)``: it rebuilds the sibling subtrees from ``items``.
    """
    leaves = _sorted_leaves(items.items())
    path = compute_path(key)
    siblings: list[bytes] = []
    lo, hi, depth = 0, len(leaves), 0
    while hi - lo >= 2:
        mid = _split(leaves, lo, hi, depth)
        if get_path_bit(path, depth) == 0:
            siblings.append(_subtree_hash(leaves, mid, hi, depth + 1))
            hi = mid
        else:
            siblings.append(_subtree_hash(leaves, lo, mid, depth + 1))
            lo = mid
        depth += 1
    leaf: _Leaf | None = None
    if hi - lo == 1 and leaves[lo][0] != path:
        leaf = leaves[lo]
    return SparseMerkleProof(siblings=tuple(siblings), leaf=leaf)


def _is_hash(value: object) -> TypeGuard[bytes]:
    return isinstance(value, bytes) and len(value) == HASH_BYTES


def _is_well_formed(proof: object) -> TypeGuard[SparseMerkleProof]:
    """Check the proof's types and sizes, so that verification cannot raise."""
    if not isinstance(proof, SparseMerkleProof):
        return False
    # Read as ``object``: a proof built from junk may hold anything, whatever its annotations say.
    siblings: object = proof.siblings
    if not isinstance(siblings, tuple) or len(siblings) > MAX_DEPTH:
        return False
    if not all(_is_hash(sibling) for sibling in siblings):
        return False
    leaf: object = proof.leaf
    if leaf is None:
        return True
    return isinstance(leaf, tuple) and len(leaf) == 2 and _is_hash(leaf[0]) and _is_hash(leaf[1])


def compute_root_from_proof(path: bytes, bottom: bytes, siblings: Sequence[bytes]) -> bytes:
    """Fold ``bottom``, the hash at depth ``len(siblings)`` on ``path``, up to the root.

    Performs no checks; :func:`verify_proof` is the safe entry point.
    """
    node = bottom
    for depth in range(len(siblings) - 1, -1, -1):
        if get_path_bit(path, depth) == 0:
            node = compute_node_hash(node, siblings[depth])
        else:
            node = compute_node_hash(siblings[depth], node)
    return node


def verify_proof(root: object, key: object, value: object, proof: object) -> bool:
    """Return whether ``proof`` shows that, under ``root``, ``key`` holds ``value``.

    ``value is None`` asks for an exclusion proof (``key`` is absent), otherwise an inclusion
    proof. The arguments are typed ``object`` because they are checked here: it returns
    ``False``, never raises, for any malformed or non-canonical input (of any type): a root or
    sibling that is not 32 bytes, more than 256 siblings, an ``EMPTY`` deepest sibling, an inclusion
    proof carrying a ``leaf``, an occupying leaf with the key's own path or off the key's prefix.
    """
    if not _is_hash(root) or not isinstance(key, bytes) or not _is_well_formed(proof):
        return False
    if value is not None and not isinstance(value, bytes):
        return False
    siblings = proof.siblings
    depth = len(siblings)
    # The deepest node on the path has at most one leaf (or none) on the key's side, so a real
    # tree has a non-empty subtree opposite it; otherwise that node would have been compressed.
    if depth > 0 and siblings[-1] == EMPTY:
        return False
    path = compute_path(key)
    if value is not None:
        if proof.leaf is not None:
            return False
        bottom = compute_leaf_hash(path, compute_value_hash(value))
    elif proof.leaf is None:
        bottom = EMPTY
    else:
        leaf_path, leaf_value_hash = proof.leaf
        # Same path: this would be the key's own leaf, i.e. an inclusion dressed as an exclusion.
        if leaf_path == path:
            return False
        if compute_common_prefix_bits(leaf_path, path) < depth:
            return False
        bottom = compute_leaf_hash(leaf_path, leaf_value_hash)
    return compute_root_from_proof(path, bottom, siblings) == root


# -- Proof encoding -------------------------------------------------------------------------------


def encode_proof(proof: SparseMerkleProof) -> bytes:
    """Return the canonical bytes of ``proof`` (layout in the module docstring).

    Raises ``ValueError`` if the proof is malformed (a field of the wrong size, too many siblings).
    """
    if not _is_well_formed(proof):
        raise ValueError("cannot encode a malformed proof")
    if proof.leaf is None:
        head = bytes([_PROOF_KIND_NO_LEAF]) + len(proof.siblings).to_bytes(2, "big")
    else:
        head = bytes([_PROOF_KIND_LEAF]) + len(proof.siblings).to_bytes(2, "big")
        head += proof.leaf[0] + proof.leaf[1]
    return head + b"".join(proof.siblings)


def decode_proof(data: object) -> SparseMerkleProof:
    """Parse the canonical bytes of a proof; the inverse of :func:`encode_proof`.

    Raises ``ValueError`` naming the fault if ``data`` is not bytes, is too short, has an unknown
    kind byte, more than 256 siblings, or a length that does not match its header exactly.
    """
    if not isinstance(data, bytes):
        raise ValueError(f"proof must be bytes, not {type(data).__name__}")
    if len(data) < _PROOF_HEADER_BYTES:
        raise ValueError(f"proof too short: {len(data)} bytes, header needs {_PROOF_HEADER_BYTES}")
    kind = data[0]
    if kind not in (_PROOF_KIND_NO_LEAF, _PROOF_KIND_LEAF):
        raise ValueError(f"unknown proof kind byte: 0x{kind:02x}")
    count = int.from_bytes(data[1:_PROOF_HEADER_BYTES], "big")
    if count > MAX_DEPTH:
        raise ValueError(f"too many siblings: {count} > {MAX_DEPTH}")
    leaf_bytes = _PROOF_LEAF_BYTES if kind == _PROOF_KIND_LEAF else 0
    expected = _PROOF_HEADER_BYTES + leaf_bytes + count * HASH_BYTES
    if len(data) != expected:
        raise ValueError(f"proof length {len(data)} does not match its header ({expected} bytes)")
    offset = _PROOF_HEADER_BYTES
    leaf: _Leaf | None = None
    if kind == _PROOF_KIND_LEAF:
        leaf = (data[offset : offset + HASH_BYTES], data[offset + HASH_BYTES : offset + leaf_bytes])
        offset += leaf_bytes
    siblings = tuple(
        data[start : start + HASH_BYTES] for start in range(offset, len(data), HASH_BYTES)
    )
    return SparseMerkleProof(siblings=siblings, leaf=leaf)


# -- A new root from proofs -----------------------------------------------------------------------


class IncompleteProofsError(ValueError):
    """The proofs do not reveal enough of the tree to compute the new root.

    ``path`` and ``depth`` locate the subtree that must be opened: the one whose paths share the
    first ``depth`` bits of ``path``. A proof of any key under it answers the question (for an
    unproven changed key, ``depth`` is 256 and ``path`` is the key's path).
    """

    def __init__(self, message: str, path: bytes, depth: int) -> None:
        super().__init__(message)
        self.path = path
        self.depth = depth


# Kinds of node in a partial tree, and of the subtrees the update returns.
_OPAQUE: Final = 0  # known by its hash only (a sibling in some proof)
_EMPTY: Final = 1  # the empty subtree
_ONE_LEAF: Final = 2  # a single leaf (leaf carries its (path, value_hash))
_INTERNAL: Final = 3  # a node with two or more leaves under it (a canonical tree has no other)

# A node of the partial tree: (kind, hash, leaf). Positions are (depth, prefix) where prefix is
# the path's first ``depth`` bits as an integer.
_Node = tuple[int, bytes, _Leaf | None]
_Position = tuple[int, int]


def _merge_node(nodes: dict[_Position, _Node], position: _Position, node: _Node) -> None:
    """Record ``node`` at ``position``, keeping the most informative of two views of it."""
    known = nodes.get(position)
    if known is None or (known[0] == _OPAQUE and node[0] != _OPAQUE):
        if known is not None and known[1] != node[1]:
            raise ValueError(f"inconsistent proofs at depth {position[0]}")
        nodes[position] = node
        return
    if known[1] != node[1] or (node[0] != _OPAQUE and node[0] != known[0]):
        raise ValueError(f"inconsistent proofs at depth {position[0]}")


def _position_path(depth: int, prefix: int) -> bytes:
    """A 32-byte path whose first ``depth`` bits are ``prefix`` (the rest zero)."""
    return (prefix << (MAX_DEPTH - depth)).to_bytes(HASH_BYTES, "big")


def _add_proof(
    nodes: dict[_Position, _Node], path: bytes, value: bytes | None, proof: SparseMerkleProof
) -> None:
    """Merge one verified proof into the partial tree ``nodes``."""
    siblings = proof.siblings
    depth = len(siblings)
    leaf = (path, compute_value_hash(value)) if value is not None else proof.leaf
    bottom: _Node = (
        (_EMPTY, EMPTY, None) if leaf is None else (_ONE_LEAF, compute_leaf_hash(*leaf), leaf)
    )
    point = int.from_bytes(path, "big")
    _merge_node(nodes, (depth, point >> (MAX_DEPTH - depth)), bottom)
    node = bottom[1]
    for level in range(depth - 1, -1, -1):
        sibling = siblings[level]
        prefix = point >> (MAX_DEPTH - level - 1)
        kind = _EMPTY if sibling == EMPTY else _OPAQUE
        _merge_node(nodes, (level + 1, prefix ^ 1), (kind, sibling, None))
        if prefix & 1:
            node = compute_node_hash(sibling, node)
        else:
            node = compute_node_hash(node, sibling)
        _merge_node(nodes, (level, prefix >> 1), (_INTERNAL, node, None))


def _build(leaves: list[_Leaf], depth: int) -> tuple[int, bytes]:
    """Kind and hash of the subtree at ``depth`` holding ``leaves`` (sorted by path)."""
    if not leaves:
        return _EMPTY, EMPTY
    if len(leaves) == 1:
        return _ONE_LEAF, compute_leaf_hash(*leaves[0])
    return _INTERNAL, _subtree_hash(leaves, 0, len(leaves), depth)


def compute_root_from_proofs(
    pre_root: bytes,
    proven: Mapping[bytes, tuple[bytes | None, SparseMerkleProof]],
    changes: Mapping[bytes, bytes | None],
) -> bytes:
    """Return the root after ``changes`` of the tree whose root is ``pre_root``, from proofs only.

    ``proven`` maps keys to ``(value, proof)``: the value under ``pre_root`` (``None`` if absent)
    and its proof. ``changes`` maps keys to their new value (``None`` deletes; deleting an absent
    key or writing the same value changes nothing). The result equals ``compute_root`` of the
    changed map, which this function never sees (see the module docstring).

    Costs one pass over the proofs (``O(total siblings)`` hashes) plus the hashes of the changed
    paths, as the full tree's update.

    Raises
    ------
    ValueError
        If a proof does not verify under ``pre_root`` or two proofs disagree.
    IncompleteProofsError
        If a changed key has no proof, or an opaque subtree must be known to be a single leaf or
        not (see the module docstring); ``path`` and ``depth`` say which subtree to open.
    """
    nodes: dict[_Position, _Node] = {}
    for key, (value, proof) in proven.items():
        if not verify_proof(pre_root, key, value, proof):
            raise ValueError(f"the proof of key {key.hex()} does not verify under the root")
        _add_proof(nodes, compute_path(key), value, proof)
    items: list[tuple[bytes, bytes | None]] = []
    for key, value in changes.items():
        if key not in proven:
            path = compute_path(key)
            raise IncompleteProofsError(f"no proof for changed key {key.hex()}", path, MAX_DEPTH)
        items.append((compute_path(key), None if value is None else compute_value_hash(value)))
    if not items:
        return pre_root
    items.sort()
    points = [int.from_bytes(path, "big") for path, _ in items]

    def unchanged(position: _Position) -> tuple[int, bytes]:
        kind, node_hash, _ = nodes[position]
        return kind, node_hash

    def join(
        position: _Position, left: tuple[int, bytes], right: tuple[int, bytes]
    ) -> tuple[int, bytes]:
        depth, prefix = position
        for side, other, other_prefix in ((left, right, 2 * prefix + 1), (right, left, 2 * prefix)):
            if side[0] != _EMPTY:
                continue
            if other[0] == _EMPTY:
                return _EMPTY, EMPTY
            if other[0] == _ONE_LEAF:
                return other  # a single leaf left alone is pulled up: the tree re-compresses
            if other[0] == _OPAQUE:
                raise IncompleteProofsError(
                    f"the subtree at depth {depth + 1} must be opened (one leaf or more?)",
                    _position_path(depth + 1, other_prefix),
                    depth + 1,
                )
        return _INTERNAL, compute_node_hash(left[1], right[1])

    def update(depth: int, prefix: int, lo: int, hi: int) -> tuple[int, bytes]:
        position = (depth, prefix)
        if lo == hi:
            return unchanged(position)
        kind, _, leaf = nodes[position]
        if kind in (_EMPTY, _ONE_LEAF):
            merged: dict[bytes, bytes] = {} if leaf is None else {leaf[0]: leaf[1]}
            for path, value_hash in items[lo:hi]:
                if value_hash is None:
                    merged.pop(path, None)
                else:
                    merged[path] = value_hash
            return _build(sorted(merged.items()), depth)
        if kind == _OPAQUE:  # unreachable: every changed path was proven down to its bottom
            raise IncompleteProofsError(
                "a changed path runs into an unopened subtree", _position_path(depth, prefix), depth
            )
        right_start = (2 * prefix + 1) << (MAX_DEPTH - depth - 1)
        mid = bisect_left(points, right_start, lo, hi)
        left = update(depth + 1, 2 * prefix, lo, mid)
        right = update(depth + 1, 2 * prefix + 1, mid, hi)
        return join(position, left, right)

    return update(0, 0, 0, len(items))[1]

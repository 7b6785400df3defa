"""Incremental sparse Merkle tree: persistent, content-addressed nodes updated once per block.

Same roots and proofs as the reference tree of :mod:`strata.core.merkle` (its docstring is the
spec), proven equal by ``tests/differential/test_smt_vs_reference.py``. Pure: no I/O here; nodes
are read through a :class:`NodeSource` port (an LMDB adapter in the node, :class:`MemoryNodeSource`
in tests and benchmarks).

Layout
------
The reference's layout, unchanged: binary, a path bit per level (``0`` left), a subtree holding a
single leaf *is* that leaf (it sits at the shallowest depth where it is alone), an empty subtree is
``EMPTY`` and is never stored. A node is stored under its hash, ``sha256(encoding)``::

    leaf      0x00 || path (32) || value_hash (32)     65 bytes
    internal  0x01 || left (32) || right (32)          65 bytes

These are exactly the bytes the reference hashes, so a node's key is its hash: a node read back
can be checked against the key it was asked for (:class:`CorruptNodeError`), and two trees that
share a subtree share its nodes. A leaf's encoding names its full path, so leaves need no key
lookup: a walk ends at a leaf or at ``EMPTY``.

Why binary and not 16-ary (Jellyfish), measured in ``docs/state-tree.md``: a 16-ary node must
still produce the binary root (the root is the spec), so it stores or recomputes the 15 binary
hashes inside it. Per changed key (10,000 keys on 1,000,000) binary builds and hashes 9.5 nodes
and reads 7.9; 16-ary hashes as much and reads ~2-3 fat nodes, which would save at most ~50 ms
of random reads in a ~217 ms block before paying to decode and re-encode ~1 KB nodes (and 3-4x
the bytes written); its real gain would be memory (fewer Python objects). Not enough to change
the spec: binary keeps the store a plain ``hash -> 65 bytes`` map and the code a transcription
of the reference.

Update algorithm
----------------
:meth:`SparseMerkleTree.apply` takes a whole block's changes (key -> value, ``None`` = delete),
hashes them to ``(path, value_hash)`` and sorts them by path. One recursion over the old tree then
visits every node on a changed path exactly once, splitting the sorted changes on the node's bit
(one ``bisect`` on the paths as integers), so a node shared by many changed paths (the root, the
top levels) is read and rehashed once per block, never once per key:

- no change under a node: keep its hash, read nothing;
- ``EMPTY``: build the subtree of the inserted leaves;
- a leaf: merge it with the changes (a change with its path replaces or deletes it) and build the
  subtree of the survivors (the leaf is pushed down if keys arrive next to it);
- an internal node: recurse into both children, then join: both ``EMPTY`` -> ``EMPTY``; one side
  ``EMPTY`` and the other a single leaf -> that leaf (a leaf pulled up after deletes); otherwise
  a new internal node.

Below the depth where the changed paths part, each change is alone under its node: ``update_one``
walks down to its leaf or ``EMPTY`` collecting siblings, then folds the new bottom up with the same
join rules, in a loop instead of a recursion (most of a block's nodes are built there).

Every node built is recorded in ``TreeUpdate.new_nodes``. ``stale_nodes`` are the old nodes on the
changed paths that the new root no longer reaches: an internal node whose hash changed (a node's
hash fixes its position in the tree, so it cannot survive elsewhere), and a leaf that a change
deletes or gives another value. A leaf that only moves (pushed down by a neighbour, pulled up
after deletes) is not stale; nor is anything under a change that changes nothing. The tests check
``stale_nodes`` equals (old reachable set - new reachable set) exactly, at every step.

Versioning and pruning
----------------------
The store keeps the roots of the last ``N`` heights and writes ``new_nodes`` of every update.
Nodes are content-addressed, so a node can go stale at height ``h`` and be *re-created* at a later
height ``h' > h`` (a value set back to an old one, a key deleted and re-inserted): a stale record
alone does not make a node deletable. The rule:

* every update's ``new_nodes`` lists *every* node it built, including nodes identical to ones
  already in the source or reachable from an older root (re-created nodes are never filtered);
* the store records, per node, ``created_at[n]`` = the last height whose ``new_nodes`` held ``n``,
  and, per height ``h``, the ``stale_nodes`` of the update that produced height ``h``;
* once the root of height ``h - 1`` leaves the retained window (every retained root is at a height
  ``>= h``), for each ``n`` staled at ``h``: delete ``n`` if ``created_at[n] < h``, else keep it
  (it was re-created after ``h``; if it goes stale again, that later stale record deletes it).

Why it is safe: ``n`` is unreachable from the root of ``h``; a later root can reach it only if some
update between them built it (a node reachable from a new root is either built by that update or
reachable from the previous root), which sets ``created_at[n] > h``. Why nothing leaks: a node that
is unreachable from every retained root was last staled at some height after its last creation,
and that record deletes it. :func:`compute_prunable` applies the rule to in-memory records (tests
use it; the LMDB store keeps the same two records in tables).

Complexity
----------
For ``k`` changed keys in a tree of ``n`` keys (depth about ``log2 n``), an update reads and builds
about ``k * (log2 n - log2 k + 2)`` nodes (the top ``log2 k`` levels are shared) and hashes as many
65-byte strings; ``stale_nodes`` and ``new_nodes`` have that size too. A proof or a lookup reads
``log2 n`` nodes. :meth:`SparseMerkleTree.iter_leaves` reads every node.

Known limitations
-----------------
- Node reads go through a bounded generational cache (two dicts, the older dropped whole when the
  younger fills), not a true LRU. An update admits only the nodes it reads above the depth where
  its changes part (the hot top levels, shared by many keys); the deep one-off reads below look the
  cache up without filling it. Proofs and lookups admit every node they read. An update evicts
  the nodes it makes stale (a node leaves the current tree only there), so the cache holds the
  live tree's hot nodes rather than filling up with replaced versions of them (under ``strata
  bench node``: 57 nodes at the end of the run, against 126,803 and still growing toward the
  bound without eviction). Over a fast in-memory store the cache is pure overhead
  (``cache_nodes=0``).
- Nodes built since the last :meth:`SparseMerkleTree.mark_persisted` stay in memory (pending)
  until the caller says the store holds them; several blocks may be applied in between.
- Recursion depth is bounded by 256 (the path length), well under Python's limit.
- A missing node raises :class:`MissingNodeError`, a node whose bytes do not hash to its key
  raises :class:`CorruptNodeError`; the tree is left unchanged by a failed :meth:`apply`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from strata.core.hashing import sha256 as _sha256
from strata.core.merkle import (
    EMPTY,
    HASH_BYTES,
    LEAF_PREFIX,
    NODE_PREFIX,
    SparseMerkleProof,
    compute_path,
    compute_value_hash,
)
from strata.state.packed import PackedNodes, records_of, unpack_record

NODE_BYTES: Final = 1 + 2 * HASH_BYTES
"""Length of every node encoding (leaf or internal)."""

LEAF_TAG: Final = 0
NODE_TAG: Final = 1

ADMIT_DEPTH: Final = 15
"""With a live table, :meth:`SparseMerkleTree.descend` admits to the cache only the nodes of the
top 15 levels (at most 32,767: one generation of a 65,536-node cache)."""

TOP_LEVELS: Final = 15
"""With a live table, walks at the current root take the siblings of the top 15 levels from
strings made once per root (:meth:`SparseMerkleTree.descend`): 65,535 hashes, 2 MB."""

TOP_AFTER_READS: Final = 2048
"""... made once this many walks were asked of one root. Making them costs 16-35 ms at 1M keys
and saved ~5 us a walk (21.6 against 16.3 us, measured), so they pay from about 3,000-7,000
walks at one root on: a store read a few hundred times a block never makes them, one read
tens of thousands of times does."""

DEFAULT_CACHE_NODES: Final = 1 << 18
"""Default node cache size: 262,144 nodes (about 60 MB): more than the top 17 levels."""

_TOP_BIT: Final = 8 * HASH_BYTES - 1


class MissingNodeError(LookupError):
    """A node reachable from the root is not in the source (a pruning or storage fault)."""


class CorruptNodeError(ValueError):
    """A node read from the source does not hash to the key it was stored under."""


class NodeSource(Protocol):
    """Read port of a node store: ``node_hash -> encoding`` (65 bytes), ``None`` if absent."""

    def get_node(self, node_hash: bytes) -> bytes | None: ...


class MemoryNodeSource:
    """A dict-backed :class:`NodeSource` for tests and benchmarks.

    ``get_node`` is the dict's own ``get`` (one call frame less per node read).
    """

    __slots__ = ("get_node", "nodes")

    def __init__(self, nodes: Mapping[bytes, bytes] | None = None) -> None:
        self.nodes: dict[bytes, bytes] = dict(nodes) if nodes is not None else {}
        self.get_node: Callable[[bytes], bytes | None] = self.nodes.get

    def put_nodes(self, nodes: Mapping[bytes, bytes]) -> None:
        self.nodes.update(nodes)

    def delete_nodes(self, hashes: Iterable[bytes]) -> None:
        for node_hash in hashes:
            self.nodes.pop(node_hash, None)

    def __len__(self) -> int:
        return len(self.nodes)


@dataclass(frozen=True, slots=True)
class TreeUpdate:
    """What one :meth:`SparseMerkleTree.apply` did.

    ``root`` is the new root. ``new_nodes`` holds every node the update built (``hash ->
    encoding``), re-created ones included, so the store must write them all and record their
    creation height. ``stale_nodes`` lists, without repeats, the nodes reachable from the old root
    and not from the new one, in no meaningful order; ``EMPTY`` is never in either.
    """

    root: bytes
    new_nodes: dict[bytes, bytes]
    stale_nodes: list[bytes]


def encode_leaf(path: bytes, value_hash: bytes) -> bytes:
    """Return the 65-byte leaf encoding ``0x00 || path || value_hash``."""
    return LEAF_PREFIX + path + value_hash


def encode_internal(left: bytes, right: bytes) -> bytes:
    """Return the 65-byte internal node encoding ``0x01 || left || right``."""
    return NODE_PREFIX + left + right


def compute_prunable(
    stale_at: Mapping[int, Sequence[bytes]], created_at: Mapping[bytes, int], oldest_retained: int
) -> set[bytes]:
    """Return the nodes that no retained root reaches, by the pruning rule of the module docstring.

    ``stale_at[h]`` is the ``stale_nodes`` of the update that produced height ``h``;
    ``created_at[n]`` the last height whose ``new_nodes`` held ``n``; the roots retained are those
    of heights ``>= oldest_retained``. Only records with ``h <= oldest_retained`` are decided
    (their old root, of height ``h - 1``, is gone); the caller then drops those records.
    """
    prunable: set[bytes] = set()
    for height in sorted(stale_at):
        if height > oldest_retained:
            break
        for node_hash in stale_at[height]:
            if created_at.get(node_hash, -1) < height:
                prunable.add(node_hash)
    return prunable


def _missing(node_hash: bytes) -> MissingNodeError:
    return MissingNodeError(f"node {node_hash.hex()} is not in the store")


class _Batch:
    """One update: the sorted changes and what building the new tree produced."""

    __slots__ = ("ints", "load", "load_shared", "new", "paths", "replaced", "vhs")

    def __init__(
        self,
        ints: list[int],
        paths: list[bytes],
        vhs: list[bytes | None],
        load: Callable[[bytes], bytes | None],
        load_shared: Callable[[bytes], bytes],
    ) -> None:
        self.ints = ints
        self.paths = paths
        self.vhs = vhs
        self.load = load
        self.load_shared = load_shared
        self.new: dict[bytes, bytes] = {}
        self.replaced: list[bytes] = []

    def update(self, node: bytes, depth: int, lo: int, hi: int) -> bytes:
        """Return the hash of ``node`` (at ``depth``) after the changes ``[lo, hi)`` under it."""
        if lo == hi:
            return node
        if hi - lo == 1:
            return self.update_one(node, depth, lo)
        if node == EMPTY:
            return self._build_survivors(depth, lo, hi, None, node)
        encoding = self.load_shared(node)
        if encoding[0] == LEAF_TAG:
            return self._build_survivors(depth, lo, hi, encoding, node)
        ints = self.ints
        shift = _TOP_BIT - depth
        mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
        left = self.update(encoding[1:33], depth + 1, lo, mid)
        right = self.update(encoding[33:], depth + 1, mid, hi)
        result = self._join(left, right)
        # An internal node sits at one position: if its hash changed, no other position has it.
        if result != node:
            self.replaced.append(node)
        return result

    def update_one(self, node: bytes, depth: int, index: int) -> bytes:
        """:meth:`update` for a single change (most of a block's nodes lie below the depth where
        the changed paths part): walk down to its leaf or ``EMPTY``, then fold the new bottom up
        with the siblings, joining as :meth:`_join` does. A change that changes nothing (deleting
        an absent key, writing the same value) returns ``node`` and records nothing."""
        path_int = self.ints[index]
        path = self.paths[index]
        value_hash = self.vhs[index]
        bits = format(path_int, "0256b")
        load = self.load
        replaced = self.replaced
        mark = len(replaced)
        siblings: list[bytes] = []
        current = node
        end = depth
        leaf = b""
        empty = EMPTY
        while current != empty:
            encoding = load(current)
            if encoding is None:
                raise _missing(current)
            replaced.append(current)
            if not encoding[0]:  # LEAF_TAG
                leaf = encoding
                break
            if bits[end] == "1":
                siblings.append(encoding[1:33])
                current = encoding[33:]
            else:
                siblings.append(encoding[33:])
                current = encoding[1:33]
            end += 1
        new = self.new
        if leaf and leaf[1:33] != path:
            if value_hash is None:
                del replaced[mark:]
                return node
            # Another key's leaf occupies the spot: the two leaves part below ``end``. That leaf
            # moves down, so it is not stale.
            replaced.pop()
            other_int = int.from_bytes(leaf[1:33], "big")
            pair = [(path_int, path, value_hash), (other_int, leaf[1:33], leaf[33:])]
            pair.sort()
            current = self.build(
                end, [p[0] for p in pair], [p[1] for p in pair], [p[2] for p in pair], 0, 2
            )
            current_is_leaf = False
        elif value_hash is None:
            if not leaf:
                del replaced[mark:]
                return node
            current = EMPTY
            current_is_leaf = False
        else:
            if leaf and leaf[33:] == value_hash:
                del replaced[mark:]
                return node
            encoding = LEAF_PREFIX + path + value_hash
            current = _sha256(encoding)
            new[current] = encoding
            current_is_leaf = True
        sha256, node_prefix = _sha256, NODE_PREFIX
        for level in range(len(siblings) - 1, -1, -1):
            sibling = siblings[level]
            if current == empty:
                if sibling == empty or self._is_leaf(sibling):
                    current = sibling
                    current_is_leaf = sibling != empty
                    continue
            elif current_is_leaf and sibling == empty:
                continue
            if bits[depth + level] == "1":
                encoding = node_prefix + sibling + current
            else:
                encoding = node_prefix + current + sibling
            current = sha256(encoding)
            new[current] = encoding
            current_is_leaf = False
        return current

    def _join(self, left: bytes, right: bytes) -> bytes:
        """Hash of an internal position whose children became ``left`` and ``right``."""
        if left == EMPTY:
            if right == EMPTY or self._is_leaf(right):
                return right
        elif right == EMPTY and self._is_leaf(left):
            return left
        encoding = NODE_PREFIX + left + right
        node = _sha256(encoding)
        self.new[node] = encoding
        return node

    def _is_leaf(self, node: bytes) -> bool:
        encoding = self.new.get(node) or self.load(node)
        if encoding is None:
            raise _missing(node)
        return encoding[0] == LEAF_TAG

    def _build_survivors(
        self, depth: int, lo: int, hi: int, leaf: bytes | None, node: bytes
    ) -> bytes:
        """Build the subtree at ``depth`` of the changes ``[lo, hi)`` that set a value, plus the
        old ``leaf`` encoding there (hash ``node``, if any) unless a change names its path; the
        leaf is stale if a change deletes it or gives it another value."""
        ints, paths, vhs = self.ints, self.paths, self.vhs
        keep = [i for i in range(lo, hi) if vhs[i] is not None]
        out_ints = [ints[i] for i in keep]
        out_paths = [paths[i] for i in keep]
        out_vhs: list[bytes] = [vhs[i] for i in keep]  # type: ignore[misc]
        if leaf is not None:
            leaf_int = int.from_bytes(leaf[1:33], "big")
            at = bisect_left(ints, leaf_int, lo, hi)
            if at == hi or ints[at] != leaf_int:
                pos = bisect_left(out_ints, leaf_int)
                out_ints.insert(pos, leaf_int)
                out_paths.insert(pos, leaf[1:33])
                out_vhs.insert(pos, leaf[33:])
            elif vhs[at] != leaf[33:]:
                self.replaced.append(node)
        return self.build(depth, out_ints, out_paths, out_vhs, 0, len(out_ints))

    def build(
        self,
        depth: int,
        ints: list[int],
        paths: list[bytes],
        vhs: list[bytes],
        lo: int,
        hi: int,
    ) -> bytes:
        """Build the subtree at ``depth`` of the sorted leaves ``[lo, hi)`` (sharing ``depth``
        bits), as the reference's ``_subtree_hash`` does, recording every node."""
        count = hi - lo
        if count == 0:
            return EMPTY
        if count == 1:
            encoding = LEAF_PREFIX + paths[lo] + vhs[lo]
        else:
            shift = _TOP_BIT - depth
            mid = bisect_left(ints, ((ints[lo] >> shift) | 1) << shift, lo, hi)
            left = self.build(depth + 1, ints, paths, vhs, lo, mid)
            right = self.build(depth + 1, ints, paths, vhs, mid, hi)
            encoding = NODE_PREFIX + left + right
        node = _sha256(encoding)
        self.new[node] = encoding
        return node


class SparseMerkleTree:
    """The state tree at one root, over a node store; :meth:`apply` moves it to the next root.

    ``source`` holds the persisted nodes; the tree keeps the nodes it built since the last
    :meth:`mark_persisted` (pending) and a bounded cache of ``cache_nodes`` nodes read from the
    source (``0`` disables it). ``verify_nodes`` checks every node read from the source against its
    hash (one extra SHA-256 per source read; cache hits are not re-checked).
    """

    __slots__ = (
        "_cache_limit",
        "_live",
        "_old",
        "_owned",
        "_pending",
        "_released",
        "_released_index",
        "_root",
        "_source",
        "_top",
        "_top_after_reads",
        "_top_root",
        "_top_walks",
        "_verify",
        "_young",
        "born",
    )

    def __init__(
        self,
        source: NodeSource,
        root: bytes = EMPTY,
        cache_nodes: int = DEFAULT_CACHE_NODES,
        *,
        verify_nodes: bool = True,
        live: PackedNodes | None = None,
        top_after_reads: int = TOP_AFTER_READS,
    ) -> None:
        if len(root) != HASH_BYTES:
            raise ValueError(f"root must be {HASH_BYTES} bytes, got {len(root)}")
        self._source = source
        self._root = bytes(root)
        self._cache_limit = max(0, cache_nodes) // 2
        self._young: dict[bytes, bytes] = {}
        self._old: dict[bytes, bytes] = {}
        self._verify = verify_nodes
        # The new_nodes of the updates since mark_persisted, shared with their TreeUpdate (never
        # mutated); merged, when an update finds more than one, into the first layer once the
        # tree owns it (``_owned``: a fresh dict made at the first merge).
        self._pending: list[dict[bytes, bytes]] = []
        self._owned = False
        self._live = live
        self._released: list[bytes] = []
        self._released_index: dict[bytes, bytes] | None = None
        self._top: list[bytes] | None = None
        self._top_root = EMPTY
        self._top_walks = 0
        self._top_after_reads = top_after_reads
        self.born = 0
        """The height the next update builds (stamped on its nodes in the live table)."""

    @property
    def root(self) -> bytes:
        """The current root (``EMPTY`` for the empty map)."""
        return self._root

    @property
    def cached_nodes(self) -> int:
        """Nodes in the read cache now (at most ``cache_nodes``)."""
        return len(self._young) + len(self._old)

    def cached_hashes(self) -> set[bytes]:
        """The hashes of the nodes in the read cache (diagnostics and tests)."""
        return self._young.keys() | self._old.keys()

    # -- Node reads ------------------------------------------------------------------------------

    def get_node(self, node_hash: bytes) -> bytes:
        """Return the encoding of ``node_hash`` from the cache, pending nodes or the source.

        Raises :class:`MissingNodeError` if no one has it and :class:`CorruptNodeError` if the
        source returns bytes that do not hash to ``node_hash``. Every layer is keyed by the
        node's hash, so the order of the look-ups only matters for speed: the cache (the hot top
        levels) first.
        """
        encoding = self._young.get(node_hash)
        if encoding is not None:
            return encoding
        encoding = self._old.get(node_hash)
        if encoding is None:
            encoding = self._get_node_uncached(node_hash)
            if encoding is None:
                raise _missing(node_hash)
        if self._cache_limit:
            young = self._young
            if len(young) >= self._cache_limit:
                self._old = young
                young = self._young = {}
            young[node_hash] = encoding
        return encoding

    def _make_loader(self) -> Callable[[bytes], bytes | None]:
        """A node reader for one update: ``None`` for a missing node (the caller raises).

        With a live table, its ``get``. With a cache, a reader that looks it up without adding to
        it; without one, the source's own ``get_node`` (or a closure adding the pending nodes or
        the hash check), to save a call frame per node read.
        """
        pending = self._pending
        if len(pending) > 1:
            # Merge into the dict the tree owns (made once per mark_persisted), never into a
            # TreeUpdate's: copying all pending nodes at every update would cost O(pending).
            if not self._owned:
                merged: dict[bytes, bytes] = {}
                merged.update(pending[0])
                pending[0] = merged
                self._owned = True
            for layer in pending[1:]:
                pending[0].update(layer)
            del pending[1:]
        if self._live is not None:
            # An update reads only nodes of the current tree, which the live table holds, at a
            # dict's speed at this size: no cache, no other layer (a miss is a missing node).
            return self._live.get
        source_get = self._source.get_node
        if self._cache_limit:
            return self._get_node_no_admit
        if not self._verify:
            if not self._pending:
                return source_get
            pending_get = self._pending[0].get
            return lambda node_hash: pending_get(node_hash) or source_get(node_hash)
        return self._get_node_uncached

    def _get_node_no_admit(self, node_hash: bytes) -> bytes | None:
        """:meth:`get_node` that reads the cache but does not add to it (deep, one-off reads)."""
        encoding = self._young.get(node_hash) or self._old.get(node_hash)
        if encoding is not None:
            return encoding
        return self._get_node_uncached(node_hash)

    def _get_node_uncached(self, node_hash: bytes) -> bytes | None:
        """A node from the live table, the released records, the pending nodes or the source
        (checked against its hash if ``verify_nodes``), or ``None``."""
        live = self._live
        if live is not None:
            encoding = live.get(node_hash)
            if encoding is not None:
                return encoding
            if self._released:
                index = self._released_index
                if index is None:
                    index = self._released_index = {}
                    for rows in self._released:
                        for row in records_of(rows):
                            released_hash, released_encoding, _ = unpack_record(row.tobytes())
                            index[released_hash] = released_encoding
                encoding = index.get(node_hash)
                if encoding is not None:
                    return encoding
        for layer in self._pending:
            encoding = layer.get(node_hash)
            if encoding is not None:
                return encoding
        encoding = self._source.get_node(node_hash)
        if encoding is not None and self._verify:
            self._check(node_hash, encoding)
        return encoding

    def _check(self, node_hash: bytes, encoding: bytes) -> None:
        if len(encoding) != NODE_BYTES or _sha256(encoding) != node_hash:
            raise CorruptNodeError(f"node {node_hash.hex()} does not match its bytes")

    def mark_persisted(self) -> None:
        """Forget the pending nodes: the caller's store now holds every ``new_nodes`` so far.

        (With a live table nothing is pending: the store calls it after each block anyway.)"""
        self._pending = []
        self._owned = False

    def take_released(self) -> list[bytes]:
        """With a live table: the records (``state/packed.py``) the updates since the last call
        removed from it, one string per update, oldest first; the tree forgets them."""
        released = self._released
        self._released = []
        self._released_index = None
        return released

    @property
    def live(self) -> PackedNodes | None:
        """The live table, if the tree has one."""
        return self._live

    # -- Updates ---------------------------------------------------------------------------------

    def apply(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """Apply a block's changes (key -> new value, ``None`` deletes) at once; move the root.

        Deleting an absent key is a no-op. Returns the :class:`TreeUpdate`; the tree keeps the new
        nodes pending until :meth:`mark_persisted`. On an exception the tree is unchanged.
        """
        return self.apply_paths(
            {
                compute_path(key): None if value is None else compute_value_hash(value)
                for key, value in changes.items()
            }
        )

    def apply_paths(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """:meth:`apply` at the path level: ``path -> value_hash`` (``None`` deletes).

        Raises ``ValueError`` if a path or value hash is not 32 bytes.
        """
        items = sorted(changes.items())
        paths = [path for path, _ in items]
        vhs = [value_hash for _, value_hash in items]
        for path, value_hash in items:
            if len(path) != HASH_BYTES or (
                value_hash is not None and len(value_hash) != HASH_BYTES
            ):
                raise ValueError("paths and value hashes must be 32 bytes")
        ints = [int.from_bytes(path, "big") for path in paths]
        # Nodes above the depth where the changes part (read by ``update``) are read through the
        # cache and kept there; the deep one-off reads of ``update_one`` only look it up.
        batch = _Batch(ints, paths, vhs, self._make_loader(), self.get_node)
        root = batch.update(self._root, 0, 0, len(items))
        new = batch.new
        stale = batch.replaced
        live = self._live
        if live is not None:
            released = live.replace(new, stale, self.born)
            if released:
                self._released.append(released)
                self._released_index = None
        elif new:
            self._pending.append(new)
        if self._cache_limit and stale:
            young_pop = self._young.pop
            old_pop = self._old.pop
            for node_hash in stale:
                young_pop(node_hash, None)
                old_pop(node_hash, None)
        self._root = root
        return TreeUpdate(root=root, new_nodes=new, stale_nodes=stale)

    def adopt_packed(self, root: bytes, nodes: bytes, stale: bytes) -> None:
        """Move to ``root`` by an update another tree computed over the same nodes (a replica
        in another process, see ``exec/commitment.py``): its new nodes and stale hashes as
        :func:`~strata.state.packed.pack_update` packs them. The tree ends as :meth:`apply`
        would have left it. Only for a tree with a live table (``ValueError`` otherwise)."""
        live = self._live
        if live is None or len(root) != HASH_BYTES:
            raise ValueError("adopt_packed needs a live table and a 32-byte root")
        released = live.replace_packed(nodes, stale, self.born)
        if released:
            self._released.append(released)
            self._released_index = None
        if self._cache_limit and stale:
            young_pop = self._young.pop
            old_pop = self._old.pop
            for at in range(0, len(stale), HASH_BYTES):
                node_hash = stale[at : at + HASH_BYTES]
                young_pop(node_hash, None)
                old_pop(node_hash, None)
        self._root = bytes(root)

    # -- Reads -----------------------------------------------------------------------------------

    def descend(self, path: bytes, root: bytes | None = None) -> tuple[list[bytes], bytes]:
        """Walk ``path`` from ``root`` (default: current) to the single leaf or ``EMPTY`` where
        it ends.

        Returns the siblings (root side first) and the encoding of the leaf, or ``b""``. The walk
        behind every proof and lookup: a cache hit costs one or two dict look-ups, anything else
        goes through :meth:`get_node` (which admits the node to the cache). With a live table,
        only the nodes of the top :data:`ADMIT_DEPTH` levels are admitted (they are shared by
        every walk; the deeper ones are read straight from the table, which costs about what a
        cache miss does), so the cache keeps the top of the tree instead of turning over.

        At the current root with a live table, once the root has served ``top_after_reads``
        walks (:data:`TOP_AFTER_READS` unless given), the siblings of its full top levels
        (:data:`TOP_LEVELS` at most) are slices of strings made once for the root, and the walk
        goes on in the table itself
        (``PackedNodes.walk``): at 1M keys, 16-22 us a walk instead of 22-30 (1.27-1.45x,
        measured alternating the two on the same paths).
        """
        node = self._root if root is None else root
        siblings: list[bytes] = []
        path_int = int.from_bytes(path, "big")
        bits = format(path_int, "0256b")
        live = self._live
        depth = 0
        top = self._top_levels() if live is not None and node == self._root else None
        if top is not None and live is not None:
            # The full top levels of the current tree, by position: the siblings above depth
            # ``last`` are slices of one string a level, the rest one table probe a level.
            last = len(top) - 1
            for level, shift in zip(top[1:], range(255, 255 - last, -1)):
                at = ((path_int >> shift) ^ 1) << 5  # the sibling's position, in bytes
                siblings.append(level[at : at + 32])
            at = (path_int >> (256 - last)) << 5
            node = top[last][at : at + 32]
            ended = live.walk(node, bits, last, siblings)
            if len(ended) != HASH_BYTES:
                return siblings, ended
            node = ended  # not in the table (a corrupt table): read it as below
            depth = len(siblings)
        append = siblings.append
        young = self._young.get
        old = self._old.get
        get_node = self.get_node
        live_get = live.get if live is not None else None
        admit_depth = ADMIT_DEPTH if live is not None else 256
        empty = EMPTY
        while node != empty:
            if depth < admit_depth or live_get is None:
                # A hit in the older generation is not moved to the younger one: a hot node lost
                # when the cache turns over costs one source read, and is admitted again then.
                encoding = young(node) or old(node) or get_node(node)
            else:
                # Below the admitted levels with a live table: nothing there is cached.
                found = live_get(node) or self._get_node_no_admit(node)
                if found is None:
                    raise _missing(node)
                encoding = found
            if not encoding[0]:  # LEAF_TAG
                return siblings, encoding
            if bits[depth] == "0":
                node = encoding[1:33]
                append(encoding[33:])
            else:
                node = encoding[33:]
                append(encoding[1:33])
            depth += 1
        return siblings, b""

    def _top_levels(self) -> list[bytes] | None:
        """The current tree's full top levels (``PackedNodes.top_levels``, at most
        :data:`TOP_LEVELS` deep), made once the current root has served ``top_after_reads``
        walks and kept until the root changes (a node store that reads its tip once a block
        never pays for them); ``None`` until then, or without a live table."""
        top = self._top
        root = self._root
        if top is not None and top[0] == root:
            return top
        if self._top_root != root:
            self._top = None  # an older root's: let it go
            self._top_root = root
            self._top_walks = 0
        self._top_walks += 1
        if self._top_walks < self._top_after_reads or self._live is None:
            return None
        top = self._top = self._live.top_levels(root, TOP_LEVELS)
        return top

    def prove(self, key: bytes, root: bytes | None = None) -> SparseMerkleProof:
        """Return the reference's inclusion or exclusion proof of ``key`` under ``root``.

        ``root`` defaults to the current root; any root whose nodes the store still holds works.
        """
        return self.prove_path(compute_path(key), root)

    def prove_path(self, path: bytes, root: bytes | None = None) -> SparseMerkleProof:
        """:meth:`prove` at the path level: the proof for the 32-byte ``path``."""
        siblings, leaf = self.descend(path, root)
        occupant = None
        if leaf and leaf[1:33] != path:
            occupant = (leaf[1:33], leaf[33:])
        return SparseMerkleProof(siblings=tuple(siblings), leaf=occupant)

    def get_value_hash(self, key: bytes, root: bytes | None = None) -> bytes | None:
        """Return ``sha256(value)`` of ``key`` under ``root`` (default: current), or ``None``."""
        path = compute_path(key)
        _, leaf = self.descend(path, root)
        if leaf and leaf[1:33] == path:
            return leaf[33:]
        return None

    def iter_leaves(self, root: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield every ``(path, value_hash)`` under ``root`` (default: current), in path order."""
        stack = [self._root if root is None else root]
        while stack:
            node = stack.pop()
            if node == EMPTY:
                continue
            encoding = self.get_node(node)
            if encoding[0] == LEAF_TAG:
                yield encoding[1:33], encoding[33:]
            else:
                stack.append(encoding[33:])
                stack.append(encoding[1:33])

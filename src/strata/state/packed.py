"""Tree nodes packed in flat memory: ``node hash -> (encoding, born)`` at ~110 bytes a node.

Why (measured in ``docs/storage.md``): a node held as Python objects (its 32-byte hash and
65-byte encoding as ``bytes`` in a dict) costs ~230 bytes, and a node read from LMDB maps the
file's pages into the process, so a store whose current tree lived in either grew to 0.8-3 GB
per million keys. :class:`PackedNodes` holds the current tree's nodes in fixed-size records of
one anonymous memory map, found through an open-addressed index of 4-byte slot numbers.

Layout
------
A record is ``hash (32) ‖ encoding (65) ‖ 3 zero bytes ‖ born (4, little-endian)``,
:data:`RECORD_BYTES` = 104 bytes (a multiple of 8, so the records can be viewed as integer
columns), in slot ``s`` at offset ``104 * s``. ``born`` is the last height that built the node,
modulo ``2**32`` (the store compares it only within a window of a few thousand heights). A free
slot has an all-zero hash (``EMPTY``, which is never stored) and waits on a stack for reuse. The
map is private and anonymous: pages count as the process's memory once touched, a ``fork``ed
child sees the table as it was at the fork (copy-on-write), and address space reserved beyond
the used slots costs nothing.

The index is an array of ``2**k`` 32-bit buckets (in a map too) holding ``slot + 1`` (``0``: empty,
``0xFFFFFFFF``: a deleted entry, a "tombstone"). A node's bucket is the low ``k`` bits of its
first 8 bytes read as a little-endian integer; collisions probe the next buckets (linear
probing); a look-up stops at the first empty bucket and skips tombstones; an insert takes the
first tombstone or empty bucket of its probe. When entries and tombstones fill more than three
quarters of the index it is rebuilt, at least twice as large as the entries.

A look-up compares the full 32-byte hash, so the table is exact whatever the keys (crafted
hashes that share their low bits only make probes longer).

Speed
-----
:meth:`get` (one tree read) is plain Python over the map and the index, ~1-2 us at 2.4M nodes, a
dict's speed at that size (both are cache misses). A block changes ~175,000 nodes at 1M keys,
which one by one in Python cost ~600 ms (measured); :meth:`replace` does them as array
operations (``numpy``): every probe of the batch advances one bucket per round, and keys that
race for the same free bucket are ordered by their position in the batch. Pure and
deterministic; no I/O.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Final

import numpy as np
import numpy.typing as npt

HASH_BYTES: Final = 32
ENCODING_BYTES: Final = 65
RECORD_BYTES: Final = 104
NODE_RECORD_BYTES: Final = HASH_BYTES + ENCODING_BYTES
_BORN_AT: Final = 100
_BORN_WORD: Final = _BORN_AT // 4
_WORDS: Final = RECORD_BYTES // 8
_EMPTY_ENTRY: Final = 0
_TOMBSTONE: Final = 0xFFFFFFFF
_BORN_MASK: Final = 0xFFFFFFFF
_MIN_BUCKETS: Final = 1 << 10
_MIN_SLOTS: Final = 1 << 16

Rows = npt.NDArray[np.uint8]
Indices = npt.NDArray[np.int64]


def born_in(born: int, first: int, last: int) -> bool:
    """Whether a stored ``born`` (a height modulo ``2**32``) is one of the heights
    ``first..last`` (a window shorter than ``2**32``)."""
    return (born - first) & _BORN_MASK <= last - first


def full_height(born: int, first: int) -> int:
    """The height at or after ``first`` (within ``2**32``) whose low 32 bits are ``born``."""
    return first + ((born - first) & _BORN_MASK)


def _buckets_for(count: int) -> int:
    buckets = _MIN_BUCKETS
    while buckets < 2 * count:
        buckets *= 2
    return buckets


def _anonymous_map(size: int) -> mmap.mmap:
    """Zeroed private memory of ``size`` bytes, resident only where touched, in huge pages
    where the kernel allows it (measured: a look-up in a 2.9M-node table took 1.4 us instead of
    2.0, with the same resident size: fewer TLB misses on random reads)."""
    flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20)
    flags |= getattr(mmap, "MAP_NORESERVE", 0)
    area = mmap.mmap(-1, size, flags=flags)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        with contextlib.suppress(OSError):  # no transparent huge pages here: plain pages
            area.madvise(advice)
    return area


class _Index:
    """The bucket array: ``buckets`` unsigned 32-bit entries in an anonymous map (see
    :func:`_anonymous_map`), indexed like an ``array('I')``."""

    __slots__ = ("area", "view")

    def __init__(self, buckets: int) -> None:
        self.area = _anonymous_map(4 * buckets)
        self.view = memoryview(self.area).cast("I")

    def close(self) -> None:
        self.view.release()
        self.area.close()


def records_of(rows: bytes) -> Rows:
    """``rows`` (whole records, as :meth:`PackedNodes.replace` returns them) as an ``n x 104``
    array; columns ``0:32`` are the hashes, ``32:97`` the encodings."""
    return np.frombuffer(rows, dtype=np.uint8).reshape(-1, RECORD_BYTES)


def born_of(records: Rows) -> npt.NDArray[np.uint32]:
    """The ``born`` column (little-endian ``uint32``) of an ``n x 104`` record array."""
    return np.ascontiguousarray(records[:, _BORN_AT:]).view("<u4").ravel()


def prefixes_of(keys: Rows) -> npt.NDArray[np.uint64]:
    """The first 8 bytes of each row (a hash, or a record's hash) as a little-endian
    ``uint64``: what the index buckets on."""
    return np.ascontiguousarray(keys[:, :8]).view("<u8").ravel()


def _held(records: Rows) -> npt.NDArray[np.bool_]:
    """Which records hold a node (a free slot's hash is all zero)."""
    words = records.view("<u8")
    held: npt.NDArray[np.bool_] = (words[:, 0] | words[:, 1] | words[:, 2] | words[:, 3]) != 0
    return held


def pack_record(node_hash: bytes, encoding: bytes, born: int) -> bytes:
    """One 104-byte record (the layout in the module docstring)."""
    return node_hash + encoding + bytes(3) + (born & _BORN_MASK).to_bytes(4, "little")


def unpack_record(record: bytes) -> tuple[bytes, bytes, int]:
    """``(hash, encoding, born)`` of one 104-byte record (``born`` modulo ``2**32``)."""
    return (
        record[:HASH_BYTES],
        record[HASH_BYTES : HASH_BYTES + ENCODING_BYTES],
        int.from_bytes(record[_BORN_AT:RECORD_BYTES], "little"),
    )


class PackedNodes:
    """A ``hash -> (encoding, born)`` table of fixed 104-byte records (module docstring).

    ``expected`` sizes the index and the reserved address space up front (both grow anyway).
    """

    __slots__ = (
        "_arena",
        "_capacity",
        "_count",
        "_free",
        "_index",
        "_index_area",
        "_mask",
        "_slots",
        "_tombs",
    )

    def __init__(self, expected: int = 0) -> None:
        self._capacity = max(_MIN_SLOTS, 4 * expected)
        """Slots the map can hold (address space; only used slots are ever touched)."""
        self._arena = _anonymous_map(self._capacity * RECORD_BYTES)
        self._slots = 0
        """Slots used so far, free ones included: the high-water mark."""
        self._free: list[npt.NDArray[np.int64]] = []
        """Freed slots, in batches (a stack of arrays)."""
        self._count = 0
        self._tombs = 0
        self._index_area = _Index(_buckets_for(expected))
        self._index = self._index_area.view
        self._mask = len(self._index) - 1

    def __len__(self) -> int:
        return self._count

    @property
    def slots_used(self) -> int:
        """The high-water mark of records (held and free)."""
        return self._slots

    @property
    def nbytes(self) -> int:
        """Bytes of the used records and of the index."""
        return self._slots * RECORD_BYTES + 4 * len(self._index)

    # -- reads ----------------------------------------------------------------------------------

    def get(self, node_hash: bytes) -> bytes | None:
        """The encoding of ``node_hash``, or ``None`` if the table does not hold it."""
        # The hot path of every tree read: constants written out (104 = RECORD_BYTES,
        # 0xFFFFFFFF = a tombstone, 97 = hash and encoding).
        index = self._index
        mask = self._mask
        arena = self._arena
        bucket = int.from_bytes(node_hash[:8], "little") & mask
        entry = index[bucket]
        while entry:
            if entry != 0xFFFFFFFF:
                offset = (entry - 1) * 104
                if arena[offset : offset + 32] == node_hash:
                    return arena[offset + 32 : offset + 97]
            bucket = (bucket + 1) & mask
            entry = index[bucket]
        return None

    def walk(self, node: bytes, bits: str, depth: int, siblings: list[bytes]) -> bytes:
        """Walk a tree held here from ``node`` (at ``depth``) down the path whose bits (``"0"``:
        left) are ``bits``, appending each level's sibling hash to ``siblings``. Returns the
        encoding of the leaf where the path ends, ``b""`` if it ends at ``EMPTY``, or the
        32-byte hash of the first node the table does not hold (the caller goes on from there
        through its other sources).

        :meth:`get` and the step of ``SparseMerkleTree.descend`` in one loop (the encoding is
        ``tag ‖ left ‖ right`` for an internal node, tag 0 for a leaf): a proof's deep levels
        cost one probe each, without a call or a copy of the encoding.
        """
        index = self._index
        mask = self._mask
        arena = self._arena
        append = siblings.append
        empty = bytes(HASH_BYTES)
        while node != empty:
            bucket = int.from_bytes(node, "little") & mask
            entry = index[bucket]
            while entry:
                if entry != 0xFFFFFFFF:
                    offset = (entry - 1) * 104
                    if arena[offset : offset + 32] == node:
                        break
                bucket = (bucket + 1) & mask
                entry = index[bucket]
            else:
                return node
            if not arena[offset + 32]:  # LEAF_TAG
                return arena[offset + 32 : offset + 97]
            if bits[depth] == "0":
                node = arena[offset + 33 : offset + 65]
                append(arena[offset + 65 : offset + 97])
            else:
                node = arena[offset + 65 : offset + 97]
                append(arena[offset + 33 : offset + 65])
            depth += 1
        return b""

    def top_levels(self, root: bytes, most: int) -> list[bytes]:
        """The hashes of the top levels of the tree under ``root``, by position: level ``d``
        joins the ``2**d`` hashes at depth ``d`` from left to right (``levels[d][32 * q :
        32 * q + 32]`` is the node reached from the root by the ``d`` bits of ``q``, most
        significant first).

        Levels are given down to ``most`` at most, and only as far as every node above is an
        internal node this table holds: the first level with a leaf, ``EMPTY`` or a node not
        held here is the last one given. ``[root]`` at least.

        One table look-up per node, as array operations level by level (~32,000 nodes for 15
        levels); see ``SparseMerkleTree.descend`` for what it serves.
        """
        levels = [root]
        hashes = np.frombuffer(root, dtype=np.uint8).reshape(1, HASH_BYTES)
        index = np.frombuffer(self._index, dtype=np.uint32)
        records = self._view()
        try:
            for _ in range(most):
                found = self._find(hashes, index, records)[0]
                if (found < 0).any():
                    break
                slots = index[found].astype(np.int64) - 1
                encodings = records[slots, HASH_BYTES : HASH_BYTES + ENCODING_BYTES]
                if (encodings[:, 0] != 1).any():  # a leaf (tag 0) ends the full levels
                    break
                hashes = encodings[:, 1:].reshape(-1, HASH_BYTES)  # left, right, left, ...
                levels.append(hashes.tobytes())
        finally:
            del index, records
        return levels

    def __contains__(self, node_hash: bytes) -> bool:
        return self.get(node_hash) is not None

    def rows_born(self, first: int, last: int) -> bytes:
        """Every record built at one of the heights ``first..last`` (``born`` modulo ``2**32``),
        whole and in slot order, as one string of 104-byte records."""
        if not self._slots:
            return b""
        records = self._view()[: self._slots]
        born = born_of(records).astype(np.int64)
        wanted = ((born - first) & _BORN_MASK) <= last - first
        picked: bytes = records[wanted & _held(records)].tobytes()
        del records
        return picked

    def rows(self) -> bytes:
        """Every record held, whole and in slot order (for :meth:`load_rows` elsewhere)."""
        return self.rows_born(0, _BORN_MASK)

    # -- writes ---------------------------------------------------------------------------------

    def replace(self, new_nodes: Mapping[bytes, bytes], stale: Iterable[bytes], born: int) -> bytes:
        """One tree update: remove the ``stale`` hashes, then hold every node of ``new_nodes``
        built at height ``born`` (a node already held keeps its record and takes the new
        ``born``). Returns the removed records, whole (see :func:`records_of`), in the order of
        ``stale``; a stale hash the table does not hold is skipped.

        Raises ``ValueError`` for a hash or encoding of the wrong length or the all-zero hash;
        then nothing has changed.
        """
        stale_keys = _keys(list(stale), HASH_BYTES)
        new_keys = _keys(list(new_nodes), HASH_BYTES)
        encodings = _keys(list(new_nodes.values()), ENCODING_BYTES)
        rows = np.zeros((len(new_keys), RECORD_BYTES), dtype=np.uint8)
        rows[:, :HASH_BYTES] = new_keys
        rows[:, HASH_BYTES : HASH_BYTES + ENCODING_BYTES] = encodings
        rows.view("<u4")[:, _BORN_WORD] = born & _BORN_MASK
        return self._apply(stale_keys, rows)

    def replace_packed(self, nodes: bytes, stale: bytes, born: int) -> bytes:
        """:meth:`replace` with its arguments packed as :func:`pack_update` packs them (an update
        computed in another process crosses as two strings, with no Python object per node).
        ``ValueError`` as :meth:`replace`, or for strings that are not whole records."""
        if len(nodes) % NODE_RECORD_BYTES or len(stale) % HASH_BYTES:
            raise ValueError("packed nodes are 97 bytes each and stale hashes 32")
        new = np.frombuffer(nodes, dtype=np.uint8).reshape(-1, NODE_RECORD_BYTES)
        rows = np.zeros((len(new), RECORD_BYTES), dtype=np.uint8)
        rows[:, :NODE_RECORD_BYTES] = new
        rows.view("<u4")[:, _BORN_WORD] = born & _BORN_MASK
        return self._apply(np.frombuffer(stale, dtype=np.uint8).reshape(-1, HASH_BYTES), rows)

    def load_rows(self, rows: bytes) -> None:
        """Hold whole records (``hash ‖ encoding ‖ 3 zero bytes ‖ born``, 104 bytes each, as
        :meth:`rows_born` gives them), each with its own ``born``. ``ValueError`` as
        :meth:`replace`."""
        if len(rows) % RECORD_BYTES:
            raise ValueError(f"records are {RECORD_BYTES} bytes each")
        self._apply(_keys([], HASH_BYTES), records_of(rows))

    def _apply(self, stale_keys: Rows, rows: Rows) -> bytes:
        if len(rows) and not rows[:, :HASH_BYTES].any(axis=1).all():
            raise ValueError("the all-zero hash (EMPTY) is never stored")
        removed = self._remove(stale_keys)
        if len(rows):
            self._insert(rows)
        return removed

    def _remove(self, keys: Rows) -> bytes:
        if not len(keys):
            return b""
        index = np.frombuffer(self._index, dtype=np.uint32)
        records = self._view()
        found = self._find(keys, index, records)[0]
        buckets = found[found >= 0]
        slots = index[buckets].astype(np.int64) - 1
        removed: bytes = records[slots].tobytes()
        records[slots, :HASH_BYTES] = 0
        index[buckets] = _TOMBSTONE
        del index, records
        self._free.append(slots)
        self._count -= len(slots)
        self._tombs += len(slots)
        return removed

    def _insert(self, rows: Rows) -> None:
        """Hold the records ``rows``: a hash already held takes the row's ``born``."""
        if (self._count + self._tombs + len(rows)) * 4 > len(self._index) * 3:
            self._rebuild(self._count + len(rows))
        keys = rows[:, :HASH_BYTES]
        index = np.frombuffer(self._index, dtype=np.uint32)
        records = self._view()
        found, first_free = self._find(keys, index, records)
        present = found >= 0
        if present.any():
            slots = index[found[present]].astype(np.int64) - 1
            records[slots, _BORN_AT:] = rows[present, _BORN_AT:]
        absent = np.flatnonzero(~present)
        del index, records
        if not len(absent):
            return
        slots = self._allocate(len(absent))
        records = self._view()
        records[slots] = rows[absent]
        del records
        index = np.frombuffer(self._index, dtype=np.uint32)
        reused = self._place(index, first_free[absent], slots)
        del index
        self._count += len(absent)
        self._tombs -= reused

    # -- internals ------------------------------------------------------------------------------

    def _view(self) -> Rows:
        """The map as an ``n x 104`` array (a view: writes go to the table)."""
        return np.frombuffer(self._arena, dtype=np.uint8).reshape(-1, RECORD_BYTES)

    def _find(
        self, keys: Rows, index: npt.NDArray[np.uint32], records: Rows
    ) -> tuple[Indices, Indices]:
        """For each key, the bucket holding it (``-1``: absent) and the first free bucket
        (tombstone or empty) of its probe, all probes advancing together."""
        count = len(keys)
        mask = self._mask
        prefix = prefixes_of(keys)
        bucket = (prefix & np.uint64(mask)).astype(np.int64)
        found = np.full(count, -1, dtype=np.int64)
        first_free = np.full(count, -1, dtype=np.int64)
        todo = np.arange(count, dtype=np.int64)
        words = records.view("<u8")
        while len(todo):
            at = bucket[todo]
            entry = index[at]
            empty = entry == _EMPTY_ENTRY
            free = empty | (entry == _TOMBSTONE)
            unset = free & (first_free[todo] < 0)
            first_free[todo[unset]] = at[unset]
            held = np.flatnonzero(~free)
            slots = entry[held].astype(np.int64) - 1
            same = words[slots, 0] == prefix[todo[held]]
            candidates = held[same]
            if len(candidates):
                whole = (records[slots[same], :HASH_BYTES] == keys[todo[candidates]]).all(axis=1)
                hits = candidates[whole]
                found[todo[hits]] = at[hits]
                empty[hits] = True
            todo = todo[~empty]
            bucket[todo] = (bucket[todo] + 1) & mask
        return found, first_free

    def _place(self, index: npt.NDArray[np.uint32], start: Indices, slots: Indices) -> int:
        """Put ``slots`` into the index, each at the first free bucket from its ``start`` on
        (its probe's first free bucket: every bucket before it is taken); of keys racing for
        one bucket the first in the batch wins and the others probe on. Returns how many
        tombstones were taken."""
        mask = self._mask
        bucket = start.copy()
        todo = np.arange(len(slots), dtype=np.int64)
        reused = 0
        while len(todo):
            at = bucket[todo]
            entry = index[at]
            free = np.flatnonzero((entry == _EMPTY_ENTRY) | (entry == _TOMBSTONE))
            _, first = np.unique(at[free], return_index=True)
            winners = free[first]
            reused += int(np.count_nonzero(entry[winners] == _TOMBSTONE))
            index[at[winners]] = (slots[todo[winners]] + 1).astype(np.uint32)
            placed = np.zeros(len(todo), dtype=bool)
            placed[winners] = True
            todo = todo[~placed]
            bucket[todo] = (bucket[todo] + 1) & mask
        return reused

    def _allocate(self, count: int) -> Indices:
        """``count`` free slots: freed ones first (most recently freed first), then new ones
        (the map grows, by copying, when its reserved space runs out)."""
        taken: list[Indices] = []
        need = count
        while need and self._free:
            batch = self._free[-1]
            if len(batch) <= need:
                taken.append(self._free.pop())
                need -= len(batch)
            else:
                taken.append(batch[len(batch) - need :])
                self._free[-1] = batch[: len(batch) - need]
                need = 0
        if need:
            start = self._slots
            if start + need > self._capacity:
                self._grow(start + need)
            taken.append(np.arange(start, start + need, dtype=np.int64))
            self._slots = start + need
        return np.concatenate(taken) if len(taken) != 1 else taken[0]

    def _grow(self, slots: int) -> None:
        capacity = self._capacity
        while capacity < slots:
            capacity *= 2
        arena = _anonymous_map(capacity * RECORD_BYTES)
        used = self._slots * RECORD_BYTES
        step = 1 << 24
        for start in range(0, used, step):  # in steps: no transient copy of the whole table
            end = min(used, start + step)
            arena[start:end] = self._arena[start:end]
        self._arena.close()
        self._arena = arena
        self._capacity = capacity

    def _rebuild(self, count: int) -> None:
        """A fresh index for ``count`` entries (no tombstones), re-placing every held record."""
        self._index_area.close()
        self._index_area = _Index(_buckets_for(count))
        self._index = self._index_area.view
        self._mask = len(self._index) - 1
        self._tombs = 0
        if not self._slots:
            return
        records = self._view()[: self._slots]
        slots = np.flatnonzero(_held(records))
        prefix = prefixes_of(records[slots])
        del records
        index = np.frombuffer(self._index, dtype=np.uint32)
        start = (prefix & np.uint64(self._mask)).astype(np.int64)
        self._place(index, start, slots.astype(np.int64))
        del index


def pack_update(new_nodes: Mapping[bytes, bytes], stale: Iterable[bytes]) -> tuple[bytes, bytes]:
    """A tree update's nodes as one string of ``hash ‖ encoding`` records (97 bytes each) and
    its stale hashes as one string, for :meth:`PackedNodes.replace_packed`."""
    return b"".join(chain.from_iterable(new_nodes.items())), b"".join(stale)


def _keys(items: list[bytes], width: int) -> Rows:
    """``items`` (each ``width`` bytes) as an ``n x width`` array; ``ValueError`` otherwise."""
    if items and set(map(len, items)) != {width}:
        raise ValueError(f"expected {width}-byte strings")
    joined = b"".join(items)
    return np.frombuffer(joined, dtype=np.uint8).reshape(-1, width)

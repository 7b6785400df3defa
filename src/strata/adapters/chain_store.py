"""The durable chain: a block log and a state store, two LMDB environments.

Layout (named databases; the block log is ``DATA_DIR/chain/``, the state store ``chain/state/``)
-------------------------------------------------------------------------------------------------
==============  =======================================  ==========================================
database        key                                      value
==============  =======================================  ==========================================
block log
``meta``        ``format``, ``genesis``, ``tip``,        format tag (written last at creation);
                ``base``                                 genesis config (JSON); the last
                                                         acknowledged block; the first height
                                                         with a header (0, or the snapshot height)
``blocks``      height (8 B)                             checksummed canonical block bytes
``headers``     height (8 B)                             checksummed canonical header bytes
``receipts``    height (8 B)                             checksummed receipts and block events
state store
``meta``        ``format``, ``genesis``, ``checkpoint``, format tag; the block log's genesis
                ``pruned``                               record; the checkpoint; the oldest height
                                                         whose tree and history survive pruning
``state``       state key                                value at the checkpoint height
``history``     height (8 B) ‖ state key                 the value *before* the block at ``height``
                                                         changed it (``0x00`` absent, ``0x01 v``)
``nodes``       node hash                                tree node encoding (``state/smt.py``) ‖
                                                         the last height that built it (8 B)
``stale``       height (8 B) ‖ node hash                 ``b""``: the node left the tree then
==============  =======================================  ==========================================

Durability is staged (measured in ``docs/storage.md``): every block is acknowledged only after its
one write transaction on the block log (block, header, receipts, tip) is committed with
``fsync``; every ``checkpoint_every`` blocks a checkpoint writes the state changes, their history
and the tree nodes of all blocks since the last checkpoint in one transaction of the state store.
The checkpoint runs in a forked writer process (its own interpreter lock, on the other core; a
thread would contend for the GIL with the tree update, see ``docs/storage.md``) while blocks keep
committing to the block log, which the state store's writer never locks. One runs at a time; the
node forgets its blocks and nodes only once it has committed. Recovery loads the checkpoint,
checks it, and re-executes the acknowledged blocks after it with the same ``apply_block`` (which
checks every root against the stored headers), so an acknowledged block survives ``kill -9`` and
no block is ever half there. A checkpoint only holds acknowledged blocks, so it lags the tip in
every crash order; one that leads the tip (or sits below the base) is refused.

Recovery refuses, with :class:`StoreError`, a database whose contents do not check out: a data
file that ends before pages LMDB uses (truncated; pages past its end that LMDB lists as free
are fine, see ``_check_data_file``), a record whose checksum fails (every header, block and
receipts record is checked at open), a header that does not link to its parent, a tree node
whose bytes do not hash to its key (every node is checked at open), a checkpoint whose state
does not hash to its header's root, a tree that does not reach that root, a block that does not
re-execute to its header. Nothing is repaired or overwritten silently. The
full scan costs a read of the whole file at open; ``open(..., full_check=False)`` skips the scans
of records and nodes that recovery itself does not read (the checkpoint and the replayed blocks
are always checked). Values at older heights (``history``) are checked when read: :meth:`read`
compares every value with the leaf of the tree at that height.

Reads at a height
-----------------
:meth:`ChainStore.read` serves the retained window, the last ``retain_heights`` heights (never
below the snapshot base nor below what pruning kept). The value at height ``h``: for ``h`` at or
after the checkpoint, the newest in-memory change of a block ``<= h`` since the checkpoint, else
the ``state`` value; for ``h`` before it, the ``history`` record of the key at the first height
``> h`` that has one (the value before that block changed it), else the ``state`` value. The
proof comes from the tree at the root of header ``h`` (nodes of every retained root are in
``nodes`` or still pending in the tree).

Snapshots
---------
:meth:`ChainStore.export_snapshot` writes the genesis config, the header at ``H`` and every state
entry at ``H`` in key order; :meth:`ChainStore.import_snapshot` checks the file's checksum and
that the entries hash to the header's state root, then creates a store whose tip is ``H``. The
file format (version 1)::

    magic      8 bytes   b"STRSNAP\\x00"
    frame*     4-byte big-endian length n (n > 0) ‖ n bytes of msgpack
               frame 0: [version, height, genesis JSON, canonical header bytes, entry count]
               frames 1..: [[key, value], ...] at most 4,096 entries each, keys strictly
               increasing across frames
    end        4 zero bytes
    trailer    32 bytes: sha256 of every byte before it (magic through end)
"""

from __future__ import annotations

import gc
import hashlib
import os
import struct
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from pathlib import Path
from typing import IO, Any, Final

import lmdb
import msgspec

from strata.adapters.lifetime import die_with_parent, name_process
from strata.adapters.memory import mapped_ranges, release_free_memory, release_mapped_pages
from strata.adapters.node_spill import Spill
from strata.core.codec import encode
from strata.core.errors import ChainError
from strata.core.merkle import (
    EMPTY,
    SparseMerkleProof,
    compute_path,
    compute_value_hash,
)
from strata.state.packed import (
    PackedNodes,
    born_in,
    full_height,
    pack_record,
    records_of,
    unpack_record,
)
from strata.state.smt import (
    NODE_BYTES,
    NODE_TAG,
    CorruptNodeError,
    MemoryNodeSource,
    MissingNodeError,
    SparseMerkleTree,
    TreeUpdate,
)
from strata.state.store import ChainTip, State
from strata.stf.block import (
    Block,
    BlockEvents,
    BlockOutput,
    Header,
    Receipt,
    compute_header_hash,
    decode_block,
)
from strata.stf.commitment import IncrementalCommitment
from strata.stf.genesis import GenesisConfig, make_genesis
from strata.stf.params import ChainParams
from strata.stf.state_io import load_state
from strata.stf.state_root import clear_changes, compute_state_root, iter_state_leaves
from strata.stf.transition import apply_block

FORMAT = b"strata-chain-2"
STATE_FORMAT = b"strata-state-2"
STATE_DIR = "state"
"""The state store's environment, a subdirectory of the block log's."""
_LOG_DATABASES = (b"meta", b"blocks", b"headers", b"receipts")
_STATE_DATABASES = (b"state-meta", b"state", b"history", b"nodes", b"stale")
_DATABASES = _LOG_DATABASES + _STATE_DATABASES
_BORN = slice(NODE_BYTES, None)
TREE_CACHE_NODES: Final = 1 << 16
"""The tree's cache of hot nodes (the top ~15 levels, ~15 MB) in front of its live table."""
_LOAD_BATCH: Final = 1 << 16
CHECKPOINT_NODE_CHUNK: Final = 1 << 17
"""Nodes per write transaction of a checkpoint before its last one (see ``_persist``)."""
RELEASE_EVERY_READS: Final = 256
"""Reads (:meth:`ChainStore.read`) between two releases of the files' mapped pages. A read maps
the pages of its value and, with the kernel's fault-around, up to 64 KB beside each (measured
at 1M keys: 63 MB mapped by 544 reads, ~116 KB a read); released every 256 reads
(``adapters/memory.py``), they stay under ~30 MB of the resident set instead of growing to the
size of the state table. A release costs ~0.4 ms (under 2 us a read)."""

SNAPSHOT_MAGIC: Final = b"STRSNAP\x00"
SNAPSHOT_VERSION: Final = 1
_SNAPSHOT_CHUNK: Final = 4096
_SNAPSHOT_MAX_FRAME: Final = 1 << 30


class StoreError(Exception):
    """The store cannot be used as it is: the message says what did not check out, and where."""


class _Checkpoint(msgspec.Struct, frozen=True, array_like=True):
    height: int
    state_root: bytes


class _ReceiptsRecord(msgspec.Struct, frozen=True, array_like=True):
    receipts: tuple[Receipt, ...]
    block_events: BlockEvents


class _EncodedReceiptsRecord(msgspec.Struct, frozen=True, array_like=True):
    """The same record, with each receipt's bytes as they are (``BlockOutput.encoded_receipts``):
    written without decoding and encoding the receipts again."""

    receipts: tuple[msgspec.Raw, ...]
    block_events: BlockEvents


class _SnapshotHead(msgspec.Struct, frozen=True, array_like=True):
    version: int
    height: int
    genesis: bytes
    header: bytes
    entries: int


_HEADER = msgspec.msgpack.Decoder(Header)
_TIP = msgspec.msgpack.Decoder(ChainTip)
_CHECKPOINT = msgspec.msgpack.Decoder(_Checkpoint)
_RECEIPTS = msgspec.msgpack.Decoder(_ReceiptsRecord)
_ENCODED_RECEIPTS = msgspec.msgpack.Decoder(_EncodedReceiptsRecord)
_SNAPSHOT_HEAD = msgspec.msgpack.Decoder(_SnapshotHead)
_SNAPSHOT_CHUNK_DECODER = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])
_HEIGHT = msgspec.msgpack.Decoder(int)


def _height_key(height: int) -> bytes:
    return height.to_bytes(8, "big")


def _seal(payload: bytes) -> bytes:
    """A record with its checksum: ``sha256(payload)[:8] ‖ payload``."""
    return hashlib.sha256(payload).digest()[:8] + payload


def _unseal(record: bytes, what: str) -> bytes:
    payload = record[8:]
    if len(record) < 8 or hashlib.sha256(payload).digest()[:8] != record[:8]:
        raise StoreError(f"{what}: checksum mismatch (the record is corrupt)")
    return payload


@dataclass
class _Pending:
    """A block acknowledged since the last checkpoint, in memory until a checkpoint holds it.

    Its tree nodes are not here: the ones still in the tree are in the tree's live table
    (stamped with the block's height), the ones a later block made stale in the node source's
    spills."""

    height: int
    changes: dict[bytes, bytes | None]
    root: bytes


@dataclass
class _Job:
    """A checkpoint: the blocks it persists (an immutable snapshot) and what it leaves behind."""

    blocks: list[_Pending]
    height: int
    spills: list[Spill]
    """The spills it writes (closed: the blocks after it spill elsewhere)."""
    record: bytes
    """The sealed checkpoint record it writes."""
    pruned: int
    """The pruned height after it."""
    pid: int = 0
    """The writer process (0: written in this process)."""
    started: float = field(default_factory=time.perf_counter)


class _NodeSource:
    """The nodes of older roots, for the tree's reads that miss its live table: the records
    released since the last checkpoint (``spills``, newest first), then the state store.

    ``txn``, when set (during a read), is used instead of a fresh read transaction per node.
    """

    def __init__(self, env: lmdb.Environment, db: Any, directory: Path) -> None:
        self._env = env
        self._db = db
        self._directory = directory
        self.txn: lmdb.Transaction | None = None
        self.spills: list[Spill] = [Spill(directory)]
        """Newest last; the last one takes the blocks' released records."""

    def get_node(self, node_hash: bytes) -> bytes | None:
        for spill in reversed(self.spills):
            encoding = spill.get(node_hash)
            if encoding is not None:
                return encoding
        txn = self.txn
        if txn is not None:
            found = txn.get(node_hash, db=self._db)
        else:
            with self._env.begin(db=self._db) as txn:
                found = txn.get(node_hash)
        return None if found is None else bytes(found[:NODE_BYTES])

    def spill(self, height: int, released: list[bytes]) -> None:
        """Keep the records the update of ``height`` released until a checkpoint holds them."""
        for rows in released:
            self.spills[-1].append(height, rows)

    @property
    def spilled(self) -> int:
        return sum(spill.records for spill in self.spills)

    def start_checkpoint(self) -> list[Spill]:
        """The spills so far go into a checkpoint; later blocks spill into a new one."""
        taken = list(self.spills)
        self.spills.append(Spill(self._directory))
        return taken

    def end_checkpoint(self, taken: list[Spill], *, committed: bool) -> None:
        """The checkpoint that took ``taken`` committed (its records are in LMDB: drop them) or
        failed (they stay, and go into the next one)."""
        if committed:
            for spill in taken:
                spill.close()
            self.spills = [spill for spill in self.spills if all(spill is not t for t in taken)]

    def close(self) -> None:
        for spill in self.spills:
            spill.close()


def _check_data_file(path: Path, env: lmdb.Environment) -> None:
    """Refuse a data file that has lost pages the store can reach (a truncated file would be
    mapped past its end, and reading there kills the process with ``SIGBUS``).

    The file may legitimately end before page ``last_pgno``: LMDB documents ``mm_last_pg`` as
    "Last used page in the datafile. Actually the file may be shorter if the freeDB lists the
    final pages" (``MDB_meta`` in ``mdb.c``). Without ``MDB_WRITEMAP`` the file grows only by
    ``mdb_page_flush``'s ``pwrite`` of dirty pages, while ``mdb_env_write_meta`` records
    ``mt_next_pgno - 1``; a page ``mdb_page_alloc`` took at ``mt_next_pgno`` and the same
    transaction freed is never written: a loose page (``mdb_page_loose``) that
    ``mdb_freelist_save`` puts on the free list and ``mdb_page_flush`` skips (``P_LOOSE``), or
    overflow pages ``mdb_ovpage_free`` takes off the dirty list. LMDB itself clamps to the file
    size where it reads up to ``last_pgno`` (``mdb_env_copyfd0``), and never reads a free page
    (``mdb_page_alloc`` hands out a fresh buffer). Every page up to ``last_pgno`` is "either used
    by a database or listed in a freeDB record" (``MDB_page``); one in use was written, and
    synced, before ``mdb_txn_commit`` wrote the meta page that reaches it.

    So a file of at least ``(last_pgno + 1) * psize`` bytes passes at once; a shorter one passes
    only if every page from its end (a partial page counts as missing) to ``last_pgno`` is listed
    in the free-page database of the newest meta page, read here with ``pread`` (never through the
    map). Only a short file pays for that read, of the free-page database alone (usually a few
    pages; the pages in use are never walked).

    Raises
    ------
    StoreError
        If a page past the end of the file is not free (``truncated``), or the meta pages or the
        free-page database cannot be read (``unreadable``).
    """
    data_file = path / "data.mdb"
    size = data_file.stat().st_size
    psize = env.stat()["psize"]
    info = env.info()
    last_pgno = info["last_pgno"]
    used = (last_pgno + 1) * psize
    if size >= used:
        return
    first_missing = size // psize
    with data_file.open("rb", buffering=0) as file:
        free = _free_pages(
            file.fileno(), size, psize, info["last_txnid"], last_pgno, f"{path.name}/data.mdb"
        )
    if free is None or any(pgno not in free for pgno in range(first_missing, last_pgno + 1)):
        raise StoreError(
            f"{path.name}/data.mdb is truncated: {size} bytes on disk, {used} bytes in use"
        )


# LMDB 0.9's page layout (``mdb.c``, native byte order). Every page starts with ``MDB_page``:
# page number (8 B), pad (2), flags (2), then ``mp_lower`` and ``mp_upper`` (2 + 2) or, on the
# first page of an overflow run, its page count (4). Pages 0 and 1 hold an ``MDB_meta`` after
# that header: magic, version, address, map size, ``MDB_db`` of the free and main databases
# (pad 4, flags 2, depth 2, branch/leaf/overflow pages, entries, root: 8 each), last page,
# txnid. A branch or leaf page has ``(mp_lower - 16) / 2`` node offsets (2 B each) after the
# header; a node is ``mn_lo``, ``mn_hi``, ``mn_flags``, ``mn_ksize`` (2 B each), key, data. A
# branch node's child is ``lo | hi << 16 | flags << 32``; a leaf node's data size ``lo | hi <<
# 16``, its data the page number of an overflow run if ``F_BIGDATA``. A free-page record is
# keyed by txnid; its data is an ID list: a count, then that many page numbers (8 B each).
_PAGE_HEADER = struct.Struct("=QHHHH")
_PAGE_HEADER_BYTES = 16
_META = struct.Struct("=IIQQ" + "IHHQQQQQ" * 2 + "QQ")
_NODE = struct.Struct("=HHHH")
_NODE_BYTES = 8
_ID = struct.Struct("=Q")
_MDB_MAGIC = 0xBEEFC0DE
_MDB_DATA_VERSION = 1
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_META = 0x01, 0x02, 0x04, 0x08
_F_BIGDATA = 0x01
_P_INVALID = (1 << 64) - 1


def _free_pages(
    fd: int, size: int, psize: int, txnid: int, last_pgno: int, name: str
) -> set[int] | None:
    """The page numbers the free-page database of meta page ``txnid`` lists, read from ``fd``
    (the data file ``name``, ``size`` bytes) with ``pread``; ``None`` if a page it needs lies
    past the end of the file.

    Raises ``StoreError`` if neither meta page is the one of ``txnid`` and ``last_pgno`` (the
    environment's), or a page of the free-page database is not what its parent says."""

    def read(offset: int, length: int) -> bytes | None:
        if offset + length > size:
            return None
        data = os.pread(fd, length, offset)
        return data if len(data) == length else None

    def unreadable(what: str) -> StoreError:
        return StoreError(f"{name} is unreadable: {what}")

    root = depth = None
    for meta_pgno in (0, 1):
        page = read(meta_pgno * psize, _PAGE_HEADER_BYTES + _META.size)
        if page is None:
            return None
        flags = _PAGE_HEADER.unpack_from(page)[2]
        meta = _META.unpack_from(page, _PAGE_HEADER_BYTES)
        # magic, version, ..., the free database's depth and root, ..., last page, txnid
        fields = (meta[0], meta[1], meta[-2], meta[-1])
        if flags & _P_META and fields == (_MDB_MAGIC, _MDB_DATA_VERSION, last_pgno, txnid):
            root, depth = meta[11], meta[6]
    if root is None or depth is None:
        raise unreadable(f"no meta page of transaction {txnid} with last page {last_pgno}")
    free: set[int] = set()
    if root == _P_INVALID:
        return free
    pending = [(root, 1)]
    seen: set[int] = set()
    try:
        while pending:
            pgno, level = pending.pop()
            if pgno > last_pgno or pgno in seen:
                raise unreadable(f"free-page database page {pgno} is out of place")
            seen.add(pgno)
            page = read(pgno * psize, psize)
            if page is None:
                return None
            page_pgno, _, flags, lower, _ = _PAGE_HEADER.unpack_from(page)
            kind = _P_BRANCH if level < depth else _P_LEAF
            if page_pgno != pgno or flags & (_P_BRANCH | _P_LEAF) != kind:
                raise unreadable(f"free-page database page {pgno} is not the page expected")
            count = (lower - _PAGE_HEADER_BYTES) // 2
            for offset in struct.unpack_from(f"={count}H", page, _PAGE_HEADER_BYTES):
                lo, hi, node_flags, key_size = _NODE.unpack_from(page, offset)
                if kind == _P_BRANCH:
                    pending.append((lo | hi << 16 | node_flags << 32, level + 1))
                    continue
                data_size = lo | hi << 16
                data_at = offset + _NODE_BYTES + key_size
                if node_flags & _F_BIGDATA:
                    (first,) = _ID.unpack_from(page, data_at)
                    header = read(first * psize, _PAGE_HEADER_BYTES)
                    data = read(first * psize + _PAGE_HEADER_BYTES, data_size)
                    if header is None or data is None:
                        return None
                    first_pgno, _, first_flags, _, _ = _PAGE_HEADER.unpack_from(header)
                    if first_pgno != first or not first_flags & _P_OVERFLOW:
                        raise unreadable(f"free-page record at page {first} is not an overflow")
                else:
                    data = page[data_at : data_at + data_size]
                (ids,) = _ID.unpack_from(data)
                if (ids + 1) * _ID.size > len(data):
                    raise unreadable(f"free-page record of page {pgno} is longer than its data")
                free.update(struct.unpack_from(f"={ids}Q", data, _ID.size))
    except struct.error:
        raise unreadable("a free-page database page does not parse") from None
    return free


def _write_in_child(write: Callable[[], None], what: str) -> None:
    """Run a large state-store write transaction in a forked child and wait for it.

    Why (measured in ``docs/storage.md``): LMDB keeps every dirty page a write transaction
    allocated (up to 512 MB per transaction) on its environment's free list until the
    environment closes, so a multi-million-node transaction in the node process would leave that
    much anonymous memory behind for good. The child's memory goes away with it. Where ``fork``
    does not exist, the transaction runs here."""
    if not hasattr(os, "fork"):
        write()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            name_process("strata-ckpt")
            if die_with_parent(parent):
                gc.disable()
                write()
                status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise StoreError(f"{what}: the write failed in its writer process (exit {code})")


class ChainStore:
    """A chain's durable store (see the module docstring).

    ``open`` recovers: it returns a store whose ``state`` is the post-state of the last
    acknowledged block, with an incremental commitment attached.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        state_env: lmdb.Environment,
        params: ChainParams,
        genesis: GenesisConfig,
        checkpoint_every: int,
        retain_heights: int,
    ) -> None:
        if checkpoint_every < 1 or retain_heights < 1:
            raise StoreError("checkpoint_every and retain_heights must be at least 1")
        self._env = env
        self._state_env = state_env
        self._dbs: dict[bytes, Any] = {name: env.open_db(name) for name in _LOG_DATABASES}
        for name in _STATE_DATABASES:
            self._dbs[name] = state_env.open_db(b"meta" if name == b"state-meta" else name)
        self.params = params
        self.genesis = genesis
        self.checkpoint_every = checkpoint_every
        self.retain_heights = retain_heights
        self.background = hasattr(os, "fork")
        """Checkpoints due in :meth:`commit_block` run in a forked writer process (``False``:
        in this process, blocking the commit)."""
        self._nodes = _NodeSource(state_env, self._dbs[b"nodes"], Path(state_env.path()))
        self._pending: list[_Pending] = []
        self._latest: dict[bytes, bytes | None] = {}
        """The newest change of each key in the pending blocks (reads at the tip)."""
        self._roots: dict[int, bytes] = {}
        """State roots of headers already read (reads at a height), kept for the window."""
        self._job: _Job | None = None
        self._reads = 0
        self._mapped: list[tuple[int, int]] | None = None
        """The address ranges of the two data files' maps (fixed while the environments are
        open; read at the first release)."""
        self._checkpoint_record = b""
        self.checkpoint_log: list[tuple[int, float]] = []
        """``(height, seconds)`` of every checkpoint finished by this process (benchmarks)."""
        self.fault_hook: Callable[[str, int], None] | None = None
        """Called at named points of a commit (crash tests kill the process there): ``before``,
        ``inside``, ``after`` (around the block's transaction), ``checkpoint`` (inside the
        checkpoint's transaction, in the writer process) and ``checkpointed`` (after it commits),
        with the height of the block the checkpoint ends at."""
        self.state: State = State()
        self.tip = ChainTip(-1, 0, bytes(32))
        self.checkpoint_height = -1
        self.base_height = 0
        """The first height whose header the store holds (0, or the height of a snapshot)."""
        self.pruned_height = 0
        """The oldest height whose tree and history pruning has kept."""

    def data_files(self) -> list[Path]:
        """The two memory-mapped data files (block log, state store)."""
        return [Path(env.path()) / "data.mdb" for env in (self._env, self._state_env)]

    def _env_for(self, name: bytes) -> lmdb.Environment:
        """The environment holding database ``name`` (tests reach records through it)."""
        return self._env if name in _LOG_DATABASES else self._state_env

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _open_env(path: Path, map_size: int, max_dbs: int) -> lmdb.Environment:
        path.mkdir(parents=True, exist_ok=True)
        try:
            return lmdb.open(
                str(path),
                max_dbs=max_dbs,
                map_size=map_size,
                sync=True,
                metasync=True,
                writemap=False,
                readahead=False,
            )
        except lmdb.Error as error:
            raise StoreError(f"{path}: cannot open the chain database: {error}") from None

    @classmethod
    def _open_envs(cls, path: Path, map_size: int) -> tuple[lmdb.Environment, lmdb.Environment]:
        env = cls._open_env(path, map_size, len(_LOG_DATABASES))
        try:
            state_env = cls._open_env(path / STATE_DIR, map_size, len(_STATE_DATABASES))
        except StoreError:
            env.close()
            raise
        return env, state_env

    @classmethod
    def create(
        cls,
        path: Path,
        genesis: GenesisConfig,
        *,
        checkpoint_every: int = 16,
        retain_heights: int = 64,
        map_size: int = 1 << 36,
    ) -> ChainStore:
        """Create a new store holding the genesis state (refuses a non-empty directory)."""
        state, header = make_genesis(genesis)
        return cls._initialize(
            path,
            genesis,
            state,
            header,
            checkpoint_every=checkpoint_every,
            retain_heights=retain_heights,
            map_size=map_size,
        )

    @classmethod
    def _initialize(
        cls,
        path: Path,
        genesis: GenesisConfig,
        state: State,
        header: Header,
        *,
        checkpoint_every: int,
        retain_heights: int,
        map_size: int,
        tree: SparseMerkleTree | None = None,
        update: TreeUpdate | None = None,
    ) -> ChainStore:
        """Write a new store whose tip and checkpoint are ``header`` with post-state ``state``
        (genesis, or a snapshot); ``tree``/``update`` may carry the tree already built.

        The state store is written first, the block log (with its format tag) last: a crash in
        between leaves a directory that :meth:`open` refuses (no format tag), never a store."""
        if (path / "data.mdb").exists() or (path / STATE_DIR / "data.mdb").exists():
            raise StoreError(f"{path}: a chain database already exists here; refusing to overwrite")
        entries = sorted(iter_state_leaves(state))
        if tree is None or update is None:
            tree = SparseMerkleTree(MemoryNodeSource())
            update = tree.apply(dict(entries))
        if update.root != header.state_root:
            raise StoreError(f"height {header.height}: the tree root differs from the header's")
        env, state_env = cls._open_envs(path, map_size)
        store = cls(env, state_env, genesis.params, genesis, checkpoint_every, retain_heights)
        height = header.height
        tip = ChainTip(height, header.timestamp_ms, compute_header_hash(header))
        sealed_genesis = _seal(msgspec.json.encode(genesis))
        record = _seal(encode(_Checkpoint(height, header.state_root)))

        def write() -> None:
            with state_env.begin(write=True) as txn:
                meta = store._dbs[b"state-meta"]
                txn.put(b"format", STATE_FORMAT, db=meta)
                txn.put(b"genesis", sealed_genesis, db=meta)
                txn.put(b"pruned", _seal(encode(height)), db=meta)
                txn.cursor(db=store._dbs[b"state"]).putmulti(entries, append=True)
                store._write_nodes(txn, update, height)
                txn.put(b"checkpoint", record, db=meta)

        try:
            _write_in_child(write, f"{path}: the initial state")
        except StoreError:
            env.close()
            state_env.close()
            raise
        with env.begin(write=True) as txn:
            meta = store._dbs[b"meta"]
            txn.put(b"genesis", sealed_genesis, db=meta)
            txn.put(b"base", _seal(encode(height)), db=meta)
            txn.put(_height_key(height), _seal(encode(header)), db=store._dbs[b"headers"])
            txn.put(b"tip", _seal(encode(tip)), db=meta)
            txn.put(b"format", FORMAT, db=meta)
        persisted = store._new_tree(update.root, PackedNodes(len(update.new_nodes)))
        live = persisted.live
        assert live is not None
        live.replace(update.new_nodes, (), height)
        persisted.born = height + 1
        clear_changes(state)
        state.tip = tip
        state.commitment = IncrementalCommitment(persisted)
        store.state = state
        store.tip = tip
        store.checkpoint_height = height
        store._checkpoint_record = record
        store.base_height = height
        store.pruned_height = height
        return store

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        checkpoint_every: int = 16,
        retain_heights: int = 64,
        map_size: int = 1 << 36,
        full_check: bool = True,
    ) -> ChainStore:
        """Open an existing store and recover the state of its last acknowledged block.

        ``full_check`` also verifies every header, block and receipts checksum, the header chain
        and every tree node (a read of the whole file); without it only what recovery reads is
        checked.

        Raises
        ------
        StoreError
            If there is no store at ``path`` or any of its contents does not check out.
        """
        if not (path / "data.mdb").exists():
            raise StoreError(f"{path}: no chain database here")
        if not (path / STATE_DIR / "data.mdb").exists():
            raise StoreError(
                f"{path}: the state store ({STATE_DIR}/data.mdb) is missing; the database is "
                "refused (restore it from a backup or import a snapshot, see docs/storage.md)"
            )
        env, state_env = cls._open_envs(path, map_size)
        try:
            _check_data_file(path, env)
            _check_data_file(path / STATE_DIR, state_env)
            with env.begin() as txn:
                for name in _LOG_DATABASES:
                    env.open_db(name, txn=txn, create=False)
                meta = env.open_db(b"meta", txn=txn, create=False)
                if txn.get(b"format", db=meta) != FORMAT:
                    raise StoreError(f"not a {FORMAT.decode()} database")
                sealed_genesis = _get(txn, b"genesis", meta)
                genesis = msgspec.json.decode(
                    _unseal(sealed_genesis, "genesis"), type=GenesisConfig
                )
            with state_env.begin() as txn:
                for name in _STATE_DATABASES:
                    state_env.open_db(
                        b"meta" if name == b"state-meta" else name, txn=txn, create=False
                    )
                meta = state_env.open_db(b"meta", txn=txn, create=False)
                if txn.get(b"format", db=meta) != STATE_FORMAT:
                    raise StoreError(f"{STATE_DIR}: not a {STATE_FORMAT.decode()} database")
                if txn.get(b"genesis", db=meta) != sealed_genesis:
                    raise StoreError(f"{STATE_DIR}: the state store is of another chain")
            store = cls(env, state_env, genesis.params, genesis, checkpoint_every, retain_heights)
            store._recover(full_check)
            # The checks and the tree's load read the whole node table through the map: let
            # those pages go from the resident set (they stay in the page cache).
            release_mapped_pages(store.data_files())
        except (lmdb.Error, msgspec.DecodeError, StoreError) as error:
            env.close()
            state_env.close()
            reason = str(error) if isinstance(error, StoreError) else f"unreadable: {error}"
            raise StoreError(
                f"{path}: {reason}; the database is refused (nothing was changed: restore it "
                "from a backup or import a snapshot into a new directory, see docs/storage.md)"
            ) from None
        return store

    def _recover(self, full_check: bool) -> None:
        with self._env.begin() as txn:
            meta = self._dbs[b"meta"]
            tip = _TIP.decode(_unseal(_get(txn, b"tip", meta), "tip"))
            self.base_height = _HEIGHT.decode(_unseal(_get(txn, b"base", meta), "base"))
            if full_check:
                self._check_records(txn, tip.height)
        with self._state_env.begin() as txn:
            meta = self._dbs[b"state-meta"]
            record = _get(txn, b"checkpoint", meta)
            checkpoint = _CHECKPOINT.decode(_unseal(record, "checkpoint"))
            self.pruned_height = _HEIGHT.decode(_unseal(_get(txn, b"pruned", meta), "pruned"))
            entries = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=self._dbs[b"state"])]
            if full_check:
                self._check_nodes(txn)
        # A checkpoint only ever holds acknowledged blocks: it lags the tip, never leads it.
        if not self.base_height <= checkpoint.height <= tip.height:
            raise StoreError(
                f"the checkpoint at height {checkpoint.height} is outside the block log "
                f"{self.base_height}..{tip.height} (the state store is not this block log's)"
            )
        header = self.get_header(checkpoint.height)
        if header.state_root != checkpoint.state_root:
            raise StoreError(
                f"checkpoint at height {checkpoint.height}: its root is not its header's root"
            )
        try:
            state = load_state(entries, ChainTip(header.height, header.timestamp_ms, b""))
        except Exception as error:  # stored bytes of any shape: refuse, whatever the decoder says
            raise StoreError(f"checkpoint state at height {checkpoint.height}: {error}") from None
        if compute_state_root(state) != checkpoint.state_root:
            raise StoreError(
                f"checkpoint state at height {checkpoint.height} does not hash to its root "
                "(a value is corrupt)"
            )
        state.tip = ChainTip(header.height, header.timestamp_ms, compute_header_hash(header))
        tree = self._new_tree(checkpoint.state_root, self._load_live(checkpoint))
        tree.born = checkpoint.height + 1
        state.commitment = IncrementalCommitment(tree)
        self.state = state
        self.tip = state.tip
        self.checkpoint_height = checkpoint.height
        self._checkpoint_record = record
        # Re-execute the acknowledged blocks after the checkpoint (apply_block checks each root).
        for height in range(checkpoint.height + 1, tip.height + 1):
            block = self.get_block(height)
            try:
                apply_block(self.state, block, self.params)
            except Exception as error:  # a stored block of any shape: refuse it
                raise StoreError(
                    f"block {height} does not re-execute to its header: {error}"
                ) from None
            self._remember(self.state.tip)
        if self.tip != tip:
            raise StoreError(f"recovered tip {self.tip} differs from the stored tip {tip}")

    def _new_tree(self, root: bytes, live: PackedNodes) -> SparseMerkleTree:
        return SparseMerkleTree(self._nodes, root, TREE_CACHE_NODES, live=live)

    def _load_live(self, checkpoint: _Checkpoint) -> PackedNodes:
        """The tree of the checkpoint, read from ``nodes`` into a live table (every node checked
        against its hash)."""
        live = PackedNodes()
        stack = [] if checkpoint.state_root == EMPTY else [checkpoint.state_root]
        rows: list[bytes] = []
        sha256 = hashlib.sha256
        with self._state_env.begin(db=self._dbs[b"nodes"]) as txn:
            get = txn.get
            while stack:
                node_hash = stack.pop()
                record = get(node_hash)
                if record is None or len(record) != NODE_BYTES + 8:
                    raise StoreError(
                        f"the stored tree does not reach the root of height {checkpoint.height}: "
                        f"node {node_hash.hex()} is missing"
                    )
                encoding = bytes(record[:NODE_BYTES])
                if sha256(encoding).digest() != node_hash:
                    raise StoreError(
                        f"tree node {node_hash.hex()} does not match its bytes (corrupt)"
                    )
                born = int.from_bytes(record[NODE_BYTES:], "big")
                rows.append(pack_record(node_hash, encoding, born))
                if len(rows) == _LOAD_BATCH:
                    live.load_rows(b"".join(rows))
                    rows = []
                if encoding[0] == NODE_TAG:
                    for child in (encoding[33:], encoding[1:33]):
                        if child != EMPTY:
                            stack.append(child)
        live.load_rows(b"".join(rows))
        return live

    def _check_records(self, txn: lmdb.Transaction, tip: int) -> None:
        """Every header, block and receipts record of ``base..tip`` is there and checks out, and
        every header links to its parent."""
        parent = b""
        for height in range(self.base_height, tip + 1):
            header = self._header(txn, height)
            if header.height != height:
                raise StoreError(f"header {height} holds height {header.height}")
            if height > self.base_height and header.parent_hash != parent:
                raise StoreError(f"header {height} does not link to header {height - 1}")
            parent = compute_header_hash(header)
        for name, what in ((b"blocks", "block"), (b"receipts", "receipts")):
            for height in range(self.base_height + 1, tip + 1):
                record = txn.get(_height_key(height), db=self._dbs[name])
                if record is None:
                    raise StoreError(f"{what} {height} is missing")
                _unseal(bytes(record), f"{what} {height}")

    def _check_nodes(self, txn: lmdb.Transaction) -> None:
        """Every stored tree node hashes to its key (and carries its 8-byte height)."""
        sha256 = hashlib.sha256
        for key, value in txn.cursor(db=self._dbs[b"nodes"]):
            if len(value) != NODE_BYTES + 8 or sha256(value[:NODE_BYTES]).digest() != key:
                raise StoreError(f"tree node {bytes(key).hex()} does not match its bytes (corrupt)")

    # ------------------------------------------------------------------ writing

    def commit_block(self, block: Block, output: BlockOutput) -> None:
        """Make a block durable (one write transaction on the block log, ``fsync``), then start
        a checkpoint in the background when one is due.

        ``output`` must be the result of applying ``block`` to ``self.state`` (which carries the
        store's incremental commitment). When this returns, the block is acknowledged.
        """
        header = block.header
        height = header.height
        if height != self.tip.height + 1:
            raise StoreError(f"block {height} does not follow the tip {self.tip.height}")
        raw = msgspec.Raw
        record = _EncodedReceiptsRecord(
            tuple(raw(receipt) for receipt in output.encoded_receipts), output.block_events
        )
        tip = ChainTip(height, header.timestamp_ms, compute_header_hash(header))
        self._write_block(height, encode(block), encode(header), encode(record), tip)
        self._remember(tip)
        self._maybe_checkpoint()

    def _write_block(
        self, height: int, block: bytes, header: bytes, receipts: bytes, tip: ChainTip
    ) -> None:
        """The block's one durable transaction (``fsync`` on commit): it is acknowledged after."""
        hook = self.fault_hook
        if hook is not None:
            hook("before", height)
        with self._env.begin(write=True) as txn:
            key = _height_key(height)
            txn.put(key, _seal(block), db=self._dbs[b"blocks"])
            txn.put(key, _seal(header), db=self._dbs[b"headers"])
            txn.put(key, _seal(receipts), db=self._dbs[b"receipts"])
            txn.put(b"tip", _seal(encode(tip)), db=self._dbs[b"meta"])
            if hook is not None:
                hook("inside", height)
        if hook is not None:
            hook("after", height)

    def commit_changes(self, changes: dict[bytes, bytes | None]) -> Header:
        """Benchmarks only: commit a synthetic block of raw state changes (key -> value, ``None``
        deletes) through the same path as :meth:`commit_block` minus execution: the tree update
        (the state root), one durable transaction holding the change set as the block record,
        and the checkpoint when due. The header carries the new root and empty lists. A store
        written this way cannot be reopened (its blocks are not blocks)."""
        return self.commit_synthetic(changes, self._tree().apply(changes))

    def commit_synthetic(self, changes: dict[bytes, bytes | None], update: TreeUpdate) -> Header:
        """:meth:`commit_changes` after the tree update (benchmarks time the two apart)."""
        height = self.tip.height + 1
        header = self._synthetic_header(update.root)
        tip = ChainTip(height, header.timestamp_ms, compute_header_hash(header))
        encoded = encode(header)
        self._write_block(height, encode(sorted(changes.items())), encoded, encode(()), tip)
        self.tip = tip
        self.state.tip = tip
        self._take(_Pending(height, dict(changes), update.root))
        self._maybe_checkpoint()
        return header

    def _synthetic_header(self, root: bytes) -> Header:
        return Header(
            chain_id=self.params.chain_id,
            height=self.tip.height + 1,
            parent_hash=self.tip.header_hash,
            timestamp_ms=self.tip.timestamp_ms + 1,
            gas_used=0,
            state_root=root,
            transactions_root=EMPTY,
            receipts_root=EMPTY,
            withdrawals_root=EMPTY,
        )

    def load_synthetic_state(self, entries: dict[bytes, bytes]) -> Header:
        """Benchmarks only: add ``entries`` to the state as one synthetic block written straight
        into a checkpoint (values and nodes in key order, no history), for a large state set up
        quickly. Like :meth:`commit_changes`, the store cannot be reopened afterwards."""
        self.checkpoint()
        tree = self._tree()
        update = tree.apply(entries)
        header = self._synthetic_header(update.root)
        height = header.height
        tip = ChainTip(height, header.timestamp_ms, compute_header_hash(header))
        self._write_block(height, b"", encode(header), encode(()), tip)
        record = _seal(encode(_Checkpoint(height, update.root)))

        def write() -> None:
            with self._state_env.begin(write=True) as txn:
                txn.cursor(db=self._dbs[b"state"]).putmulti(sorted(entries.items()))
                self._write_nodes(txn, update, height)
                txn.put(b"checkpoint", record, db=self._dbs[b"state-meta"])

        _write_in_child(write, "the synthetic state")
        tree.mark_persisted()
        tree.take_released()  # the replaced nodes stay in LMDB, as a store's first tree does
        tree.born = height + 1
        self.tip = tip
        self.state.tip = tip
        self.checkpoint_height = height
        self._checkpoint_record = record
        return header

    def _remember(self, tip: ChainTip) -> None:
        """Keep the block just acknowledged (``tip``): the commitment's last update is its."""
        commitment = self.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        assert commitment.last_root is not None
        self.tip = tip
        self._take(_Pending(tip.height, commitment.last_changes, commitment.last_root))

    def _take(self, pending: _Pending) -> None:
        """Keep an acknowledged block until a checkpoint holds it: its changes, and the records
        its update released from the live table in the node source's spill."""
        self._pending.append(pending)
        self._latest.update(pending.changes)
        self._remember_root(pending.height, pending.root)
        tree = self._tree()
        self._nodes.spill(pending.height, tree.take_released())
        tree.mark_persisted()
        tree.born = pending.height + 1

    def _maybe_checkpoint(self) -> None:
        """Collect a finished background checkpoint; start the next one when due (one at a
        time: blocks keep committing and accumulating while one runs)."""
        self._collect(wait=False)
        if (
            self._job is None
            and self.tip.height - self.checkpoint_height >= self.checkpoint_every
            and self._tree_at_tip()
        ):
            self._start_checkpoint(background=self.background)

    def checkpoint(self) -> None:
        """Wait for the checkpoint in flight, then write every block since it in this process.

        Raises
        ------
        StoreError
            If the state's tree is ahead of the tip (a block was applied to ``state`` and not
            committed): the live table no longer holds the tip's tree, so nothing is written.
        """
        self._collect(wait=True)
        if self._pending:
            if not self._tree_at_tip():
                raise StoreError(
                    "a block was applied to the state but not committed; nothing was "
                    "checkpointed (reopen the store: the acknowledged blocks are replayed)"
                )
            self._start_checkpoint(background=False)

    def _tree_at_tip(self) -> bool:
        """Whether the tree is the tip's (a checkpoint reads the tip's nodes from its live
        table, which an applied, uncommitted block has already changed)."""
        return self._tree().root == self._root_of(self.tip.height)

    def wait_for_checkpoint(self) -> None:
        """Wait for the background checkpoint in flight, if any, and take its result in."""
        self._collect(wait=True)

    def _start_checkpoint(self, *, background: bool) -> None:
        """Snapshot the pending blocks and write them: in a forked writer (``background``), or
        here. The tree forgets their nodes; the node source serves them until the checkpoint
        has committed."""
        assert self._job is None
        blocks = list(self._pending)
        last = blocks[-1]
        below = last.height - self.retain_heights
        job = _Job(
            blocks=blocks,
            height=last.height,
            spills=self._nodes.start_checkpoint(),
            record=_seal(encode(_Checkpoint(last.height, last.root))),
            pruned=max(self.pruned_height, below - 1),
        )
        if background:
            parent = os.getpid()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # the writer: its own interpreter lock, the node's memory as of now
                status = 1
                try:
                    name_process("strata-ckpt")
                    if die_with_parent(parent):
                        gc.disable()  # touching every object would copy the node's heap
                        self._persist(job)
                        status = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(status)
            job.pid = pid
            self._job = job
        else:
            self._job = job
            self._persist(job)
            self._finish(job)

    def _collect(self, *, wait: bool) -> None:
        """Take in the result of the background checkpoint if it has ended (``wait``: wait)."""
        job = self._job
        if job is None:
            return
        if job.pid:
            pid, status = os.waitpid(job.pid, 0 if wait else os.WNOHANG)
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                self._job = None
                self._nodes.end_checkpoint(job.spills, committed=False)
                raise StoreError(
                    f"the checkpoint at height {job.height} failed in its writer process (exit "
                    f"{code}); its record was not written (tree nodes it may have written change "
                    f"no root), the blocks since {self.checkpoint_height} stay acknowledged in "
                    "the block log"
                )
        self._finish(job)

    def _finish(self, job: _Job) -> None:
        """The checkpoint has committed: forget its blocks and nodes."""
        del self._pending[: len(job.blocks)]
        self._nodes.end_checkpoint(job.spills, committed=True)
        latest: dict[bytes, bytes | None] = {}
        for pending in self._pending:
            latest.update(pending.changes)
        self._latest = latest
        self.checkpoint_height = job.height
        self._checkpoint_record = job.record
        self.pruned_height = job.pruned
        self._job = None
        self.checkpoint_log.append((job.height, time.perf_counter() - job.started))
        # The checkpoint's blocks (their changes) are gone: hand their pages back (a few ms).
        release_free_memory()

    def _persist(self, job: _Job) -> None:
        """Write a checkpoint (the state changes, their history, the tree nodes of its blocks),
        then prune what fell out of the retained window.

        The tree nodes go first, in write transactions of :data:`CHECKPOINT_NODE_CHUNK` nodes,
        each made durable on its own; everything else, the last nodes and the checkpoint record
        that makes them count go in one last transaction. Why: the node process's block log
        shares the disk, and a block's ``fsync`` waits behind whatever the disk is writing; one
        transaction of a 16-block checkpoint at 1M keys held a block's ``fsync`` for ~470 ms
        (measured), a chunk holds it for a fraction of that. Nodes are content-addressed, so
        nodes written by a checkpoint whose last transaction never came (a crash) change no
        root: recovery goes from the checkpoint record, the blocks after it are replayed, and
        the next checkpoint writes the same nodes again, or stale records that prune them.

        Writes are ordered for LMDB: history and stale records are appended (their keys start
        with a height above every stored one), state values and nodes are written in key order
        (each B-tree page is visited once); a node built by several blocks is written once with
        the last height that built it (``encoding ‖ height``); history that pruning would drop
        at once is not written."""
        dbs = self._dbs
        below = job.height - self.retain_heights
        state_db = dbs[b"state"]
        latest: dict[bytes, bytes | None] = {}
        history: list[tuple[bytes, bytes]] = []
        records, stale = self._checkpoint_nodes(job)
        nodes = sorted(records)

        def put_nodes(txn: lmdb.Transaction, keys: list[bytes]) -> None:
            # Iterators, not lists of pairs: ``zip`` reuses its tuple, so millions of pairs cost
            # no allocations and trigger no garbage collection of the large heap.
            txn.cursor(db=dbs[b"nodes"]).putmulti(
                zip(keys, map(records.__getitem__, keys), strict=True)
            )

        first_in_last = max(0, len(nodes) - CHECKPOINT_NODE_CHUNK)
        for start in range(0, first_in_last, CHECKPOINT_NODE_CHUNK):
            with self._state_env.begin(write=True) as txn:
                put_nodes(txn, nodes[start : min(start + CHECKPOINT_NODE_CHUNK, first_in_last)])
        del nodes[:first_in_last]
        with self._state_env.begin(write=True) as txn:
            get = txn.get
            for pending in job.blocks:
                at = _height_key(pending.height)
                keep = pending.height >= below
                for key in sorted(pending.changes):
                    if key in latest:
                        old = latest[key]
                    else:
                        found = get(key, db=state_db)
                        old = None if found is None else bytes(found)
                    if keep:
                        history.append((at + key, b"\x00" if old is None else b"\x01" + old))
                    latest[key] = pending.changes[key]
            txn.cursor(db=dbs[b"history"]).putmulti(history, append=True)
            del history
            txn.cursor(db=dbs[b"stale"]).putmulti(
                zip(stale, repeat(b"", len(stale)), strict=True), append=True
            )
            del stale
            order = sorted(latest)
            state_cursor = txn.cursor(db=state_db)
            state_cursor.putmulti(
                (key, value) for key in order if (value := latest[key]) is not None
            )
            for key in order:
                if latest[key] is None and state_cursor.set_key(key):
                    state_cursor.delete()
            del order, latest
            put_nodes(txn, nodes)
            del nodes
            records.clear()  # freed before pruning, as the nodes list is
            if self.fault_hook is not None:
                self.fault_hook("checkpoint", job.height)
            txn.put(b"checkpoint", job.record, db=dbs[b"state-meta"])
            self._prune(txn, below, job.pruned)
        if self.fault_hook is not None:
            self.fault_hook("checkpointed", job.height)

    def _checkpoint_nodes(self, job: _Job) -> tuple[dict[bytes, bytes], list[bytes]]:
        """The tree records a checkpoint writes: every node its blocks built, ``hash ->
        encoding ‖ the last of its heights that built it`` (from the live table and the spills),
        and the ``stale`` keys (``height ‖ hash``, in key order) of every node they released."""
        first = job.blocks[0].height
        last = job.height
        records: dict[bytes, bytes] = {}
        stale: dict[int, list[bytes]] = {}

        def built(rows: bytes, released: list[bytes] | None) -> None:
            for row in records_of(rows):
                node_hash, encoding, born = unpack_record(row.tobytes())
                if released is not None:
                    released.append(node_hash)
                if not born_in(born, first, last):
                    continue
                suffix = _height_key(full_height(born, first))
                known = records.get(node_hash)
                if known is None or known[NODE_BYTES:] < suffix:
                    records[node_hash] = encoding + suffix

        for spill in job.spills:
            for height, rows in spill.segments():
                built(rows, stale.setdefault(height, []))
        live = self._tree().live
        assert live is not None
        built(live.rows_born(first, last), None)
        keys = [
            _height_key(height) + node_hash
            for height in sorted(stale)
            for node_hash in sorted(set(stale[height]))
        ]
        return records, keys

    def _write_nodes(self, txn: lmdb.Transaction, update: TreeUpdate, height: int) -> None:
        """Write one update's nodes (a new store's first tree), in key order."""
        at = _height_key(height)
        order = sorted(update.new_nodes)
        nodes = update.new_nodes
        txn.cursor(db=self._dbs[b"nodes"]).putmulti((h, nodes[h] + at) for h in order)

    def _prune(self, txn: lmdb.Transaction, below: int, pruned: int) -> None:
        """Delete history and stale nodes of heights below ``below`` (a node re-created after it
        went stale is kept: it belongs to a newer tree), and record ``pruned``, the oldest
        height whose tree and values are still whole (``below - 1`` once it moves).

        Why ``below - 1`` stays whole: a node staled at ``h`` is reachable from the root of
        ``h - 1`` only, so deleting the stale records of heights ``< below`` only removes nodes
        of roots ``<= below - 2``; the value at ``h`` needs the history records of heights
        ``> h`` only, so ``h = below - 1`` keeps all it needs."""
        if below - 1 <= self.pruned_height:
            return
        limit = _height_key(below)
        nodes = self._dbs[b"nodes"]
        doomed: list[bytes] = []
        cursor = txn.cursor(db=self._dbs[b"stale"])
        while cursor.first():
            key = bytes(cursor.key())
            if key[:8] >= limit:
                break
            node_hash = key[8:]
            record = txn.get(node_hash, db=nodes)
            if record is not None and bytes(record[_BORN]) <= key[:8]:
                doomed.append(node_hash)
            cursor.delete()
        doomed.sort()
        cursor = txn.cursor(db=nodes)
        for node_hash in doomed:
            if cursor.set_key(node_hash):
                cursor.delete()
        cursor = txn.cursor(db=self._dbs[b"history"])
        while cursor.first() and bytes(cursor.key()[:8]) < limit:
            cursor.delete()
        txn.put(b"pruned", _seal(encode(pruned)), db=self._dbs[b"state-meta"])

    # ------------------------------------------------------------------ reading

    def _header(self, txn: lmdb.Transaction, height: int) -> Header:
        record = txn.get(_height_key(height), db=self._dbs[b"headers"])
        if record is None:
            raise StoreError(f"header {height} is missing")
        return _HEADER.decode(_unseal(bytes(record), f"header {height}"))

    def get_header(self, height: int) -> Header:
        with self._env.begin() as txn:
            return self._header(txn, height)

    def get_block(self, height: int) -> Block:
        with self._env.begin() as txn:
            record = txn.get(_height_key(height), db=self._dbs[b"blocks"])
        if record is None:
            raise StoreError(f"block {height} is missing")
        try:
            return decode_block(_unseal(bytes(record), f"block {height}"))
        except ChainError as error:
            raise StoreError(f"block {height} does not decode: {error}") from None

    def get_receipts(self, height: int) -> tuple[tuple[Receipt, ...], BlockEvents]:
        decoded = _RECEIPTS.decode(self._receipts_record(height))
        return decoded.receipts, decoded.block_events

    def get_encoded_receipts(self, height: int) -> tuple[tuple[bytes, ...], BlockEvents]:
        """:meth:`get_receipts` with each receipt's bytes (``BlockOutput.encoded_receipts``)."""
        decoded = _ENCODED_RECEIPTS.decode(self._receipts_record(height))
        return tuple(bytes(receipt) for receipt in decoded.receipts), decoded.block_events

    def _receipts_record(self, height: int) -> bytes:
        with self._env.begin() as txn:
            record = txn.get(_height_key(height), db=self._dbs[b"receipts"])
        if record is None:
            raise StoreError(f"receipts of block {height} are missing")
        return _unseal(bytes(record), f"receipts {height}")

    def iter_blocks(self, first: int = 1) -> Iterator[Block]:
        for height in range(max(first, self.base_height + 1), self.tip.height + 1):
            yield self.get_block(height)

    def readable_heights(self) -> range:
        """The heights :meth:`read` and :meth:`export_snapshot` serve: the last
        ``retain_heights`` heights, never below the snapshot base nor what pruning kept."""
        newest = self.tip.height
        oldest = max(self.base_height, self.pruned_height, newest - self.retain_heights + 1)
        return range(oldest, self.tip.height + 1)

    def _check_readable(self, height: int) -> None:
        window = self.readable_heights()
        if height not in window:
            raise StoreError(
                f"height {height} is outside the retained window "
                f"{window.start}..{window.stop - 1} (retain_heights={self.retain_heights})"
            )

    @contextmanager
    def _state_txn(self) -> Iterator[lmdb.Transaction]:
        """:meth:`_begin_state_read` as a context (aborted at the end)."""
        txn = self._begin_state_read()
        try:
            yield txn
        finally:
            txn.abort()

    def _begin_state_read(self) -> lmdb.Transaction:
        """A read transaction of the state store that agrees with ``checkpoint_height``,
        ``pruned_height``, the pending blocks and the node source: a checkpoint that committed
        in the background since the last look is taken in first. The caller aborts it."""
        self._collect(wait=False)
        txn = self._state_env.begin()
        try:
            if txn.get(b"checkpoint", db=self._dbs[b"state-meta"]) != self._checkpoint_record:
                txn.abort()
                self._collect(wait=True)  # it committed a moment ago: its writer is ending
                txn = self._state_env.begin()
                record = txn.get(b"checkpoint", db=self._dbs[b"state-meta"])
                if record != self._checkpoint_record:
                    raise StoreError("the state store's checkpoint changed under this process")
        except BaseException:
            txn.abort()
            raise
        return txn

    def memory_items(self) -> dict[str, int]:
        """What the store holds in memory, by kind (each bounded: see :class:`ChainStore`)."""
        tree = self._tree()
        return {
            "tree_cache_nodes": tree.cached_nodes,
            "tree_live_nodes": 0 if tree.live is None else len(tree.live),
            "pending_nodes": self._nodes.spilled,
            "pending_changes": len(self._latest),
            "pending_blocks": len(self._pending),
        }

    def _tree(self) -> SparseMerkleTree:
        commitment = self.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        return commitment.tree

    def _root_of(self, height: int) -> bytes:
        """The state root of header ``height`` (a retained height), read once and remembered
        for as long as the height stays in the window."""
        root = self._roots.get(height)
        if root is None:
            root = self.get_header(height).state_root
            self._remember_root(height, root)
        return root

    def _remember_root(self, height: int, root: bytes) -> None:
        roots = self._roots
        roots[height] = root
        if len(roots) > 2 * self.retain_heights:
            oldest = self.readable_heights().start
            for old in [h for h in roots if h < oldest]:
                del roots[old]

    def _value_at(self, txn: lmdb.Transaction, key: bytes, height: int) -> bytes | None:
        """The value of ``key`` after block ``height`` (a retained height; see the module
        docstring)."""
        if height == self.tip.height:
            latest = self._latest
            if key in latest:
                return latest[key]
        elif height >= self.checkpoint_height:
            for pending in reversed(self._pending):
                if pending.height <= height and key in pending.changes:
                    return pending.changes[key]
        else:
            history = self._dbs[b"history"]
            for later in range(height + 1, self.checkpoint_height + 1):
                found = txn.get(_height_key(later) + key, db=history)
                if found is not None:
                    return None if found[:1] == b"\x00" else bytes(found[1:])
        stored = txn.get(key, db=self._dbs[b"state"])
        return None if stored is None else bytes(stored)

    def read(
        self, key: bytes, height: int | None = None
    ) -> tuple[bytes | None, SparseMerkleProof, bytes]:
        """Return the value of ``key`` after block ``height`` (default: the tip), its inclusion
        or exclusion proof, and the state root of that height.

        ``core.merkle.verify_proof(root, key, value, proof)`` holds for what is returned: the
        value is checked against the tree's leaf before it is returned.

        Raises
        ------
        StoreError
            If ``height`` is outside :meth:`readable_heights`, or the stored value does not match
            the tree (a corrupt record).
        """
        if height is None:
            height = self.tip.height
        self._reads += 1
        if self._reads % RELEASE_EVERY_READS == 0:
            if self._mapped is None:
                self._mapped = mapped_ranges(self.data_files())
            release_mapped_pages(self.data_files(), self._mapped)
        path = compute_path(key)
        tree = self._tree()
        nodes = self._nodes
        try:
            txn = self._begin_state_read()
            try:
                self._check_readable(height)
                root = self._root_of(height)
                value = self._value_at(txn, key, height)
                nodes.txn = txn
                siblings, leaf = tree.descend(path, root)
            finally:
                nodes.txn = None
                txn.abort()
        except (MissingNodeError, CorruptNodeError) as error:
            raise StoreError(f"the tree of height {height}: {error}") from None
        own = bool(leaf) and leaf[1:33] == path
        if (value is None and own) or (
            value is not None and not (own and leaf[33:] == compute_value_hash(value))
        ):
            raise StoreError(
                f"key {key.hex()} at height {height}: the stored value does not match the tree "
                "(a value record is corrupt)"
            )
        occupant = (leaf[1:33], leaf[33:]) if leaf and not own else None
        return value, SparseMerkleProof(siblings=tuple(siblings), leaf=occupant), root

    # ------------------------------------------------------------------ snapshots

    def iter_entries(self, height: int) -> Iterator[tuple[bytes, bytes]]:
        """Every state entry after block ``height`` (a readable height), in key order."""
        with self._state_txn() as txn:
            self._check_readable(height)
            overrides: dict[bytes, bytes | None] = {}
            if height >= self.checkpoint_height:
                for pending in self._pending:
                    if pending.height <= height:
                        overrides.update(pending.changes)
            else:
                # The first history record after ``height`` of each key holds its value then.
                cursor = txn.cursor(db=self._dbs[b"history"])
                if cursor.set_range(_height_key(height + 1)):
                    for found, value in cursor:
                        key = bytes(found[8:])
                        if key not in overrides:
                            overrides[key] = None if value[:1] == b"\x00" else bytes(value[1:])
            extra = sorted(overrides)
            index = 0
            for found, value in txn.cursor(db=self._dbs[b"state"]):
                key = bytes(found)
                while index < len(extra) and extra[index] < key:
                    pending_value = overrides[extra[index]]
                    if pending_value is not None:
                        yield extra[index], pending_value
                    index += 1
                if key in overrides:
                    if index < len(extra) and extra[index] == key:
                        index += 1
                    changed = overrides[key]
                    if changed is not None:
                        yield key, changed
                else:
                    yield key, bytes(value)
            for key in extra[index:]:
                changed = overrides[key]
                if changed is not None:
                    yield key, changed

    def export_snapshot(
        self, height: int, file: IO[bytes], progress: Callable[[int], None] | None = None
    ) -> int:
        """Write the snapshot of ``height`` (format in the module docstring) to ``file``;
        return the number of entries. ``progress`` is called with the count written so far."""
        self._check_readable(height)
        header = self.get_header(height)
        entries = list(self.iter_entries(height))
        digest = hashlib.sha256()

        def write(data: bytes) -> None:
            digest.update(data)
            file.write(data)

        def frame(payload: bytes) -> None:
            write(len(payload).to_bytes(4, "big") + payload)

        write(SNAPSHOT_MAGIC)
        frame(
            encode(
                _SnapshotHead(
                    SNAPSHOT_VERSION,
                    height,
                    msgspec.json.encode(self.genesis),
                    encode(header),
                    len(entries),
                )
            )
        )
        for start in range(0, len(entries), _SNAPSHOT_CHUNK):
            frame(encode(entries[start : start + _SNAPSHOT_CHUNK]))
            if progress is not None:
                progress(min(start + _SNAPSHOT_CHUNK, len(entries)))
        write(bytes(4))
        file.write(digest.digest())
        return len(entries)

    @classmethod
    def import_snapshot(
        cls,
        path: Path,
        file: IO[bytes],
        *,
        checkpoint_every: int = 16,
        retain_heights: int = 64,
        map_size: int = 1 << 36,
        progress: Callable[[int], None] | None = None,
    ) -> ChainStore:
        """Create a store at ``path`` from a snapshot: its tip is the snapshot's header, and it
        continues with the next block. Nothing is written unless the whole file checks out.

        Raises
        ------
        StoreError
            If ``path`` already holds a database, the file is not a snapshot of a known version,
            is damaged or truncated (checksum), or its entries do not hash to the header's root.
        """
        if (path / "data.mdb").exists():
            raise StoreError(f"{path}: a chain database already exists here; refusing to overwrite")
        head, entries = _read_snapshot(file, progress)
        try:
            genesis = msgspec.json.decode(head.genesis, type=GenesisConfig)
            header = _HEADER.decode(head.header)
        except msgspec.DecodeError as error:
            raise StoreError(f"snapshot: the genesis or header does not decode: {error}") from None
        if header.height != head.height or header.chain_id != genesis.params.chain_id:
            raise StoreError("snapshot: the header is not of the height and chain it claims")
        tree = SparseMerkleTree(MemoryNodeSource())
        update = tree.apply(dict(entries))
        if update.root != header.state_root:
            raise StoreError(
                f"snapshot: the entries hash to {update.root.hex()}, not to the state root "
                f"{header.state_root.hex()} of header {header.height}; refused"
            )
        try:
            state = load_state(entries, ChainTip(header.height, header.timestamp_ms, b""))
        except ChainError as error:
            raise StoreError(f"snapshot: the entries do not form a state: {error}") from None
        return cls._initialize(
            path,
            genesis,
            state,
            header,
            checkpoint_every=checkpoint_every,
            retain_heights=retain_heights,
            map_size=map_size,
            tree=tree,
            update=update,
        )

    # ------------------------------------------------------------------ closing

    def close(self, *, checkpoint: bool = True) -> None:
        """Wait for the checkpoint in flight, checkpoint what is pending and close the
        environments (a graceful stop).

        ``checkpoint=False`` writes nothing more (a reader such as ``strata snapshot export``:
        the acknowledged blocks are durable anyway, the next open replays them); nor does a
        store whose state holds an applied, uncommitted block (see :meth:`checkpoint`)."""
        try:
            if checkpoint and self._tree_at_tip():
                self.checkpoint()
            else:
                self._collect(wait=True)
        finally:
            self._mapped = None
            self._nodes.close()
            self._env.close()
            self._state_env.close()


def _read_exact(file: IO[bytes], size: int, digest: Any) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise StoreError("snapshot: the file ends early (truncated)")
    digest.update(data)
    return data


def _read_snapshot(
    file: IO[bytes], progress: Callable[[int], None] | None
) -> tuple[_SnapshotHead, list[tuple[bytes, bytes]]]:
    """Parse and check a snapshot file (format in the module docstring)."""
    digest = hashlib.sha256()
    if _read_exact(file, len(SNAPSHOT_MAGIC), digest) != SNAPSHOT_MAGIC:
        raise StoreError("snapshot: not a Strata snapshot file (bad magic)")
    frames: list[bytes] = []
    while True:
        size = int.from_bytes(_read_exact(file, 4, digest), "big")
        if size == 0:
            break
        if size > _SNAPSHOT_MAX_FRAME:
            raise StoreError("snapshot: a frame is implausibly large (corrupt)")
        frames.append(_read_exact(file, size, digest))
    trailer = file.read(32)
    if trailer != digest.digest() or file.read(1):
        raise StoreError("snapshot: checksum mismatch (the file is damaged or truncated); refused")
    if not frames:
        raise StoreError("snapshot: no header frame")
    try:
        head = _SNAPSHOT_HEAD.decode(frames[0])
    except msgspec.DecodeError as error:
        raise StoreError(f"snapshot: the header frame does not decode: {error}") from None
    if head.version != SNAPSHOT_VERSION:
        raise StoreError(
            f"snapshot: format version {head.version}; this node reads {SNAPSHOT_VERSION}"
        )
    entries: list[tuple[bytes, bytes]] = []
    for payload in frames[1:]:
        try:
            entries.extend(_SNAPSHOT_CHUNK_DECODER.decode(payload))
        except msgspec.DecodeError as error:
            raise StoreError(f"snapshot: an entry frame does not decode: {error}") from None
        if progress is not None:
            progress(len(entries))
    if len(entries) != head.entries:
        raise StoreError(f"snapshot: {len(entries)} entries, the header says {head.entries}")
    for (before, _), (after, _) in pairwise(entries):
        if not before < after:
            raise StoreError("snapshot: entries are not in strictly increasing key order")
    return head, entries


def _get(txn: lmdb.Transaction, key: bytes, db: Any) -> bytes:
    value = txn.get(key, db=db)
    if value is None:
        raise StoreError(f"record {key.decode(errors='replace')} is missing")
    return bytes(value)

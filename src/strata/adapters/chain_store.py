"""The durable chain: blocks, receipts, state and the state tree in one LMDB environment.

Layout (named databases of one environment under ``DATA_DIR/chain/``)
-------------------------------------------------------------------
==============  =======================================  ==========================================
database        key                                      value
==============  =======================================  ==========================================
``meta``        ``format``, ``genesis``, ``tip``,        format tag; genesis config (JSON); the
                ``checkpoint``                           last acknowledged block; the checkpoint
``blocks``      height (8 B)                             checksummed canonical block bytes
``headers``     height (8 B)                             checksummed canonical header bytes
``receipts``    height (8 B)                             checksummed receipts and block events
``state``       state key                                value at the checkpoint height
``history``     state key ‖ height (8 B)                 the value *before* the block at ``height``
                                                         changed it (``0x00`` absent, ``0x01 v``)
``nodes``       node hash                                tree node encoding (``state/smt.py``)
``born``        node hash                                height (8 B) it was last written
``stale``       height (8 B) ‖ node hash                 ``b""``: the node left the tree then
==============  =======================================  ==========================================

Durability is staged (measured in ``docs/storage.md``): every block is acknowledged only after its
one write transaction (block, header, receipts, tip) is committed with ``fsync``; every
``checkpoint_every`` blocks a second transaction writes the state changes, their history and the
tree nodes of all blocks since the last checkpoint. Recovery loads the checkpoint, checks it, and
re-executes the acknowledged blocks after it with the same ``apply_block`` (which checks every
root against the stored headers), so an acknowledged block survives ``kill -9`` and no block is
ever half there.

Recovery refuses, with :class:`StoreError`, a database whose contents do not check out: a record
whose checksum fails, a checkpoint whose state does not hash to its header's root, a tree that
does not reach that root, a block that does not re-execute to its header. Nothing is repaired or
overwritten silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgspec

from strata.core.codec import encode
from strata.core.errors import ChainError
from strata.core.merkle import EMPTY
from strata.state.smt import CorruptNodeError, MissingNodeError, SparseMerkleTree, TreeUpdate
from strata.state.store import ChainTip, State
from strata.stf.block import Block, BlockEvents, BlockOutput, Header, Receipt, decode_block
from strata.stf.commitment import IncrementalCommitment
from strata.stf.genesis import GenesisConfig, make_genesis
from strata.stf.params import ChainParams
from strata.stf.state_io import load_state
from strata.stf.state_root import clear_changes, compute_state_root, iter_state_leaves
from strata.stf.transition import apply_block

FORMAT = b"strata-chain-1"
_DATABASES = (
    b"meta",
    b"blocks",
    b"headers",
    b"receipts",
    b"state",
    b"history",
    b"nodes",
    b"born",
    b"stale",
)


class StoreError(Exception):
    """The store cannot be used as it is: the message says what did not check out, and where."""


class _Checkpoint(msgspec.Struct, frozen=True, array_like=True):
    height: int
    state_root: bytes


class _ReceiptsRecord(msgspec.Struct, frozen=True, array_like=True):
    receipts: tuple[Receipt, ...]
    block_events: BlockEvents


_HEADER = msgspec.msgpack.Decoder(Header)
_TIP = msgspec.msgpack.Decoder(ChainTip)
_CHECKPOINT = msgspec.msgpack.Decoder(_Checkpoint)
_RECEIPTS = msgspec.msgpack.Decoder(_ReceiptsRecord)


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
    """A block acknowledged since the last checkpoint, kept in memory until the next one."""

    height: int
    changes: dict[bytes, bytes | None]
    update: TreeUpdate


class _NodeSource:
    """The tree's nodes as LMDB holds them (the tree keeps those not yet checkpointed)."""

    def __init__(self, env: lmdb.Environment, db: Any) -> None:
        self._env = env
        self._db = db

    def get_node(self, node_hash: bytes) -> bytes | None:
        with self._env.begin(db=self._db) as txn:
            found = txn.get(node_hash)
        return None if found is None else bytes(found)


class ChainStore:
    """A chain's durable store (see the module docstring).

    ``open`` recovers: it returns a store whose ``state`` is the post-state of the last
    acknowledged block, with an incremental commitment attached.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        params: ChainParams,
        genesis: GenesisConfig,
        checkpoint_every: int,
        retain_heights: int,
    ) -> None:
        self._env = env
        self._dbs: dict[bytes, Any] = {name: env.open_db(name) for name in _DATABASES}
        self.params = params
        self.genesis = genesis
        self.checkpoint_every = checkpoint_every
        self.retain_heights = retain_heights
        self._nodes = _NodeSource(env, self._dbs[b"nodes"])
        self._pending: list[_Pending] = []
        self.fault_hook: Callable[[str, int], None] | None = None
        """Called at named points of a commit (crash tests kill the process there): ``before``,
        ``inside``, ``after`` (around the block's transaction) and ``checkpoint`` (inside the
        checkpoint's transaction, with the height of the block that triggered it)."""
        self.state: State = State()
        self.tip = ChainTip(-1, 0, bytes(32))
        self.checkpoint_height = -1

    # ------------------------------------------------------------------ opening

    @staticmethod
    def _open_env(path: Path, map_size: int) -> lmdb.Environment:
        path.mkdir(parents=True, exist_ok=True)
        try:
            return lmdb.open(
                str(path),
                max_dbs=len(_DATABASES),
                map_size=map_size,
                sync=True,
                metasync=True,
                writemap=False,
                readahead=False,
            )
        except lmdb.Error as error:
            raise StoreError(f"{path}: cannot open the chain database: {error}") from None

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
        if (path / "data.mdb").exists():
            raise StoreError(f"{path}: a chain database already exists here; refusing to overwrite")
        env = cls._open_env(path, map_size)
        store = cls(env, genesis.params, genesis, checkpoint_every, retain_heights)
        state, header = make_genesis(genesis)
        with env.begin(write=True) as txn:
            meta = store._dbs[b"meta"]
            txn.put(b"format", FORMAT, db=meta)
            txn.put(b"genesis", _seal(msgspec.json.encode(genesis)), db=meta)
            txn.put(_height_key(0), _seal(encode(header)), db=store._dbs[b"headers"])
            txn.put(b"tip", _seal(encode(state.tip)), db=meta)
            state_db = store._dbs[b"state"]
            for key, value in iter_state_leaves(state):
                txn.put(key, value, db=state_db)
            tree = SparseMerkleTree(store._nodes)
            update = tree.apply(dict(iter_state_leaves(state)))
            tree.mark_persisted()
            if update.root != header.state_root:
                raise StoreError("genesis: the tree root differs from the reference root (a bug)")
            store._write_nodes(txn, update, 0)
            txn.put(b"checkpoint", _seal(encode(_Checkpoint(0, header.state_root))), db=meta)
        clear_changes(state)
        store.state = state
        store.state.commitment = IncrementalCommitment(tree)
        store.tip = state.tip
        store.checkpoint_height = 0
        return store

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        checkpoint_every: int = 16,
        retain_heights: int = 64,
        map_size: int = 1 << 36,
    ) -> ChainStore:
        """Open an existing store and recover the state of its last acknowledged block.

        Raises
        ------
        StoreError
            If there is no store at ``path`` or any of its contents does not check out.
        """
        if not (path / "data.mdb").exists():
            raise StoreError(f"{path}: no chain database here")
        env = cls._open_env(path, map_size)
        try:
            with env.begin() as txn:
                dbs = {name: env.open_db(name, txn=txn, create=False) for name in _DATABASES}
                meta = dbs[b"meta"]
                if txn.get(b"format", db=meta) != FORMAT:
                    raise StoreError(f"{path}: not a {FORMAT.decode()} database")
                genesis = msgspec.json.decode(
                    _unseal(_get(txn, b"genesis", meta), "genesis"), type=GenesisConfig
                )
        except lmdb.Error as error:
            raise StoreError(f"{path}: unreadable chain database: {error}") from None
        except msgspec.DecodeError as error:
            raise StoreError(f"{path}: genesis record does not decode: {error}") from None
        store = cls(env, genesis.params, genesis, checkpoint_every, retain_heights)
        store._recover()
        return store

    def _recover(self) -> None:
        try:
            with self._env.begin() as txn:
                meta = self._dbs[b"meta"]
                tip = _TIP.decode(_unseal(_get(txn, b"tip", meta), "tip"))
                checkpoint = _CHECKPOINT.decode(
                    _unseal(_get(txn, b"checkpoint", meta), "checkpoint")
                )
                header = self._header(txn, checkpoint.height)
                entries = [(bytes(k), bytes(v)) for k, v in txn.cursor(db=self._dbs[b"state"])]
        except (lmdb.Error, msgspec.DecodeError) as error:
            raise StoreError(f"unreadable chain database: {error}") from None
        if header.state_root != checkpoint.state_root:
            raise StoreError(
                f"checkpoint at height {checkpoint.height}: its root is not its header's root"
            )
        try:
            state = load_state(entries, ChainTip(header.height, header.timestamp_ms, b""))
        except ChainError as error:
            raise StoreError(f"checkpoint state at height {checkpoint.height}: {error}") from None
        if compute_state_root(state) != checkpoint.state_root:
            raise StoreError(
                f"checkpoint state at height {checkpoint.height} does not hash to its root "
                "(a value is corrupt)"
            )
        from strata.stf.block import compute_header_hash

        state.tip = ChainTip(header.height, header.timestamp_ms, compute_header_hash(header))
        tree = SparseMerkleTree(self._nodes, checkpoint.state_root)
        if checkpoint.state_root != EMPTY:
            try:
                tree.get_node(checkpoint.state_root)
            except (MissingNodeError, CorruptNodeError) as error:
                raise StoreError(
                    f"the stored tree does not reach the root of height {checkpoint.height}: "
                    f"{error}"
                ) from None
        state.commitment = IncrementalCommitment(tree)
        self.state = state
        self.tip = state.tip
        self.checkpoint_height = checkpoint.height
        # Re-execute the acknowledged blocks after the checkpoint (apply_block checks each root).
        for height in range(checkpoint.height + 1, tip.height + 1):
            block = self.get_block(height)
            try:
                output = apply_block(self.state, block, self.params)
            except ChainError as error:
                raise StoreError(
                    f"block {height} does not re-execute to its header: {error}"
                ) from None
            self._remember(output)
        if self.tip != tip:
            raise StoreError(f"recovered tip {self.tip} differs from the stored tip {tip}")

    # ------------------------------------------------------------------ writing

    def commit_block(self, block: Block, output: BlockOutput) -> None:
        """Make a block durable (one write transaction, ``fsync``), then maybe checkpoint.

        ``output`` must be the result of applying ``block`` to ``self.state`` (which carries the
        store's incremental commitment). When this returns, the block is acknowledged.
        """
        height = block.header.height
        if height != self.tip.height + 1:
            raise StoreError(f"block {height} does not follow the tip {self.tip.height}")
        record = _ReceiptsRecord(output.receipts, output.block_events)
        hook = self.fault_hook
        if hook is not None:
            hook("before", height)
        with self._env.begin(write=True) as txn:
            key = _height_key(height)
            txn.put(key, _seal(encode(block)), db=self._dbs[b"blocks"])
            txn.put(key, _seal(encode(block.header)), db=self._dbs[b"headers"])
            txn.put(key, _seal(encode(record)), db=self._dbs[b"receipts"])
            txn.put(b"tip", _seal(encode(self.state.tip)), db=self._dbs[b"meta"])
            if hook is not None:
                hook("inside", height)
        if hook is not None:
            hook("after", height)
        self._remember(output)
        if height - self.checkpoint_height >= self.checkpoint_every:
            self.checkpoint()

    def _remember(self, output: BlockOutput) -> None:
        commitment = self.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        assert commitment.last_update is not None
        self.tip = self.state.tip
        update = commitment.last_update
        self._pending.append(_Pending(self.tip.height, commitment.last_changes, update))

    def checkpoint(self) -> None:
        """Write the state, history and tree nodes of every block since the last checkpoint in
        one transaction, then prune what fell out of the retained window."""
        if not self._pending:
            return
        last = self._pending[-1]
        state_db = self._dbs[b"state"]
        history_db = self._dbs[b"history"]
        with self._env.begin(write=True) as txn:
            for pending in self._pending:
                suffix = _height_key(pending.height)
                for key in sorted(pending.changes):
                    value = pending.changes[key]
                    old = txn.get(key, db=state_db)
                    txn.put(
                        key + suffix,
                        b"\x00" if old is None else b"\x01" + bytes(old),
                        db=history_db,
                    )
                    if value is None:
                        txn.delete(key, db=state_db)
                    else:
                        txn.put(key, value, db=state_db)
                self._write_nodes(txn, pending.update, pending.height)
            if self.fault_hook is not None:
                self.fault_hook("checkpoint", last.height)
            txn.put(
                b"checkpoint",
                _seal(encode(_Checkpoint(last.height, last.update.root))),
                db=self._dbs[b"meta"],
            )
            self._prune(txn, last.height - self.retain_heights)
        self._pending.clear()
        commitment = self.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        commitment.tree.mark_persisted()
        self.checkpoint_height = last.height

    def _write_nodes(self, txn: lmdb.Transaction, update: TreeUpdate, height: int) -> None:
        nodes = self._dbs[b"nodes"]
        born = self._dbs[b"born"]
        stale = self._dbs[b"stale"]
        at = _height_key(height)
        for node_hash, node in update.new_nodes.items():
            txn.put(node_hash, node, db=nodes)
            txn.put(node_hash, at, db=born)
        for node_hash in update.stale_nodes:
            txn.put(at + node_hash, b"", db=stale)

    def _prune(self, txn: lmdb.Transaction, below: int) -> None:
        """Delete history and stale nodes of heights below ``below`` (a node re-created after it
        went stale is kept: it belongs to a newer tree)."""
        if below <= 0:
            return
        limit = _height_key(below)
        stale = self._dbs[b"stale"]
        born = self._dbs[b"born"]
        nodes = self._dbs[b"nodes"]
        cursor = txn.cursor(db=stale)
        doomed: list[bytes] = []
        for key, _ in cursor:
            if bytes(key[:8]) >= limit:
                break
            doomed.append(bytes(key))
        for key in doomed:
            height = key[:8]
            node_hash = key[8:]
            last_born = txn.get(node_hash, db=born)
            if last_born is not None and bytes(last_born) <= bytes(height):
                txn.delete(node_hash, db=nodes)
                txn.delete(node_hash, db=born)
            txn.delete(key, db=stale)
        history = self._dbs[b"history"]
        cursor = txn.cursor(db=history)
        old: list[bytes] = [bytes(k) for k, _ in cursor if bytes(k[-8:]) < limit]
        for key in old:
            txn.delete(key, db=history)

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
        with self._env.begin() as txn:
            record = txn.get(_height_key(height), db=self._dbs[b"receipts"])
        if record is None:
            raise StoreError(f"receipts of block {height} are missing")
        decoded = _RECEIPTS.decode(_unseal(bytes(record), f"receipts {height}"))
        return decoded.receipts, decoded.block_events

    def iter_blocks(self, first: int = 1) -> Iterator[Block]:
        for height in range(first, self.tip.height + 1):
            yield self.get_block(height)

    def close(self) -> None:
        """Checkpoint what is pending and close the environment (a graceful stop)."""
        self.checkpoint()
        self._env.close()


def _get(txn: lmdb.Transaction, key: bytes, db: Any) -> bytes:
    value = txn.get(key, db=db)
    if value is None:
        raise StoreError(f"record {key.decode(errors='replace')} is missing")
    return bytes(value)

"""The mempool: admitted transactions waiting for a block, bounded, and journaled to disk.

Admitted transactions are appended to ``DATA_DIR/mempool.log`` (length-prefixed, checksummed
records, written through the OS page cache) so that a node process killed with ``kill -9`` finds
its pending transactions again; on start, :meth:`Mempool.recover` reloads them and drops those a
committed block already holds. The journal is compacted when it grows past a bound. A transaction
is acknowledged as *included* only once its block is durable (``ChainStore.commit_block``); a
pending transaction is a promise to try, not to include.

Ordering is a port (:class:`OrderingPolicy`); the default is arrival order.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from strata.client.errors import RpcCode, RpcError

_RECORD = struct.Struct(">II")  # length, crc32


@dataclass(slots=True)
class PendingTx:
    """An admitted transaction: its canonical bytes and what admission learned about it."""

    tx_hash: bytes
    data: bytes
    """The canonical bytes; decoded again when a block is built. A decoded bulk transaction is
    about 50 small objects (2.9 kB) against one for its bytes, so a full mempool keeps only
    these."""
    account: bytes
    nonce: int
    signer: bytes | None
    is_cancel: bool
    received_ns: int
    gas: int
    """Base gas (known before execution), for the block's gas budget."""


class OrderingPolicy(Protocol):
    """Chooses which pending transactions go into the next block, in which order (the block's
    canonical class sort is applied after this, by ``apply_block``)."""

    def select(self, pending: Iterable[PendingTx], limit: int) -> list[PendingTx]: ...


class ArrivalOrder:
    """First come, first served across accounts; within an account, nonce order.

    A bot that sends many transactions at once (concurrent requests, or batches admitted while
    an earlier batch's signatures are still being checked) may see them arrive out of nonce
    order; placing each account's transactions in nonce order (in the slots its transactions
    hold) keeps every nonce above the window floor, so none is left out for that reason.
    """

    def select(self, pending: Iterable[PendingTx], limit: int) -> list[PendingTx]:
        chosen: list[PendingTx] = []
        for tx in pending:
            if len(chosen) >= limit:
                break
            chosen.append(tx)
        return order_nonces_per_account(chosen)


def order_nonces_per_account(txs: list[PendingTx]) -> list[PendingTx]:
    """``txs`` with each account's transactions sorted by nonce within the slots they hold."""
    slots: dict[bytes, list[int]] = {}
    for position, tx in enumerate(txs):
        slots.setdefault(tx.account, []).append(position)
    ordered = list(txs)
    for positions in slots.values():
        if len(positions) > 1:
            own = sorted((txs[p] for p in positions), key=lambda t: t.nonce)
            for position, tx in zip(positions, own, strict=True):
                ordered[position] = tx
    return ordered


class Mempool:
    """Pending transactions by hash, in arrival order, holding at most ``capacity`` base gas
    (about what they will cost to execute: a bulk of 16 orders weighs 16 single orders, so
    memory and backlog are bounded in work, not in transaction count).

    When full, a cancel still gets in by evicting the newest non-cancels (cancels have priority:
    shedding a new order is better than leaving a stale quote in the book).
    """

    def __init__(self, path: Path, capacity: int) -> None:
        self.capacity = capacity
        self.gas = 0
        """Base gas of the pending transactions."""
        self._txs: OrderedDict[bytes, PendingTx] = OrderedDict()
        self._nonces: set[tuple[bytes, int]] = set()
        self._path = path
        self._log = path.open("ab")
        self._log_records = 0

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def has_nonce(self, account: bytes, nonce: int) -> bool:
        return (account, nonce) in self._nonces

    def refuses(self, gas: int, is_cancel: bool) -> bool:
        """Whether a transaction of ``gas`` that is not a cancel finds no room now: admission
        refuses it at once (``MEMPOOL_FULL``), before its signature is checked, since
        :meth:`add` would refuse it after. A cancel is never refused here: it may displace
        pending transactions that are not cancels."""
        return not is_cancel and not self.has_room(gas)

    def has_room(self, gas: int) -> bool:
        """Whether ``gas`` more base gas fits under the capacity."""
        return self.gas + gas <= self.capacity

    def full_error(self) -> RpcError:
        return RpcError(
            RpcCode.MEMPOOL_FULL,
            f"the mempool is full ({len(self._txs)} transactions, {self.gas} gas of "
            f"{self.capacity}); retry later",
        )

    def add(self, tx: PendingTx) -> None:
        """Add an admitted transaction (journaled before it is visible).

        Raises ``RpcError(MEMPOOL_FULL)`` when full and it cannot displace anything.
        """
        if not self.has_room(tx.gas):
            victims: list[PendingTx] = []
            room = self.capacity - self.gas
            if tx.is_cancel:
                for pending in reversed(self._txs.values()):
                    if room >= tx.gas:
                        break
                    if not pending.is_cancel:
                        victims.append(pending)
                        room += pending.gas
            if room < tx.gas:
                raise self.full_error()
            for victim in victims:
                self._remove(victim.tx_hash)
        self._journal(tx.data)
        self._txs[tx.tx_hash] = tx
        self._nonces.add((tx.account, tx.nonce))
        self.gas += tx.gas

    def flush(self) -> None:
        """Hand the journal's new records to the OS (they survive the process, not the host)."""
        self._log.flush()

    def pending(self) -> Iterable[PendingTx]:
        return self._txs.values()

    def remove_many(self, hashes: Iterable[bytes]) -> None:
        for tx_hash in hashes:
            self._remove(tx_hash)
        if self._log_records > 4 * len(self._txs) + 10_000:
            self._compact()

    def _remove(self, tx_hash: bytes) -> None:
        tx = self._txs.pop(tx_hash, None)
        if tx is not None:
            self._nonces.discard((tx.account, tx.nonce))
            self.gas -= tx.gas

    def _journal(self, data: bytes) -> None:
        self._log.write(_RECORD.pack(len(data), zlib.crc32(data)) + data)
        self._log_records += 1

    def _compact(self) -> None:
        """Rewrite the journal with only the pending transactions (atomic rename)."""
        self._log.close()
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for tx in self._txs.values():
                out.write(_RECORD.pack(len(tx.data), zlib.crc32(tx.data)) + tx.data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._path)
        self._log = self._path.open("ab")
        self._log_records = len(self._txs)

    def close(self) -> None:
        self._log.close()

    def recover(self, readmit: Callable[[bytes], PendingTx | None]) -> int:
        """Reload the journal: each record is passed to ``readmit`` (which re-checks it against
        the committed state and returns ``None`` for one already included or now invalid).
        A torn last record (a crash mid-write) ends the journal. Returns the count reloaded."""
        self._log.close()
        records: list[bytes] = []
        if self._path.exists():
            blob = self._path.read_bytes()
            offset = 0
            while offset + _RECORD.size <= len(blob):
                length, crc = _RECORD.unpack_from(blob, offset)
                start = offset + _RECORD.size
                data = blob[start : start + length]
                if len(data) != length or zlib.crc32(data) != crc:
                    break
                records.append(data)
                offset = start + length
        self._log = self._path.open("ab")
        reloaded = 0
        for data in records:
            try:
                tx = readmit(data)
            except RpcError:
                continue
            if tx is not None and tx.tx_hash not in self._txs:
                self._txs[tx.tx_hash] = tx
                self._nonces.add((tx.account, tx.nonce))
                self.gas += tx.gas
                reloaded += 1
        self._compact()
        return reloaded

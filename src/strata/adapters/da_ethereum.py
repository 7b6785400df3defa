"""The ``ethereum`` DA layer: batches as calldata of transactions to a batch-inbox address.

The poster (the sequencer's key) sends one EIP-1559 transaction per batch from its address to the
**batch-inbox address**, an address nobody holds code at (a keyless address such as
``0xff00...``), with the batch's bytes (``encode_batch``) as the transaction's input. Readers are
given the inbox and the poster's address; a transaction counts as a posting only if it is sent
by the poster to the inbox and its input decodes as a batch (``decode_batch``). Everything else
sent to the inbox (another sender, bytes that are not a batch, a second copy of a posted batch,
another batch at an index already posted) is skipped and counted in ``EthereumDa.stats``; the
first valid posting of an index in chain order is the one that counts.

Reading. There is no index of the transactions sent to an address in the JSON-RPC API, so the
adapter scans blocks from ``from_block`` (the block the inbox came into use; a reader should be
told it) and keeps an in-memory map, batch index -> ``DaReference``, rebuilt by scanning: every
call scans only the blocks mined since the last one, in JSON-RPC batch requests of
``SCAN_BATCH_BLOCKS`` blocks. Only blocks with at least ``confirmations`` blocks on top of them are
scanned into the map; a reorganisation below the last scanned block (its hash changed) throws the
map away and scans again from ``from_block``.

Posting is idempotent by (batch index, batch hash): before sending, ``post`` brings the map up to
date and also looks in the blocks not yet confirmed; the same batch already there returns its
reference (no second transaction), another batch there raises ``DaError``. Nonce and EIP-1559
fees come from the node (``maxFeePerGas`` = twice the latest base fee plus the node's suggested
priority fee), the gas limit from ``eth_estimateGas`` (which prices calldata, EIP-7623 floor
included); ``post`` waits for the receipt. A transaction sent but not mined when the process
died is not seen by the next process until it is mined: posting again then sends a second copy,
which readers skip as a duplicate (it costs gas, never correctness).

Size. One transaction carries one batch. Execution clients refuse transactions over 128 KiB in
their pools (geth's ``txMaxSize``) and Osaka caps a transaction's gas at 2**24, so ``post``
refuses a batch over ``max_data_bytes`` (default ``DEFAULT_MAX_DATA_BYTES``, 120 KiB) with
``DaError``: the node must seal batches small enough for this layer (``MAX_BATCH_BYTES``, 4 MiB,
does not fit in one Ethereum transaction; splitting a batch over several transactions, as
Optimism's channel frames do, is not implemented).

Calldata, not EIP-4844 blobs. The installed stack could post blobs (eth-account 0.14 with
``ckzg`` signs type-3 transactions, cell proofs included; Anvil 1.7.1 mines them and hands them
back through its own ``anvil_getBlobsByTransactionHash``), but on a real network a blob is kept
by the consensus layer for about 18 days (4,096 epochs) and is not served by the execution
JSON-RPC at all: a verifier re-deriving the chain from genesis would need a beacon-API endpoint
and a blob archive besides. Calldata stays in the execution history for as long as the chain
does and is read back with ``eth_getTransactionByHash``, so calldata is the one encoding here;
blobs would be a second, cheaper mode for a deployment that runs a blob archiver.

Errors. Transport failures (connection refused or reset, time-outs, HTTP errors, a receipt not
seen within ``receipt_timeout_s``) raise ``DaUnavailable`` (retry later); an answer that is
wrong (a reference to a transaction that is not a posting, a batch whose hash does not match, a
reverted posting, an RPC error) raises ``DaError``.

One ``EthereumDa`` may be shared by threads: its calls are serialised by a lock.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3 import exceptions as web3_exceptions

from strata.da.batch import BatchError, batch_hash, decode_batch
from strata.ports.da import DaError, DaReference, DaUnavailable

LAYER = "ethereum"
DEFAULT_MAX_DATA_BYTES = 120 * 1024
"""Below geth's 128 KiB transaction-pool limit, leaving room for the envelope and signature."""
SCAN_BATCH_BLOCKS = 64
"""Blocks fetched per JSON-RPC batch request while scanning."""
PROOF_BYTES = 40
"""``prove``: the block hash (32 bytes), then the transaction's index in it (8, big-endian)."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    OSError,
    web3_exceptions.ProviderConnectionError,
    web3_exceptions.TimeExhausted,
    web3_exceptions.RequestTimedOut,
    web3_exceptions.TooManyRequests,
    web3_exceptions.TransactionIndexingInProgress,
)


@dataclass(frozen=True, slots=True)
class ScanStats:
    """What scanning the inbox has found so far (counts of transactions to the inbox)."""

    scanned_to_block: int
    """The last block scanned into the map (``from_block - 1`` before the first scan)."""
    batches: int
    """Valid postings, one per batch index."""
    duplicates: int
    """A second posting of a batch already posted at its index (skipped)."""
    conflicts: int
    """Another batch at an index already posted (skipped: the first posting counts)."""
    invalid: int
    """From the poster, but the input is not a valid batch (skipped)."""
    foreign: int
    """Sent to the inbox by someone other than the poster (skipped)."""


@dataclass(slots=True)
class _Counts:
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0
    foreign: int = 0


@dataclass(frozen=True, slots=True)
class _Posting:
    """A transaction to the inbox, as scanned: its sender, hash and input."""

    sender: bytes
    tx_hash: bytes
    data: bytes


def _address_bytes(value: object) -> bytes:
    """An address as web3 returns it (a checksummed hex string) to 20 bytes; ``None`` (no
    recipient: a contract creation) to ``b""``."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    raise DaError(f"the node returned an address of type {type(value).__name__}")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


class EthereumDa:
    """``DaClient`` on an Ethereum (or any EVM) chain through its JSON-RPC endpoint ``url``.

    ``poster_key`` (a 32-byte secp256k1 private key) is needed to ``post``; a reader passes
    ``None`` and the poster's address as ``poster_address``. ``confirmations``: blocks that must
    be mined on top of a posting before ``list`` reports it. ``from_block``: the first block to
    scan. ``rpc_timeout_s``: per request; ``receipt_timeout_s``: how long ``post`` waits for its
    transaction to be mined.

    Raises ``ValueError`` for a malformed address or key, neither a key nor a poster address, or
    a ``poster_address`` that is not the key's. Does no I/O until the first call.
    """

    def __init__(
        self,
        url: str,
        inbox_address: bytes,
        poster_key: bytes | None,
        *,
        confirmations: int = 0,
        from_block: int = 0,
        poster_address: bytes | None = None,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        rpc_timeout_s: float = 10.0,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        if len(inbox_address) != 20:
            raise ValueError("inbox_address must be 20 bytes")
        if confirmations < 0 or from_block < 0 or max_data_bytes <= 0:
            raise ValueError("confirmations and from_block must be >= 0, max_data_bytes > 0")
        if poster_key is not None:
            if len(poster_key) != 32:
                raise ValueError("poster_key must be a 32-byte private key")
            derived = _address_bytes(Account.from_key(poster_key).address)
            if poster_address is not None and poster_address != derived:
                raise ValueError("poster_address is not the address of poster_key")
            poster_address = derived
        if poster_address is None:
            raise ValueError("a reader needs poster_address (a poster passes poster_key)")
        if len(poster_address) != 20:
            raise ValueError("poster_address must be 20 bytes")
        self.url = url
        self.inbox_address = bytes(inbox_address)
        self.poster_address = bytes(poster_address)
        self.confirmations = confirmations
        self.from_block = from_block
        self.max_data_bytes = max_data_bytes
        self.receipt_timeout_s = receipt_timeout_s
        self._poster_key = poster_key
        # No retries inside web3: the caller (the node's posting stage) retries with backoff.
        self._w3 = Web3(
            Web3.HTTPProvider(
                url,
                request_kwargs={"timeout": rpc_timeout_s},
                exception_retry_configuration=None,
            )
        )
        self._inbox_checksum = Web3.to_checksum_address(self.inbox_address)
        self._poster_checksum = Web3.to_checksum_address(self.poster_address)
        self._lock = threading.RLock()
        self._reset()

    # -- the DaClient port ---------------------------------------------------------------------

    def post(self, index: int, data: bytes) -> DaReference:
        """Post ``data`` (an encoded batch whose header has ``index``) and return its reference.

        Idempotent by (index, batch hash): a batch already posted at ``index`` returns the
        existing reference without sending anything. Raises ``ValueError`` if ``data`` is not a
        batch with that index, ``DaError`` for another batch already posted at ``index``, a
        batch over ``max_data_bytes``, a read-only client, a reverted transaction or an RPC
        error, ``DaUnavailable`` if the node cannot be reached or the receipt does not come.
        """
        ref = self._reference_of(data)
        if ref.batch_index != index:
            raise ValueError(f"the batch's header has index {ref.batch_index}, not {index}")
        if self._poster_key is None:
            raise DaError("read-only EthereumDa: posting needs poster_key")
        if len(data) > self.max_data_bytes:
            raise DaError(
                f"batch {index} is {len(data)} bytes, over this layer's {self.max_data_bytes}"
                " (one transaction per batch): seal smaller batches"
            )
        with self._lock, self._rpc():
            existing = self._find_posted(index)
            if existing is not None:
                if existing.batch_hash != ref.batch_hash:
                    raise DaError(
                        f"batch index {index} is already posted with another batch"
                        f" (hash {existing.batch_hash.hex()}, transaction {existing.locator})"
                    )
                return existing
            tx_hash = self._send(data)
            return DaReference(
                layer=LAYER,
                batch_index=ref.batch_index,
                batch_hash=ref.batch_hash,
                first_height=ref.first_height,
                last_height=ref.last_height,
                locator=_hex(tx_hash),
            )

    def get(self, ref: DaReference) -> bytes:
        """The batch bytes ``ref`` points at, checked against it.

        Raises ``DaError`` if the transaction is missing, is not from the poster to the inbox,
        or does not hold the batch ``ref`` describes; ``DaUnavailable`` if the node cannot be
        reached or the transaction is not mined yet.
        """
        tx_hash = self._locator_hash(ref)
        with self._lock, self._rpc():
            try:
                tx = self._w3.eth.get_transaction(HexBytes(tx_hash))
            except web3_exceptions.TransactionNotFound:
                raise DaError(f"batch {ref.batch_index}: no transaction {ref.locator}") from None
        if tx.get("blockNumber") is None:
            raise DaUnavailable(f"batch {ref.batch_index}: {ref.locator} is not mined yet")
        if _address_bytes(tx.get("to")) != self.inbox_address:
            raise DaError(f"batch {ref.batch_index}: {ref.locator} is not sent to the inbox")
        if _address_bytes(tx.get("from")) != self.poster_address:
            raise DaError(f"batch {ref.batch_index}: {ref.locator} is not sent by the poster")
        data = bytes(tx.get("input", b""))
        try:
            found = self._reference_of(data)
        except ValueError as error:
            raise DaError(f"batch {ref.batch_index}: {ref.locator}: {error}") from None
        if (found.batch_hash, found.batch_index, found.first_height, found.last_height) != (
            ref.batch_hash,
            ref.batch_index,
            ref.first_height,
            ref.last_height,
        ):
            raise DaError(f"batch {ref.batch_index}: {ref.locator} holds another batch")
        return data

    def list(
        self, first_height: int = 1, last_height: int | None = None
    ) -> builtins.list[DaReference]:
        """References in batch-index order whose height range meets
        ``[first_height, last_height]`` (``None``: no upper bound), as far as the blocks with
        ``confirmations`` on top go. Raises ``DaUnavailable`` if the node cannot be reached."""
        with self._lock, self._rpc():
            self._sync()
            refs = [self._refs[index] for index in sorted(self._refs)]
        return [
            ref
            for ref in refs
            if ref.last_height >= first_height
            and (last_height is None or ref.first_height <= last_height)
        ]

    def prove(self, ref: DaReference) -> bytes | None:
        """Where the posting is: ``block_hash (32 bytes) || transaction_index (8, big-endian)``
        from its receipt, or ``None`` if the transaction is not mined (or not known). Raises
        ``DaUnavailable`` if the node cannot be reached."""
        tx_hash = self._locator_hash(ref)
        with self._lock, self._rpc():
            try:
                receipt = self._w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except web3_exceptions.TransactionNotFound:
                return None
        block_hash = receipt.get("blockHash")
        tx_index = receipt.get("transactionIndex")
        if block_hash is None or tx_index is None:
            return None
        return bytes(block_hash) + int(tx_index).to_bytes(8, "big")

    # -- beyond the port -----------------------------------------------------------------------

    @property
    def stats(self) -> ScanStats:
        """Counts of what scanning has found and skipped (no I/O: as of the last call)."""
        with self._lock:
            return ScanStats(
                scanned_to_block=self._next_block - 1,
                batches=len(self._refs),
                duplicates=self._counts.duplicates,
                conflicts=self._counts.conflicts,
                invalid=self._counts.invalid,
                foreign=self._counts.foreign,
            )

    # -- internals -----------------------------------------------------------------------------

    @contextmanager
    def _rpc(self) -> Iterator[None]:
        """Map web3's and requests' failures onto the port's two errors."""
        try:
            yield
        except DaError:
            raise
        except _UNAVAILABLE as error:
            raise DaUnavailable(f"ethereum node at {self.url}: {error}") from error
        except web3_exceptions.Web3Exception as error:
            raise DaError(f"ethereum node at {self.url}: {error}") from error

    def _reset(self) -> None:
        self._refs: dict[int, DaReference] = {}
        self._counts = _Counts()
        self._next_block = self.from_block
        self._last_hash: bytes | None = None

    def _reference_of(self, data: bytes) -> DaReference:
        """The reference ``data`` would have (locator empty). Raises ``ValueError`` if it is not
        a batch."""
        try:
            batch = decode_batch(data)
        except BatchError as error:
            raise ValueError(f"not a batch: {error}") from None
        header = batch.header
        return DaReference(
            layer=LAYER,
            batch_index=header.index,
            batch_hash=batch_hash(batch),
            first_height=header.first_height,
            last_height=header.last_height,
            locator="",
        )

    def _locator_hash(self, ref: DaReference) -> bytes:
        if ref.layer != LAYER:
            raise DaError(f"not an {LAYER} reference: layer {ref.layer!r}")
        try:
            tx_hash = bytes.fromhex(ref.locator.removeprefix("0x"))
        except ValueError:
            tx_hash = b""
        if len(tx_hash) != 32:
            raise DaError(f"batch {ref.batch_index}: locator {ref.locator!r} is not a tx hash")
        return tx_hash

    def _confirmed_head(self) -> int:
        return self._w3.eth.block_number - self.confirmations

    def _sync(self) -> None:
        """Scan the confirmed blocks mined since the last call into the map."""
        head = self._confirmed_head()
        if self._last_hash is not None:
            last = self._next_block - 1
            try:
                current = bytes(self._w3.eth.get_block(last)["hash"])
            except web3_exceptions.BlockNotFound:
                current = b""
            if current != self._last_hash:  # a reorganisation: scan again from the start
                self._reset()
        if head < self._next_block:
            return
        for block_number, block_hash, postings in self._scan(self._next_block, head):
            for posting in postings:
                self._record(posting)
            self._next_block = block_number + 1
            self._last_hash = block_hash

    def _record(self, posting: _Posting) -> None:
        if posting.sender != self.poster_address:
            self._counts.foreign += 1
            return
        try:
            ref = self._reference_of(posting.data)
        except ValueError:
            self._counts.invalid += 1
            return
        known = self._refs.get(ref.batch_index)
        if known is None:
            self._refs[ref.batch_index] = DaReference(
                layer=LAYER,
                batch_index=ref.batch_index,
                batch_hash=ref.batch_hash,
                first_height=ref.first_height,
                last_height=ref.last_height,
                locator=_hex(posting.tx_hash),
            )
        elif known.batch_hash == ref.batch_hash:
            self._counts.duplicates += 1
        else:
            self._counts.conflicts += 1

    def _find_posted(self, index: int) -> DaReference | None:
        """The posting of ``index``: in the confirmed map, else in the blocks not yet confirmed
        (scanned afresh, not kept: they may still be reorganised away)."""
        self._sync()
        if index in self._refs:
            return self._refs[index]
        head = self._w3.eth.block_number
        for _number, _hash, postings in self._scan(self._next_block, head):
            for posting in postings:
                if posting.sender != self.poster_address:
                    continue
                try:
                    ref = self._reference_of(posting.data)
                except ValueError:
                    continue
                if ref.batch_index == index:
                    return DaReference(
                        layer=LAYER,
                        batch_index=ref.batch_index,
                        batch_hash=ref.batch_hash,
                        first_height=ref.first_height,
                        last_height=ref.last_height,
                        locator=_hex(posting.tx_hash),
                    )
        return None

    def _scan(self, first: int, last: int) -> Iterator[tuple[int, bytes, builtins.list[_Posting]]]:
        """For each block ``first..last`` in order: its number, hash, and the transactions in it
        sent to the inbox."""
        for start in range(first, last + 1, SCAN_BATCH_BLOCKS):
            end = min(last, start + SCAN_BATCH_BLOCKS - 1)
            with self._w3.batch_requests() as batch:
                for number in range(start, end + 1):
                    batch.add(self._w3.eth.get_block(number, True))
                blocks = cast(Sequence[Mapping[str, Any]], batch.execute())
            if len(blocks) != end - start + 1:
                raise DaError(f"the node returned {len(blocks)} blocks for {start}..{end}")
            for number, block in zip(range(start, end + 1), blocks, strict=True):
                if block is None or block.get("number") != number:
                    raise DaUnavailable(f"block {number} is not available from {self.url}")
                postings = [
                    _Posting(
                        sender=_address_bytes(tx["from"]),
                        tx_hash=bytes(tx["hash"]),
                        data=bytes(tx.get("input", b"")),
                    )
                    for tx in block.get("transactions", ())
                    if isinstance(tx, Mapping)
                    and _address_bytes(tx.get("to")) == self.inbox_address
                ]
                yield number, bytes(block["hash"]), postings

    def _send(self, data: bytes) -> bytes:
        """Sign and send one transaction carrying ``data`` to the inbox; wait for its receipt."""
        eth = self._w3.eth
        latest = eth.get_block("latest")
        base_fee = int(latest.get("baseFeePerGas", 0))
        priority_fee = int(eth.max_priority_fee)
        gas = eth.estimate_gas(
            {"from": self._poster_checksum, "to": self._inbox_checksum, "data": data}
        )
        transaction = {
            "type": 2,
            "chainId": eth.chain_id,
            "nonce": eth.get_transaction_count(self._poster_checksum, "pending"),
            "to": self._inbox_checksum,
            "value": 0,
            "data": data,
            "gas": gas,
            "maxPriorityFeePerGas": priority_fee,
            "maxFeePerGas": 2 * base_fee + priority_fee,
        }
        assert self._poster_key is not None
        signed = Account.sign_transaction(transaction, self._poster_key)
        tx_hash = bytes(eth.send_raw_transaction(signed.raw_transaction))
        receipt = eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=self.receipt_timeout_s, poll_latency=0.1
        )
        if receipt.get("status") != 1:
            raise DaError(f"the posting transaction {_hex(tx_hash)} reverted")
        return tx_hash

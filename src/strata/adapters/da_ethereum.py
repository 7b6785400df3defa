"""The ``ethereum`` DA layer: batches as calldata (or EIP-4844 blobs) of transactions to a
batch-inbox address.

The poster (the sequencer's key) sends one transaction per batch from its address to the
**batch-inbox address**, an address nobody holds code at (a keyless address such as
``0xff00...``). Readers are given the inbox and the poster's address; a transaction counts as a
posting only if it is sent by the poster to the inbox and carries a batch, in one of two forms:

- **calldata** (the default): an EIP-1559 transaction whose input is the batch's bytes
  (``encode_batch``), decoding as a batch (``decode_batch``).
- **blobs** (``EthereumDa(..., blobs=True)``): an EIP-4844 (type-3) transaction whose blobs hold
  the batch and whose input is a 64-byte **marker**: ``b"STBB"``, the batch index (8 bytes,
  big-endian), its batch hash (32), first and last height (8 each) and the batch's length in
  bytes (4). The marker lets ``list`` find and index the batch from the execution chain alone,
  without fetching blobs.

Everything else sent to the inbox (another sender, bytes that are neither, a malformed marker,
a second copy of a posted batch, another batch at an index already posted) is skipped and
counted in ``EthereumDa.stats``; the first valid posting of an index in chain order is the one
that counts, whichever its form, so calldata and blob postings mix freely on one inbox.

Blob encoding. A blob is 4,096 field elements of 32 bytes (128 KiB); a field element must be
below the BLS12-381 modulus, so each one's first byte is zero and it carries 31 bytes: 126,976
payload bytes per blob. The payload stream is the batch's length (4 bytes, big-endian), the
batch, then zeros to the end of the last blob; a batch takes as few blobs as it needs, up to
``max_blobs`` (``MAX_BLOBS_PER_TX``, 6: EIP-7594's per-transaction limit, also eth-account's),
so one blob transaction carries a batch of up to ``blob_capacity(6)`` = 761,852 bytes (the
calldata limit is 120 KiB). Decoding is strict: a non-zero first byte, a length past the
stream, a non-zero byte in the padding or more blobs than the length needs are refused. The
transaction commits to each blob by its **versioned hash**, ``0x01 || sha256(KZG
commitment)[1:]``; commitments and the cell proofs that Osaka's pools want (network wrapper
version 1, EIP-7594) are computed with ``ckzg`` and the trusted setup eth-account ships (loaded
once per process, about 2 s; a blob's cell proofs take about 0.3 s).

When to use blobs. Blob space is priced in its own fee market and is usually much cheaper than
calldata (measured on Anvil: a 90,087-byte batch costs 3,609,900 gas as calldata, EIP-7623's
floor; as a blob, 22,870 gas plus 131,072 blob gas), and a transaction holds six times what a
calldata posting does. But the consensus layer keeps blobs only about 18 days (4,096 epochs) on
Ethereum mainnet and the execution JSON-RPC does not serve them at all: a verifier syncing from
genesis after that needs an archive of the blobs (a beacon node with blob retention extended or
a blob archiver). Calldata stays in the execution history for as long as the chain does, so it
stays the default.

Choosing the form. With ``blobs=True`` the first ``post`` probes the node once: it supports
blob transactions if ``eth_blobBaseFee`` answers and its latest block has the Cancun header
fields (``excessBlobGas``, ``parentBeaconBlockRoot``). If not, the client posts calldata
instead, logs a warning and says so in ``posting_mode`` (``"calldata"``) and
``blob_fallback_reason``. ``max_data_bytes`` is the largest batch ``post`` takes in the form in
use (before the probe, the calldata limit, which fits either).

Reading. There is no index of the transactions sent to an address in the JSON-RPC API, so the
adapter scans blocks from ``from_block`` (the block the inbox came into use; a reader should be
told it) and keeps an in-memory map, batch index -> ``DaReference``, rebuilt by scanning: every
call scans only the blocks mined since the last one, in JSON-RPC batch requests of
``SCAN_BATCH_BLOCKS`` blocks. Only blocks with at least ``confirmations`` blocks on top of them are
scanned into the map; a reorganisation below the last scanned block (its hash changed) throws the
map away and scans again from ``from_block``. (Anvil puts every type-3 transaction's blobs and
cell proofs in the blocks it returns, about 280 KB of JSON a blob, so scanning there moves
them; execution clients such as geth return only the versioned hashes.) A blob posting is
listed from its marker (the poster's word for what the blobs hold); ``get`` checks it.
``get`` reads a calldata batch from ``eth_getTransactionByHash``; for a blob posting it takes
the versioned hashes from the transaction, fetches the blobs (``fetch_blobs``: Anvil's
``anvil_getBlobsByTransactionHash``; a node without it, or that no longer has them, is a
``DaError`` saying so), checks every blob against its versioned hash (recomputing the KZG
commitment), decodes the payload and checks the batch against the marker and the reference as
for calldata (its hash, index and heights). A reader needs no option for blobs: it reads both
forms. Fetching blobs from a beacon node's
``/eth/v1/beacon/blobs`` or an archiver is not implemented here (``fetch_blobs`` is the seam).

Posting is idempotent by (batch index, batch hash): before sending, ``post`` brings the map up to
date and also looks in the blocks not yet confirmed; the same batch already there (in either
form) returns its reference (no second transaction), another batch there raises ``DaError``.
Nonce and EIP-1559 fees come from the node (``maxFeePerGas`` = twice the latest base fee plus
the node's suggested priority fee; for blobs ``maxFeePerBlobGas`` = twice ``eth_blobBaseFee``),
the gas limit from ``eth_estimateGas`` (which prices calldata, EIP-7623 floor included); ``post``
waits for the receipt. A transaction sent but not mined when the process died is not seen by the
next process until it is mined: posting again then sends a second copy, which readers skip as a
duplicate (it costs gas, never correctness).

Size. One transaction carries one batch. Execution clients refuse transactions over 128 KiB in
their pools (geth's ``txMaxSize``; blobs are not counted) and Osaka caps a transaction's gas at
2**24, so ``post`` refuses a calldata batch over ``max_calldata_bytes`` (default
``DEFAULT_MAX_DATA_BYTES``, 120 KiB) and a blob batch over ``blob_capacity(max_blobs)`` with
``DaError``: the node must seal batches small enough for this layer (``MAX_BATCH_BYTES``, 4 MiB,
does not fit in one transaction; splitting a batch over several transactions, as Optimism's
channel frames do, is not implemented).

Errors. Transport failures (connection refused or reset, time-outs, HTTP errors, a receipt not
seen within ``receipt_timeout_s``) raise ``DaUnavailable`` (retry later); an answer that is
wrong (a reference to a transaction that is not a posting, a batch whose hash does not match, a
blob that does not match its versioned hash, blobs the node does not have, a reverted posting,
an RPC error) raises ``DaError``.

One ``EthereumDa`` may be shared by threads: its calls are serialised by a lock.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import ckzg  # type: ignore[import-not-found]
import msgspec
import requests
import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.typed_transactions.base import TRUSTED_SETUP
from hexbytes import HexBytes
from web3 import Web3
from web3 import exceptions as web3_exceptions
from web3.types import RPCEndpoint

from strata.da.batch import BatchError, batch_hash, decode_batch
from strata.ports.da import DaError, DaReference, DaUnavailable

log = logging.getLogger("strata.da")

LAYER = "ethereum"
DEFAULT_MAX_DATA_BYTES = 120 * 1024
"""Below geth's 128 KiB transaction-pool limit, leaving room for the envelope and signature."""
SCAN_BATCH_BLOCKS = 64
"""Blocks fetched per JSON-RPC batch request while scanning."""
PROOF_BYTES = 40
"""``prove``: the block hash (32 bytes), then the transaction's index in it (8, big-endian)."""

BYTES_PER_BLOB = 131_072
"""4,096 field elements of 32 bytes."""
FIELD_ELEMENTS_PER_BLOB = 4096
BLOB_PAYLOAD_BYTES = FIELD_ELEMENTS_PER_BLOB * 31
"""126,976: each field element's first byte is zero (below the modulus), 31 bytes carry data."""
BLOB_LENGTH_PREFIX_BYTES = 4
MAX_BLOBS_PER_TX = 6
"""EIP-7594's per-transaction limit (and eth-account's)."""
BLOB_MARKER_MAGIC = b"STBB"
BLOB_MARKER_BYTES = 64
"""magic (4), batch index (8), batch hash (32), first height (8), last height (8), length (4)."""
VERSIONED_HASH_VERSION_KZG = b"\x01"
BLOB_WRAPPER_VERSION = 1
"""The network form of a type-3 transaction with cell proofs (EIP-7594, Osaka)."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    OSError,
    web3_exceptions.ProviderConnectionError,
    web3_exceptions.TimeExhausted,
    web3_exceptions.RequestTimedOut,
    web3_exceptions.TooManyRequests,
    web3_exceptions.TransactionIndexingInProgress,
)


# -- blobs (pure but for the KZG trusted setup) ---------------------------------------------------


def blob_capacity(blobs: int) -> int:
    """The largest batch ``blobs`` blobs hold (the length prefix takes 4 bytes)."""
    return blobs * BLOB_PAYLOAD_BYTES - BLOB_LENGTH_PREFIX_BYTES


def blobs_needed(length: int) -> int:
    """How many blobs a batch of ``length`` bytes takes (at least one)."""
    return max(1, -(-(length + BLOB_LENGTH_PREFIX_BYTES) // BLOB_PAYLOAD_BYTES))


def encode_blobs(data: bytes) -> builtins.list[bytes]:
    """``data`` as the fewest blobs that hold it: ``len(data)`` (4 bytes, big-endian), the data,
    zeros; 31 bytes in each field element, whose first byte is zero."""
    if len(data) >= 2**32:
        raise ValueError("a batch of 4 GiB or more does not fit a length prefix")
    count = blobs_needed(len(data))
    stream = len(data).to_bytes(BLOB_LENGTH_PREFIX_BYTES, "big") + data
    stream += bytes(count * BLOB_PAYLOAD_BYTES - len(stream))
    blobs: builtins.list[bytes] = []
    for start in range(0, len(stream), BLOB_PAYLOAD_BYTES):
        chunk = stream[start : start + BLOB_PAYLOAD_BYTES]
        blob = bytearray(BYTES_PER_BLOB)
        for element in range(FIELD_ELEMENTS_PER_BLOB):
            blob[32 * element + 1 : 32 * element + 32] = chunk[31 * element : 31 * element + 31]
        blobs.append(bytes(blob))
    return blobs


def decode_blobs(blobs: Sequence[bytes]) -> bytes:
    """The inverse of ``encode_blobs``; raises ``ValueError`` for anything it would not have
    written (a wrong size, a field element with a non-zero first byte, a length past the end,
    non-zero padding, more blobs than the length needs)."""
    if not blobs:
        raise ValueError("no blobs")
    parts: builtins.list[bytes] = []
    for number, blob in enumerate(blobs):
        if len(blob) != BYTES_PER_BLOB:
            raise ValueError(f"blob {number} is {len(blob)} bytes, not {BYTES_PER_BLOB}")
        if blob[0::32] != bytes(FIELD_ELEMENTS_PER_BLOB):
            raise ValueError(f"blob {number} has a field element whose first byte is not zero")
        view = memoryview(blob)
        parts.extend(
            bytes(view[32 * element + 1 : 32 * element + 32])
            for element in range(FIELD_ELEMENTS_PER_BLOB)
        )
    stream = b"".join(parts)
    length = int.from_bytes(stream[:BLOB_LENGTH_PREFIX_BYTES], "big")
    end = BLOB_LENGTH_PREFIX_BYTES + length
    if end > len(stream):
        raise ValueError(f"the length prefix says {length} bytes, past the blobs' end")
    if blobs_needed(length) != len(blobs):
        raise ValueError(f"{len(blobs)} blobs for {length} bytes (not the fewest)")
    if stream[end:].count(0) != len(stream) - end:
        raise ValueError("the padding after the batch is not zero")
    return stream[BLOB_LENGTH_PREFIX_BYTES:end]


_setup_lock = threading.Lock()
_setup: object = None


def _trusted_setup() -> object:
    """The KZG trusted setup (Ethereum's, as eth-account ships it), loaded once per process."""
    global _setup
    with _setup_lock:
        if _setup is None:
            _setup = ckzg.load_trusted_setup(TRUSTED_SETUP, 0)
        return _setup


def kzg_commitment(blob: bytes) -> bytes:
    """The blob's KZG commitment (48 bytes); ``ValueError`` if it is not a valid blob."""
    try:
        return bytes(ckzg.blob_to_kzg_commitment(blob, _trusted_setup()))
    except Exception as error:  # ckzg raises RuntimeError/ValueError for a bad blob
        raise ValueError(f"not a valid blob: {error}") from None


def versioned_hash(commitment: bytes) -> bytes:
    """EIP-4844's versioned hash of a KZG commitment: ``0x01 || sha256(commitment)[1:]``."""
    return VERSIONED_HASH_VERSION_KZG + hashlib.sha256(commitment).digest()[1:]


def _cell_proofs(blob: bytes) -> builtins.list[bytes]:
    _cells, proofs = ckzg.compute_cells_and_kzg_proofs(blob, _trusted_setup())
    return [bytes(proof) for proof in proofs]


@dataclass(frozen=True, slots=True)
class _Marker:
    """The calldata of a blob posting."""

    batch_index: int
    batch_hash: bytes
    first_height: int
    last_height: int
    length: int


def encode_marker(
    batch_index: int, batch_hash_: bytes, first_height: int, last_height: int, length: int
) -> bytes:
    """The 64-byte calldata of a blob posting."""
    return (
        BLOB_MARKER_MAGIC
        + batch_index.to_bytes(8, "big")
        + batch_hash_
        + first_height.to_bytes(8, "big")
        + last_height.to_bytes(8, "big")
        + length.to_bytes(4, "big")
    )


def _decode_marker(data: bytes, blob_hashes: Sequence[bytes]) -> _Marker:
    """The marker ``data`` of a transaction carrying blobs ``blob_hashes``; ``ValueError`` if it
    is not one or does not fit the blobs."""
    if len(data) != BLOB_MARKER_BYTES or not data.startswith(BLOB_MARKER_MAGIC):
        raise ValueError(f"not a {BLOB_MARKER_BYTES}-byte blob marker")
    marker = _Marker(
        batch_index=int.from_bytes(data[4:12], "big"),
        batch_hash=data[12:44],
        first_height=int.from_bytes(data[44:52], "big"),
        last_height=int.from_bytes(data[52:60], "big"),
        length=int.from_bytes(data[60:64], "big"),
    )
    if not 1 <= marker.first_height <= marker.last_height:
        raise ValueError(f"heights {marker.first_height}..{marker.last_height}")
    if not blob_hashes:
        raise ValueError("a blob marker on a transaction without blobs")
    if blobs_needed(marker.length) != len(blob_hashes):
        raise ValueError(f"{len(blob_hashes)} blobs for a {marker.length}-byte batch")
    if any(len(h) != 32 or h[:1] != VERSIONED_HASH_VERSION_KZG for h in blob_hashes):
        raise ValueError("a blob versioned hash that is not a KZG one")
    return marker


# -- scanning -------------------------------------------------------------------------------------


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
    """From the poster, but the input is neither a valid batch nor a blob marker (skipped)."""
    foreign: int
    """Sent to the inbox by someone other than the poster (skipped)."""
    blob_batches: int = 0
    """Of ``batches``, those posted in blobs."""


@dataclass(slots=True)
class _Counts:
    duplicates: int = 0
    conflicts: int = 0
    invalid: int = 0
    foreign: int = 0


@dataclass(frozen=True, slots=True)
class _Posting:
    """A transaction to the inbox, as scanned: its sender, hash, input and blob hashes."""

    sender: bytes
    tx_hash: bytes
    data: bytes
    blob_hashes: tuple[bytes, ...] = ()


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


def _blob_hashes(tx: Mapping[str, Any]) -> tuple[bytes, ...]:
    """A transaction's ``blobVersionedHashes`` (hex strings or bytes) as bytes."""
    hashes = tx.get("blobVersionedHashes") or ()
    return tuple(
        bytes.fromhex(h.removeprefix("0x")) if isinstance(h, str) else bytes(h) for h in hashes
    )


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


class EthereumDa:
    """``DaClient`` on an Ethereum (or any EVM) chain through its JSON-RPC endpoint ``url``.

    ``poster_key`` (a 32-byte secp256k1 private key) is needed to ``post``; a reader passes
    ``None`` and the poster's address as ``poster_address``. ``confirmations``: blocks that must
    be mined on top of a posting before ``list`` reports it. ``from_block``: the first block to
    scan. ``max_data_bytes``: the largest calldata batch. ``blobs``: post batches as EIP-4844
    blobs (up to ``max_blobs`` a transaction) if the node supports them, else calldata (reading
    handles both forms either way). ``rpc_timeout_s``: per request; ``receipt_timeout_s``: how
    long ``post`` waits for its transaction to be mined.

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
        blobs: bool = False,
        max_blobs: int = MAX_BLOBS_PER_TX,
        rpc_timeout_s: float = 10.0,
        receipt_timeout_s: float = 120.0,
    ) -> None:
        if len(inbox_address) != 20:
            raise ValueError("inbox_address must be 20 bytes")
        if confirmations < 0 or from_block < 0 or max_data_bytes <= 0:
            raise ValueError("confirmations and from_block must be >= 0, max_data_bytes > 0")
        if not 1 <= max_blobs <= MAX_BLOBS_PER_TX:
            raise ValueError(f"max_blobs must be 1..{MAX_BLOBS_PER_TX}")
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
        self.max_calldata_bytes = max_data_bytes
        self.blobs = blobs
        self.max_blobs = max_blobs
        self.receipt_timeout_s = receipt_timeout_s
        self.blob_fallback_reason: str | None = None
        """Why a client asked to post blobs posts calldata (the node does not support them)."""
        self._blob_support: bool | None = None  # None: not probed yet
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

        Idempotent by (index, batch hash): a batch already posted at ``index`` (in either form)
        returns the existing reference without sending anything. Raises ``ValueError`` if
        ``data`` is not a batch with that index, ``DaError`` for another batch already posted at
        ``index``, a batch over ``max_data_bytes``, a read-only client, a reverted transaction or
        an RPC error, ``DaUnavailable`` if the node cannot be reached or the receipt does not
        come.
        """
        ref = self._reference_of(data)
        if ref.batch_index != index:
            raise ValueError(f"the batch's header has index {ref.batch_index}, not {index}")
        if self._poster_key is None:
            raise DaError("read-only EthereumDa: posting needs poster_key")
        with self._lock, self._rpc():
            use_blobs = self._use_blobs()
            limit = blob_capacity(self.max_blobs) if use_blobs else self.max_calldata_bytes
            if len(data) > limit:
                raise DaError(
                    f"batch {index} is {len(data)} bytes, over this layer's {limit}"
                    f" (one {'blob' if use_blobs else 'calldata'} transaction per batch):"
                    " seal smaller batches"
                )
            existing = self._find_posted(index)
            if existing is not None:
                if existing.batch_hash != ref.batch_hash:
                    raise DaError(
                        f"batch index {index} is already posted with another batch"
                        f" (hash {existing.batch_hash.hex()}, transaction {existing.locator})"
                    )
                return existing
            if use_blobs:
                marker = encode_marker(
                    ref.batch_index, ref.batch_hash, ref.first_height, ref.last_height, len(data)
                )
                tx_hash = self._send_blobs(marker, encode_blobs(data))
            else:
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
        or does not hold the batch ``ref`` describes (for a blob posting: a blob that does not
        match its versioned hash, blobs the node does not have); ``DaUnavailable`` if the node
        cannot be reached or the transaction is not mined yet.
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
        if data.startswith(BLOB_MARKER_MAGIC):
            data = self._read_blobs(ref, tx_hash, data, _blob_hashes(tx))
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
                blob_batches=len(self._blob_indexes),
            )

    @property
    def posting_mode(self) -> str | None:
        """``"calldata"`` or ``"blobs"``: how ``post`` sends batches; ``None`` while a client
        asked for blobs has not probed the node yet (its first ``post`` does)."""
        with self._lock:
            if not self.blobs:
                return "calldata"
            if self._blob_support is None:
                return None
            return "blobs" if self._blob_support else "calldata"

    @property
    def max_data_bytes(self) -> int:
        """The largest batch ``post`` takes in the form in use (no I/O: before a blob client's
        probe, the calldata limit, which fits either form). The node's posting stage seals
        batches to fit it."""
        with self._lock:
            if self.blobs and self._blob_support:
                return blob_capacity(self.max_blobs)
            return self.max_calldata_bytes

    def fetch_blobs(self, tx_hash: bytes) -> builtins.list[bytes]:
        """The blobs of transaction ``tx_hash``, as the node hands them back (unchecked: ``get``
        checks them against the versioned hashes). Uses Anvil's
        ``anvil_getBlobsByTransactionHash``; raises ``DaError`` if the node has no such method
        or does not have the blobs (pruned), ``DaUnavailable`` if it cannot be reached."""
        with self._lock, self._rpc():
            response = self._w3.provider.make_request(
                RPCEndpoint("anvil_getBlobsByTransactionHash"), [_hex(tx_hash)]
            )
        error = response.get("error")
        if error:
            message = error.get("message") if isinstance(error, Mapping) else error
            raise DaError(
                f"the node at {self.url} does not serve blobs (anvil_getBlobsByTransactionHash:"
                f" {message}): reading blob batches needs a node or archive that keeps them"
            )
        result = response.get("result")
        if not result:
            raise DaError(f"the node at {self.url} does not have the blobs of {_hex(tx_hash)}")
        blobs: builtins.list[bytes] = []
        for blob in result:
            if not isinstance(blob, str):
                raise DaError(f"the node returned a blob of type {type(blob).__name__}")
            try:
                blobs.append(bytes.fromhex(blob.removeprefix("0x")))
            except ValueError:
                raise DaError("the node returned a blob that is not hex") from None
        return blobs

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
        self._blob_indexes: set[int] = set()
        self._counts = _Counts()
        self._next_block = self.from_block
        self._last_hash: bytes | None = None

    def _use_blobs(self) -> bool:
        """Whether ``post`` sends blobs: asked for, and the node supports them (probed once)."""
        if not self.blobs:
            return False
        if self._blob_support is None:
            reason = self._probe_blobs()
            self._blob_support = reason is None
            self.blob_fallback_reason = reason
            if reason is None:
                log.info(
                    "posting batches as EIP-4844 blobs",
                    extra={"fields": {"url": self.url, "max_blobs": self.max_blobs}},
                )
            else:
                log.warning(
                    "the Ethereum node does not support blob transactions: posting calldata",
                    extra={"fields": {"url": self.url, "reason": reason}},
                )
        return self._blob_support

    def _probe_blobs(self) -> str | None:
        """``None`` if the node supports blob transactions, else why not."""
        response = self._w3.provider.make_request(RPCEndpoint("eth_blobBaseFee"), [])
        if response.get("error") or response.get("result") is None:
            error = response.get("error")
            message = error.get("message") if isinstance(error, Mapping) else error
            return f"eth_blobBaseFee does not answer: {message}"
        latest = self._w3.eth.get_block("latest")
        missing = [f for f in ("excessBlobGas", "parentBeaconBlockRoot") if f not in latest]
        if missing:
            return f"its latest block has no {', '.join(missing)} (before Cancun)"
        return None

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

    def _posting_reference(self, posting: _Posting) -> tuple[DaReference, bool]:
        """The reference a poster's transaction to the inbox makes, and whether it is a blob
        posting. Raises ``ValueError`` if it is neither a batch nor a blob marker."""
        locator = _hex(posting.tx_hash)
        if posting.data.startswith(BLOB_MARKER_MAGIC):
            marker = _decode_marker(posting.data, posting.blob_hashes)
            ref = DaReference(
                layer=LAYER,
                batch_index=marker.batch_index,
                batch_hash=marker.batch_hash,
                first_height=marker.first_height,
                last_height=marker.last_height,
                locator=locator,
            )
            return ref, True
        return msgspec.structs.replace(self._reference_of(posting.data), locator=locator), False

    def _read_blobs(
        self, ref: DaReference, tx_hash: bytes, marker_data: bytes, hashes: Sequence[bytes]
    ) -> bytes:
        """The batch a blob posting holds: its marker checked against ``ref``, its blobs fetched
        and checked against the transaction's versioned hashes, then decoded."""
        where = f"batch {ref.batch_index}: {ref.locator}"
        try:
            marker = _decode_marker(marker_data, hashes)
        except ValueError as error:
            raise DaError(f"{where}: not a blob posting: {error}") from None
        if (marker.batch_hash, marker.batch_index, marker.first_height, marker.last_height) != (
            ref.batch_hash,
            ref.batch_index,
            ref.first_height,
            ref.last_height,
        ):
            raise DaError(f"{where} holds another batch")
        blobs = self.fetch_blobs(tx_hash)
        if len(blobs) != len(hashes):
            raise DaError(f"{where}: the node returned {len(blobs)} blobs, not {len(hashes)}")
        for number, (blob, expected) in enumerate(zip(blobs, hashes, strict=True)):
            try:
                found = versioned_hash(kzg_commitment(blob))
            except ValueError as error:
                raise DaError(f"{where}: blob {number}: {error}") from None
            if found != expected:
                raise DaError(
                    f"{where}: blob {number} does not match its versioned hash"
                    f" {_hex(expected)} (it hashes to {_hex(found)})"
                )
        try:
            data = decode_blobs(blobs)
        except ValueError as error:
            raise DaError(f"{where}: {error}") from None
        if len(data) != marker.length:
            raise DaError(
                f"{where}: the blobs hold {len(data)} bytes, the marker says {marker.length}"
            )
        return data

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
            ref, in_blobs = self._posting_reference(posting)
        except ValueError:
            self._counts.invalid += 1
            return
        known = self._refs.get(ref.batch_index)
        if known is None:
            self._refs[ref.batch_index] = ref
            if in_blobs:
                self._blob_indexes.add(ref.batch_index)
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
                    ref, _in_blobs = self._posting_reference(posting)
                except ValueError:
                    continue
                if ref.batch_index == index:
                    return ref
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
                        blob_hashes=_blob_hashes(tx),
                    )
                    for tx in block.get("transactions", ())
                    if isinstance(tx, Mapping)
                    and _address_bytes(tx.get("to")) == self.inbox_address
                ]
                yield number, bytes(block["hash"]), postings

    def _fees(self) -> tuple[int, int]:
        """``(maxPriorityFeePerGas, maxFeePerGas)``: twice the latest base fee plus the node's
        suggested priority fee."""
        eth = self._w3.eth
        base_fee = int(eth.get_block("latest").get("baseFeePerGas", 0))
        priority_fee = int(eth.max_priority_fee)
        return priority_fee, 2 * base_fee + priority_fee

    def _send(self, data: bytes) -> bytes:
        """Sign and send one transaction carrying ``data`` to the inbox; wait for its receipt."""
        eth = self._w3.eth
        priority_fee, max_fee = self._fees()
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
            "maxFeePerGas": max_fee,
        }
        assert self._poster_key is not None
        signed = Account.sign_transaction(transaction, self._poster_key)
        return self._submit(bytes(signed.raw_transaction), bytes(signed.hash))

    def _send_blobs(self, marker: bytes, blobs: Sequence[bytes]) -> bytes:
        """Sign and send one type-3 transaction to the inbox with ``marker`` as its input and
        ``blobs`` committed by their versioned hashes, in the network form with cell proofs
        (wrapper version 1); wait for its receipt."""
        eth = self._w3.eth
        commitments = [kzg_commitment(blob) for blob in blobs]
        proofs = [proof for blob in blobs for proof in _cell_proofs(blob)]
        priority_fee, max_fee = self._fees()
        blob_base_fee = int(eth.blob_base_fee)
        gas = eth.estimate_gas(
            {"from": self._poster_checksum, "to": self._inbox_checksum, "data": marker}
        )
        transaction = {
            "type": 3,
            "chainId": eth.chain_id,
            "nonce": eth.get_transaction_count(self._poster_checksum, "pending"),
            "to": self._inbox_checksum,
            "value": 0,
            "data": marker,
            "gas": gas,
            "maxPriorityFeePerGas": priority_fee,
            "maxFeePerGas": max_fee,
            "maxFeePerBlobGas": max(1, 2 * blob_base_fee),
            "blobVersionedHashes": [versioned_hash(c) for c in commitments],
        }
        assert self._poster_key is not None
        # Signed without its blobs (eth-account would reload the trusted setup for every blob),
        # then wrapped: 0x03 || rlp([tx_payload_body, wrapper_version, blobs, commitments,
        # cell_proofs]). The transaction hash covers the body only.
        signed = Account.sign_transaction(transaction, self._poster_key)
        body = rlp.decode(bytes(signed.raw_transaction)[1:])
        wrapped = b"\x03" + rlp.encode(
            [body, BLOB_WRAPPER_VERSION, list(blobs), commitments, proofs]
        )
        return self._submit(wrapped, bytes(signed.hash))

    def _submit(self, raw: bytes, expected_hash: bytes) -> bytes:
        """Send a signed transaction and wait for its receipt; its hash."""
        eth = self._w3.eth
        tx_hash = bytes(eth.send_raw_transaction(raw))
        if tx_hash != expected_hash:
            raise DaError(f"the node named the posting {_hex(tx_hash)}, not {_hex(expected_hash)}")
        receipt = eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=self.receipt_timeout_s, poll_latency=0.1
        )
        if receipt.get("status") != 1:
            raise DaError(f"the posting transaction {_hex(tx_hash)} reverted")
        return tx_hash

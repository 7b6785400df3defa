"""Headers, blocks, receipts and the output of ``apply_block``."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

import msgspec

from strata.core.codec import CanonicalDecoder, encode
from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.core.hashing import sha256
from strata.modules.collateral import WithdrawalRecord
from strata.stf.events import Event
from strata.stf.transactions import SystemInput

MAX_BLOCK_BYTES = 64 * 1024 * 1024
Hash32 = bytes


class Header(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """A block header. ``state_root`` is the sparse Merkle root of the state (``core/merkle.py``);
    the transactions, receipts and withdrawals roots are ordered Merkle roots of their lists
    (``core/ordered_merkle.py``)."""

    chain_id: int
    height: int
    parent_hash: bytes
    timestamp_ms: int
    gas_used: int
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    withdrawals_root: bytes


class Block(msgspec.Struct, frozen=True, array_like=True):
    """A header, the system inputs of its prologue, and the transactions in sequencer order."""

    header: Header
    system: tuple[SystemInput, ...]
    transactions: tuple[bytes, ...]


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class Receipt(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """The outcome of one transaction: ``status`` 0 for success, else an ``ErrorCode`` of the
    execution-failure family (effects rolled back, fee and nonce kept)."""

    tx_hash: bytes
    status: int
    gas_used: int
    events: tuple[Event, ...]


class BlockEvents(msgspec.Struct, frozen=True, array_like=True):
    """Events of the block's own phases: prologue (deposits, oracle submissions, then the price
    step's markets becoming stale or fresh again, see ``modules/oracle``, then the funding
    step's ticks, see ``modules/funding``, in ascending market id, then expiries, dead-man
    switches and fired triggers, see ``modules/triggers``), matching (the orders of fired
    triggers), settlement (positions), risk (liquidations and everything they did, in the order
    of ``stf/risk.py``)."""

    prologue: tuple[Event, ...]
    settlement: tuple[Event, ...]
    risk: tuple[Event, ...] = ()
    matching: tuple[Event, ...] = ()


_RECEIPT_DECODER: msgspec.msgpack.Decoder[Receipt] = msgspec.msgpack.Decoder(Receipt)


# dict=True: room for the receipts once decoded (``cached_property``); only the fields are
# compared, hashed and encoded.
class BlockOutput(msgspec.Struct, frozen=True, dict=True):
    """What ``apply_block`` returns: the header it computed and everything it committed to."""

    header: Header
    encoded_receipts: tuple[bytes, ...]
    """Each transaction's :class:`Receipt`, canonically encoded, in the canonical order: the
    leaves of ``header.receipts_root`` (before the block's events). Execution keeps the bytes,
    not the records: a record with its events for every transaction, alive until the output is
    dropped, was the most memory a block held at its end; :attr:`receipts` decodes them."""
    block_events: BlockEvents
    withdrawals: tuple[WithdrawalRecord, ...]
    transactions: tuple[bytes, ...]
    """The transactions the block includes, in sequencer order."""
    rejected: tuple[tuple[bytes, int], ...] = ()
    """When building: ``(tx_hash, code)`` of each transaction left out as invalid."""

    @cached_property
    def receipts(self) -> tuple[Receipt, ...]:
        """The receipts (:attr:`encoded_receipts` decoded, at the first read)."""
        decode = _RECEIPT_DECODER.decode
        return tuple(decode(data) for data in self.encoded_receipts)


def encode_receipts(receipts: Iterable[Receipt]) -> tuple[bytes, ...]:
    """``BlockOutput.encoded_receipts`` of the receipts."""
    return tuple(encode(receipt) for receipt in receipts)


class UnsealedBlock(msgspec.Struct, frozen=True):
    """A block executed by ``execute_block``, waiting for its parent's hash and its state root
    (``seal_block``). ``output.header`` holds every other field; its ``state_root`` and (after
    an unsealed parent) its ``parent_hash`` are empty."""

    system: tuple[SystemInput, ...]
    output: BlockOutput


def compute_header_hash(header: Header) -> bytes:
    return sha256(encode(header))


_BLOCK_DECODER: CanonicalDecoder[Block] = CanonicalDecoder(Block, MAX_BLOCK_BYTES)


def decode_block(data: bytes) -> Block:
    """Decode a block from its canonical bytes.

    Raises
    ------
    InvalidBlock
        ``MALFORMED_BLOCK`` if the bytes are not the canonical encoding of a block (its
        transactions are decoded, and judged, one by one in ``apply_block``).
    """
    try:
        return _BLOCK_DECODER.decode(data)
    except InvalidTransaction as error:
        raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, error.detail) from None

"""Batches: consecutive blocks sealed into one data-availability payload (``docs/da.md``).

Wire format
-----------
``encode_batch`` writes ``b"STB1"`` followed by one zstandard frame (level 3, no checksum, the
content size written, no dictionary) of the canonical msgpack of the :class:`Batch`. There is
exactly one byte string per batch: :func:`decode_batch` re-encodes what it decoded and refuses
anything that does not come back byte for byte. The compressed bytes are therefore part of the
protocol, and they depend on the zstd library producing them: the version is pinned
(``zstandard==0.25.0``, libzstd 1.5.7) and the compressor runs single-threaded, its deterministic
mode.

Bounds
------
A decoder handed hostile bytes must not allocate more than it is willing to. The compressed input
is at most :data:`MAX_BATCH_BYTES`; the frame header must declare its content size, which must be
at most :data:`MAX_DECOMPRESSED_BYTES` (checked before decompressing, since the library allocates
the declared size up front), as must its window; the decompressor is also given that bound as
``max_output_size`` and ``max_window_size``. A batch holds 1 to :data:`MAX_BATCH_BLOCKS` blocks.

Errors
------
Every refusal is a :class:`BatchError` whose ``code`` is one of :data:`BATCH_ERROR_CODES`; no other
exception escapes :func:`decode_batch` or :func:`decode_batch_header`, whatever the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec
import zstandard

from strata.core.codec import CanonicalDecoder, encode
from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.core.hashing import sha256
from strata.stf.block import Block, compute_header_hash, decode_block

BATCH_VERSION: Final = 1
BATCH_MAGIC: Final = b"STB1"
ZSTD_LEVEL: Final = 3
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
"""Largest encoded batch (magic and compressed frame), in bytes."""
MAX_DECOMPRESSED_BYTES: Final = 64 * 1024 * 1024
"""Largest canonical msgpack of a batch (the frame's content size), in bytes."""
MAX_BATCH_BLOCKS: Final = 1024
ZERO_HASH: Final = bytes(32)
"""The ``parent_batch_hash`` of batch 0."""

_ZSTD_FRAME_MAGIC: Final = b"\x28\xb5\x2f\xfd"

BATCH_ERROR_CODES: Final = frozenset(
    {
        "TOO_LARGE",  # over MAX_BATCH_BYTES, or a content size / window over MAX_DECOMPRESSED_BYTES
        "BAD_MAGIC",  # does not start with b"STB1"
        "NOT_ZSTD",  # not a zstandard frame, or the frame does not decompress
        "NON_CANONICAL",  # decodes, but is not the one encoding encode_batch gives
        "MALFORMED",  # the decompressed bytes are not the msgpack of a Batch
        "BAD_VERSION",  # a batch version this code does not know
        "BAD_HEADER",  # a field out of its domain (negative index, height 0, hash length)
        "EMPTY",  # a batch without blocks
        "TOO_MANY_BLOCKS",  # more than MAX_BATCH_BLOCKS blocks
        "HEADER_MISMATCH",  # the header does not match its blocks (count, heights, hashes)
        "BAD_BLOCK",  # a block's bytes are not a canonical block
        "BROKEN_CHAIN",  # derivation: indexes, parents or heights do not continue
    }
)


class BatchError(Exception):
    """A batch, or a sequence of batches, is refused.

    ``code`` is a stable string of :data:`BATCH_ERROR_CODES`; ``detail`` says what was wrong.
    """

    code: str
    detail: str

    def __init__(self, code: str, message: str) -> None:
        if code not in BATCH_ERROR_CODES:  # a typo would otherwise ship as a new code
            raise ValueError(f"unknown batch error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


class BatchHeader(msgspec.Struct, frozen=True, array_like=True):
    """What a batch commits to; :func:`batch_hash` is the SHA-256 of its canonical msgpack."""

    version: int
    chain_id: int
    index: int
    """0, 1, 2, ... (consecutive)."""
    first_height: int
    """>= 1."""
    last_height: int
    """``first_height + len(blocks) - 1``."""
    parent_batch_hash: bytes
    """``batch_hash`` of batch ``index - 1``; :data:`ZERO_HASH` for index 0."""
    block_header_hashes: tuple[bytes, ...]
    """``compute_header_hash`` of each block's header, in height order."""


class Batch(msgspec.Struct, frozen=True, array_like=True):
    header: BatchHeader
    blocks: tuple[bytes, ...]
    """Each block's canonical bytes (``encode(Block)``)."""


class _HeaderOnly(msgspec.Struct, frozen=True, array_like=True):
    """A batch whose blocks are left undecoded (msgpack spans), to read the header cheaply."""

    header: BatchHeader
    blocks: msgspec.Raw


_BATCH_DECODER: CanonicalDecoder[Batch] = CanonicalDecoder(Batch, MAX_DECOMPRESSED_BYTES)
_HEADER_DECODER: msgspec.msgpack.Decoder[_HeaderOnly] = msgspec.msgpack.Decoder(_HeaderOnly)


def batch_hash(batch: Batch) -> bytes:
    """SHA-256 of the canonical msgpack of ``batch.header``.

    The header commits to every block through its header hash, and each block header to its
    transactions root, so this one hash names the batch's content.
    """
    return sha256(encode(batch.header))


def seal_batch(
    chain_id: int, index: int, parent_batch_hash: bytes, blocks: Sequence[Block]
) -> Batch:
    """Seal consecutive ``blocks`` into batch ``index`` of chain ``chain_id``.

    Raises
    ------
    BatchError
        ``EMPTY``, ``TOO_MANY_BLOCKS``, ``BAD_HEADER`` (negative index, a parent hash that is
        not 32 bytes or not zero for index 0, first height below 1) or ``HEADER_MISMATCH``
        (a block of another chain, heights that do not follow one another): the same checks
        :func:`decode_batch` applies, so a sealed batch always decodes.
    """
    if not blocks:
        raise BatchError("EMPTY", "a batch holds at least one block")
    first_height = blocks[0].header.height
    header = BatchHeader(
        version=BATCH_VERSION,
        chain_id=chain_id,
        index=index,
        first_height=first_height,
        last_height=first_height + len(blocks) - 1,
        parent_batch_hash=parent_batch_hash,
        block_header_hashes=tuple(compute_header_hash(block.header) for block in blocks),
    )
    _check_header_fields(header, len(blocks))
    for position, block in enumerate(blocks):
        _check_block_in_header(header, position, block)
    return Batch(header, tuple(encode(block) for block in blocks))


def encode_batch(batch: Batch) -> bytes:
    """The one byte string of ``batch``: ``b"STB1"`` ‖ zstd(canonical msgpack).

    The content is not validated here (:func:`seal_batch` builds valid batches;
    :func:`decode_batch` refuses invalid ones), only the size bounds a decoder enforces.

    Raises
    ------
    BatchError
        ``TOO_LARGE`` when the msgpack exceeds :data:`MAX_DECOMPRESSED_BYTES` or the result
        exceeds :data:`MAX_BATCH_BYTES`: no decoder would accept it.
    """
    raw = encode(batch)
    if len(raw) > MAX_DECOMPRESSED_BYTES:
        raise BatchError("TOO_LARGE", f"{len(raw)} bytes of msgpack > {MAX_DECOMPRESSED_BYTES}")
    data = BATCH_MAGIC + _compress(raw)
    if len(data) > MAX_BATCH_BYTES:
        raise BatchError("TOO_LARGE", f"{len(data)} bytes encoded > {MAX_BATCH_BYTES}")
    return data


def decode_batch(data: bytes) -> Batch:
    """Decode and fully check an encoded batch: the exact inverse of :func:`encode_batch`.

    Checks, in order: the size bound, the magic, the zstd frame header (content size declared
    and within bounds, no checksum, no dictionary), the decompressed msgpack (a canonical
    :class:`Batch`), the header's own fields, its agreement with the blocks (count, chain id,
    heights, header hashes; every block decoded canonically with ``decode_block``), and last
    that :func:`encode_batch` gives back ``data`` exactly.

    Raises
    ------
    BatchError
        For every other byte string; never any other exception.
    """
    raw = _decompress(data)
    try:
        batch = _BATCH_DECODER.decode(raw)
    except InvalidTransaction as error:
        if error.code == ErrorCode.NON_CANONICAL_ENCODING:
            raise BatchError("NON_CANONICAL", f"msgpack: {error.detail}") from None
        raise BatchError("MALFORMED", f"not a batch: {error.detail}") from None
    check_batch(batch)
    if BATCH_MAGIC + _compress(raw) != data:
        raise BatchError("NON_CANONICAL", "not the bytes encode_batch gives for this batch")
    return batch


def decode_batch_header(data: bytes) -> BatchHeader:
    """Only the header of an encoded batch, without decoding or checking its blocks.

    For indexes over data already checked once (a DA log re-reading its own records): it
    applies the same bounds as :func:`decode_batch` and checks the header's own fields, but
    neither the blocks nor canonicity.

    Raises
    ------
    BatchError
        ``TOO_LARGE``, ``BAD_MAGIC``, ``NOT_ZSTD``, ``NON_CANONICAL`` (frame header),
        ``MALFORMED``, ``BAD_VERSION``, ``BAD_HEADER``, ``EMPTY``, ``TOO_MANY_BLOCKS``.
    """
    raw = _decompress(data)
    try:
        header = _HEADER_DECODER.decode(raw).header
    except msgspec.DecodeError as error:
        raise BatchError("MALFORMED", f"not a batch: {error}") from None
    _check_header_fields(header, len(header.block_header_hashes))
    return header


def check_batch(batch: Batch) -> tuple[Block, ...]:
    """Check that ``batch``'s header is well formed and matches its blocks; return the blocks.

    Raises
    ------
    BatchError
        ``BAD_VERSION``, ``BAD_HEADER``, ``EMPTY``, ``TOO_MANY_BLOCKS``, ``HEADER_MISMATCH``
        (count, chain id, heights or header hashes differ), ``BAD_BLOCK`` (not a canonical
        block).
    """
    header = batch.header
    _check_header_fields(header, len(batch.blocks))
    if len(header.block_header_hashes) != len(batch.blocks):
        raise BatchError(
            "HEADER_MISMATCH",
            f"{len(header.block_header_hashes)} header hashes for {len(batch.blocks)} blocks",
        )
    blocks: list[Block] = []
    for position, data in enumerate(batch.blocks):
        try:
            block = decode_block(data)
        except InvalidBlock as error:
            raise BatchError("BAD_BLOCK", f"block {position}: {error.detail}") from None
        _check_block_in_header(header, position, block)
        blocks.append(block)
    return tuple(blocks)


def _check_header_fields(header: BatchHeader, block_count: int) -> None:
    if header.version != BATCH_VERSION:
        raise BatchError("BAD_VERSION", f"version {header.version}, expected {BATCH_VERSION}")
    if header.index < 0:
        raise BatchError("BAD_HEADER", f"negative index {header.index}")
    if header.first_height < 1:
        raise BatchError("BAD_HEADER", f"first height {header.first_height} < 1")
    if len(header.parent_batch_hash) != len(ZERO_HASH):
        raise BatchError(
            "BAD_HEADER", f"parent batch hash of {len(header.parent_batch_hash)} bytes, not 32"
        )
    if header.index == 0 and header.parent_batch_hash != ZERO_HASH:
        raise BatchError("BAD_HEADER", "batch 0 must have the zero parent batch hash")
    if block_count == 0:
        raise BatchError("EMPTY", "a batch holds at least one block")
    if block_count > MAX_BATCH_BLOCKS:
        raise BatchError("TOO_MANY_BLOCKS", f"{block_count} blocks > {MAX_BATCH_BLOCKS}")
    if header.last_height != header.first_height + block_count - 1:
        raise BatchError(
            "HEADER_MISMATCH",
            f"heights {header.first_height}..{header.last_height} for {block_count} blocks",
        )


def _check_block_in_header(header: BatchHeader, position: int, block: Block) -> None:
    expected_height = header.first_height + position
    if block.header.height != expected_height:
        raise BatchError(
            "HEADER_MISMATCH",
            f"block {position} has height {block.header.height}, expected {expected_height}",
        )
    if block.header.chain_id != header.chain_id:
        raise BatchError(
            "HEADER_MISMATCH",
            f"block {position} is of chain {block.header.chain_id}, batch of {header.chain_id}",
        )
    if compute_header_hash(block.header) != header.block_header_hashes[position]:
        raise BatchError(
            "HEADER_MISMATCH", f"block {position} (height {expected_height}): header hash differs"
        )


def _compress(raw: bytes) -> bytes:
    # A fresh compressor each time: one holds state across calls, and is not thread-safe.
    compressor = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, write_checksum=False, write_content_size=True, write_dict_id=False
    )
    return compressor.compress(raw)


def _decompress(data: bytes) -> bytes:
    """The bounded decompression of an encoded batch's frame (nothing about its content)."""
    if len(data) > MAX_BATCH_BYTES:
        raise BatchError("TOO_LARGE", f"{len(data)} bytes > {MAX_BATCH_BYTES}")
    if data[: len(BATCH_MAGIC)] != BATCH_MAGIC:
        raise BatchError("BAD_MAGIC", f"starts with {data[: len(BATCH_MAGIC)].hex()!r}")
    frame = data[len(BATCH_MAGIC) :]
    if frame[: len(_ZSTD_FRAME_MAGIC)] != _ZSTD_FRAME_MAGIC:
        raise BatchError("NOT_ZSTD", "no zstandard frame after the magic")
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as error:
        raise BatchError("NOT_ZSTD", f"frame header: {error}") from None
    size = params.content_size
    if size == zstandard.CONTENTSIZE_UNKNOWN:
        raise BatchError("NON_CANONICAL", "the frame does not declare its content size")
    if size > MAX_DECOMPRESSED_BYTES:
        raise BatchError("TOO_LARGE", f"declared content size {size} > {MAX_DECOMPRESSED_BYTES}")
    if params.window_size > MAX_DECOMPRESSED_BYTES:
        raise BatchError(
            "TOO_LARGE", f"window size {params.window_size} > {MAX_DECOMPRESSED_BYTES}"
        )
    if params.has_checksum or params.dict_id != 0:
        raise BatchError("NON_CANONICAL", "the frame has a checksum or a dictionary")
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_DECOMPRESSED_BYTES)
    try:
        raw = decompressor.decompress(frame, max_output_size=MAX_DECOMPRESSED_BYTES)
    except zstandard.ZstdError as error:
        raise BatchError("NOT_ZSTD", f"does not decompress: {error}") from None
    if len(raw) != size:  # the library checks this; a bound must not rest on it alone
        raise BatchError("NOT_ZSTD", f"decompressed {len(raw)} bytes, the frame declared {size}")
    return raw

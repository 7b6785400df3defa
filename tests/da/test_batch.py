"""Batches: sealed from real blocks, one byte string each, and every other byte string refused
with a ``BatchError`` of a stable code (never another exception, never an unbounded allocation)."""

from __future__ import annotations

import hashlib
import random
import struct
import tracemalloc

import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core.codec import encode
from strata.da import (
    BATCH_ERROR_CODES,
    BATCH_MAGIC,
    MAX_BATCH_BLOCKS,
    MAX_BATCH_BYTES,
    MAX_DECOMPRESSED_BYTES,
    ZERO_HASH,
    Batch,
    BatchError,
    BatchHeader,
    batch_hash,
    check_batch,
    decode_batch,
    decode_batch_header,
    encode_batch,
    seal_batch,
)
from strata.stf.block import Block, compute_header_hash
from tests.da.file_driver import workload_chain

CHAIN, GENESIS_HASH = workload_chain(8)
BLOCKS: list[Block] = [block for block, _ in CHAIN.blocks]
CHAIN_ID = CHAIN.params.chain_id
BATCH = seal_batch(CHAIN_ID, 0, ZERO_HASH, BLOCKS[:4])
DATA = encode_batch(BATCH)
RAW = encode(BATCH)


def frame(raw: bytes, **options: object) -> bytes:
    """``raw`` compressed the canonical way unless ``options`` say otherwise."""
    chosen = {"level": 3, "write_checksum": False, "write_content_size": True} | options
    return BATCH_MAGIC + zstandard.ZstdCompressor(**chosen).compress(raw)  # type: ignore[arg-type]


def reencoded(batch: Batch) -> bytes:
    """``batch``'s bytes with no validation (``encode_batch`` only checks sizes)."""
    return encode_batch(batch)


def header(**changes: object) -> BatchHeader:
    return msgspec.structs.replace(BATCH.header, **changes)


def refused(data: bytes) -> str:
    with pytest.raises(BatchError) as caught:
        decode_batch(data)
    assert caught.value.code in BATCH_ERROR_CODES
    assert str(caught.value).startswith(caught.value.code + ": ")
    return caught.value.code


# --- round trip and determinism ---


def test_round_trip_on_real_blocks() -> None:
    batch = decode_batch(DATA)
    assert batch == BATCH
    assert [msgspec.msgpack.decode(b, type=Block) for b in batch.blocks] == BLOCKS[:4]
    assert check_batch(batch) == tuple(BLOCKS[:4])
    assert batch.header.first_height == 1 and batch.header.last_height == 4
    assert batch.header.block_header_hashes == tuple(
        compute_header_hash(b.header) for b in BLOCKS[:4]
    )
    assert decode_batch_header(DATA) == BATCH.header


def test_bytes_are_deterministic() -> None:
    again, _ = workload_chain(8)  # a second chain built from scratch
    blocks = [block for block, _ in again.blocks]
    assert encode_batch(seal_batch(CHAIN_ID, 0, ZERO_HASH, blocks[:4])) == DATA
    assert encode_batch(decode_batch(DATA)) == DATA
    assert encode_batch(BATCH) == encode_batch(BATCH)


def test_batch_hash_is_the_sha256_of_the_header() -> None:
    assert batch_hash(BATCH) == hashlib.sha256(encode(BATCH.header)).digest()
    other = seal_batch(CHAIN_ID, 0, ZERO_HASH, BLOCKS[:3])
    assert batch_hash(other) != batch_hash(BATCH)


def test_the_encoding_is_pinned() -> None:
    """A golden vector of the compressed bytes: a different zstd (or level, or flags) would
    make every verifier refuse the sequencer's batches, and must fail here first."""
    synthetic = Batch(
        BatchHeader(1, 7, 3, 10, 11, b"\x11" * 32, (b"\x22" * 32, b"\x33" * 32)),
        (b"block ten" * 20, b"block eleven" * 20),
    )
    data = encode_batch(synthetic)
    assert data[:4] == b"STB1"
    assert data[4:8] == b"\x28\xb5\x2f\xfd"
    assert data.hex() == GOLDEN_HEX


GOLDEN_HEX = (  # zstandard 0.25.0 (libzstd 1.5.7), level 3
    "5354423128b52ffd601701cd0100340292970107030a0bc4201192c42022c4203392c4b4626c6f636b2074656e"
    "c4f0656c65760700db17053c230466068c62a112680668480390"
)


def test_batches_chain_by_hash() -> None:
    first = seal_batch(CHAIN_ID, 0, ZERO_HASH, BLOCKS[:4])
    second = seal_batch(CHAIN_ID, 1, batch_hash(first), BLOCKS[4:])
    assert decode_batch(encode_batch(second)) == second
    assert second.header.first_height == 5 and second.header.last_height == 8


# --- seal_batch refusals ---


def test_seal_refuses_what_decode_would() -> None:
    cases: list[tuple[str, object]] = [
        ("EMPTY", lambda: seal_batch(CHAIN_ID, 0, ZERO_HASH, [])),
        ("TOO_MANY_BLOCKS", lambda: seal_batch(CHAIN_ID, 0, ZERO_HASH, BLOCKS[:1] * 1025)),
        ("HEADER_MISMATCH", lambda: seal_batch(CHAIN_ID, 0, ZERO_HASH, [BLOCKS[0], BLOCKS[2]])),
        ("HEADER_MISMATCH", lambda: seal_batch(CHAIN_ID + 1, 0, ZERO_HASH, BLOCKS[:2])),
        ("BAD_HEADER", lambda: seal_batch(CHAIN_ID, 0, b"\x01" * 32, BLOCKS[:2])),
        ("BAD_HEADER", lambda: seal_batch(CHAIN_ID, 1, b"\x01" * 31, BLOCKS[:2])),
        ("BAD_HEADER", lambda: seal_batch(CHAIN_ID, -1, ZERO_HASH, BLOCKS[:2])),
    ]
    for code, make in cases:
        with pytest.raises(BatchError) as caught:
            make()  # type: ignore[operator]
        assert caught.value.code == code, caught.value


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        BatchError("NO_SUCH_CODE", "x")


# --- every refusal code of decode_batch ---


def test_too_large() -> None:
    assert refused(BATCH_MAGIC + bytes(MAX_BATCH_BYTES)) == "TOO_LARGE"
    noise = random.Random(1).randbytes(MAX_BATCH_BYTES + 1024)
    with pytest.raises(BatchError) as caught:  # incompressible: the encoder refuses it too
        encode_batch(msgspec.structs.replace(BATCH, blocks=(noise,)))
    assert caught.value.code == "TOO_LARGE"


def test_bad_magic() -> None:
    assert refused(b"") == "BAD_MAGIC"
    assert refused(b"STB") == "BAD_MAGIC"
    assert refused(b"STB2" + DATA[4:]) == "BAD_MAGIC"
    assert refused(DATA[4:]) == "BAD_MAGIC"


def test_not_zstd() -> None:
    assert refused(BATCH_MAGIC) == "NOT_ZSTD"
    assert refused(BATCH_MAGIC + RAW) == "NOT_ZSTD"
    assert refused(BATCH_MAGIC + b"\x28\xb5\x2f\xfd") == "NOT_ZSTD"
    assert refused(DATA[:-1]) == "NOT_ZSTD"  # the frame is cut
    assert refused(DATA[:10]) == "NOT_ZSTD"
    # a skippable frame carries no content
    assert refused(BATCH_MAGIC + b"\x50\x2a\x4d\x18" + struct.pack("<I", 3) + b"abc") == "NOT_ZSTD"


def test_non_canonical_frames() -> None:
    assert frame(RAW) == DATA
    assert refused(frame(RAW, level=19)) == "NON_CANONICAL"
    assert refused(frame(RAW, level=1)) == "NON_CANONICAL"
    assert refused(frame(RAW, write_checksum=True)) == "NON_CANONICAL"
    assert refused(frame(RAW, write_content_size=False)) == "NON_CANONICAL"
    assert refused(DATA + b"\x00") == "NON_CANONICAL"  # trailing bytes
    assert refused(DATA + DATA[4:]) == "NON_CANONICAL"  # a second frame


def test_non_canonical_msgpack() -> None:
    # [[1, ...], ...]: the version written as a 2-byte uint8 instead of a positive fixint.
    assert RAW[:3] == b"\x92\x97\x01"
    longer = RAW[:2] + b"\xcc\x01" + RAW[3:]
    assert msgspec.msgpack.decode(longer, type=Batch) == BATCH
    assert refused(frame(longer)) == "NON_CANONICAL"


def test_malformed() -> None:
    assert refused(frame(b"not msgpack at all")) == "MALFORMED"
    assert refused(frame(encode([1, 2, 3]))) == "MALFORMED"
    assert refused(frame(encode(BATCH.header))) == "MALFORMED"
    assert refused(frame(b"")) == "MALFORMED"


def test_bad_version() -> None:
    assert refused(reencoded(Batch(header(version=2), BATCH.blocks))) == "BAD_VERSION"
    assert refused(reencoded(Batch(header(version=0), BATCH.blocks))) == "BAD_VERSION"


def test_bad_header() -> None:
    for changes in (
        {"index": -1},
        {"first_height": 0, "last_height": 3},
        {"parent_batch_hash": b"\x00" * 31},
        {"parent_batch_hash": b"\x01" * 32},  # index 0 must have the zero parent
    ):
        assert refused(reencoded(Batch(header(**changes), BATCH.blocks))) == "BAD_HEADER"


def test_empty() -> None:
    empty = Batch(header(last_height=0, block_header_hashes=()), ())
    assert refused(reencoded(empty)) == "EMPTY"


def test_too_many_blocks() -> None:
    count = MAX_BATCH_BLOCKS + 1
    many = Batch(
        header(last_height=count, block_header_hashes=(ZERO_HASH,) * count), (b"",) * count
    )
    assert refused(reencoded(many)) == "TOO_MANY_BLOCKS"


def test_header_mismatch() -> None:
    hashes = BATCH.header.block_header_hashes
    cases = [
        header(last_height=5),  # heights vs count
        header(block_header_hashes=hashes[:3]),  # hash count
        header(block_header_hashes=(*hashes[:3], hashes[0])),  # a wrong hash
        header(first_height=2, last_height=5),  # heights of the blocks
        header(chain_id=CHAIN_ID + 1),  # the blocks' chain
    ]
    for bad in cases:
        assert refused(reencoded(Batch(bad, BATCH.blocks))) == "HEADER_MISMATCH", bad
    swapped = (BATCH.blocks[1], BATCH.blocks[0], *BATCH.blocks[2:])
    assert refused(reencoded(Batch(BATCH.header, swapped))) == "HEADER_MISMATCH"


def test_bad_block() -> None:
    for junk in (b"", b"\x93\x01\x02\x03", RAW, BATCH.blocks[0] + b"\x00"):
        blocks = (*BATCH.blocks[:2], junk, *BATCH.blocks[3:])
        assert refused(reencoded(Batch(BATCH.header, blocks))) == "BAD_BLOCK"
    # a block whose own msgpack is not canonical: its chain id 7777 as a uint32, not a uint16
    block = BATCH.blocks[0]
    assert block[:5] == b"\x93\x99\xcd\x1e\x61"
    longer = block[:2] + b"\xce\x00\x00\x1e\x61" + block[5:]
    assert msgspec.msgpack.decode(longer, type=Block) == BLOCKS[0]
    blocks = (longer, *BATCH.blocks[1:])
    assert refused(reencoded(Batch(BATCH.header, blocks))) == "BAD_BLOCK"


# --- bounded decompression ---


def _allocated_while(call: object) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(BatchError) as caught:
            call()  # type: ignore[operator]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code in {"TOO_LARGE", "NON_CANONICAL"}
    return peak


def test_bomb_with_a_huge_declared_size_is_refused_before_allocating() -> None:
    zeros = bytes(MAX_DECOMPRESSED_BYTES + 1)
    bomb = frame(zeros)
    del zeros
    assert len(bomb) < 64 * 1024  # a small frame ...
    assert zstandard.get_frame_parameters(bomb[4:]).content_size == MAX_DECOMPRESSED_BYTES + 1
    assert _allocated_while(lambda: decode_batch(bomb)) < 1024 * 1024  # ... never inflated
    assert refused(bomb) == "TOO_LARGE"
    with pytest.raises(BatchError, match="TOO_LARGE"):
        decode_batch_header(bomb)


def test_bomb_declaring_a_terabyte_is_refused() -> None:
    # A frame header alone: 8-byte content size of 2**40, a 1 MiB window, then one empty block.
    forged = b"\x28\xb5\x2f\xfd\xc0\x50" + struct.pack("<Q", 1 << 40) + b"\x01\x00\x00"
    assert zstandard.get_frame_parameters(forged).content_size == 1 << 40
    assert _allocated_while(lambda: decode_batch(BATCH_MAGIC + forged)) < 1024 * 1024


def test_a_huge_window_is_refused() -> None:
    # Content size 100, but a 2 GiB window the decoder would have to allocate.
    forged = b"\x28\xb5\x2f\xfd\xc0" + bytes([21 << 3]) + struct.pack("<Q", 100) + b"\x01\x00\x00"
    assert zstandard.get_frame_parameters(forged).window_size == 1 << 31
    assert refused(BATCH_MAGIC + forged) == "TOO_LARGE"


def test_bomb_without_content_size_is_refused_before_allocating() -> None:
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=False)
    chunks = compressor.compressobj()
    body = b"".join(chunks.compress(bytes(1 << 20)) for _ in range(100)) + chunks.flush()
    bomb = BATCH_MAGIC + body
    assert len(bomb) < 64 * 1024
    assert zstandard.get_frame_parameters(body).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert _allocated_while(lambda: decode_batch(bomb)) < 1024 * 1024
    assert refused(bomb) == "NON_CANONICAL"


# --- fuzz: nothing but BatchError ---


def _decode_or_refuse(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except BatchError as error:
        assert error.code in BATCH_ERROR_CODES
    else:
        assert encode_batch(batch) == data
    try:
        decode_batch_header(data)
    except BatchError as error:
        assert error.code in BATCH_ERROR_CODES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_refused(data: bytes) -> None:
    _decode_or_refuse(data)
    _decode_or_refuse(BATCH_MAGIC + data)
    _decode_or_refuse(BATCH_MAGIC + b"\x28\xb5\x2f\xfd" + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_and_truncated_batches_are_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(DATA) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = DATA[:position] + bytes([value]) + DATA[position + 1 :]
    _decode_or_refuse(mutated)
    _decode_or_refuse(DATA[: data.draw(st.integers(0, len(DATA)))])
    _decode_or_refuse(DATA + data.draw(st.binary(min_size=1, max_size=20)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_contents_in_a_valid_frame_are_refused(data: st.DataObject) -> None:
    """Mutations of the msgpack inside a canonical frame reach the header and block checks."""
    raw = bytearray(RAW)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(raw) - 8, len(raw)))
    _decode_or_refuse(frame(bytes(raw[:cut])))


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        BatchHeader,
        st.integers(-2, 3),
        st.integers(0, 2**64 - 1),
        st.integers(-1, 3),
        st.integers(-1, 6),
        st.integers(-1, 6),
        st.binary(max_size=33),
        st.lists(st.binary(max_size=33), max_size=5).map(tuple),
    ),
    st.lists(st.sampled_from([*BATCH.blocks, b"", b"\xc0"]), max_size=5).map(tuple),
)
def test_arbitrary_well_typed_batches_decode_or_are_refused(
    head: BatchHeader, blocks: tuple[bytes, ...]
) -> None:
    _decode_or_refuse(reencoded(Batch(head, blocks)))


@pytest.mark.long
@settings(max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_long_fuzz_of_mutations(data: st.DataObject) -> None:
    mutated = bytearray(DATA)
    for _ in range(data.draw(st.integers(1, 8))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    _decode_or_refuse(bytes(mutated))
    raw = bytearray(RAW)
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    _decode_or_refuse(frame(bytes(raw)))

"""Derivation: the chain's blocks come out of its batches in order, and every broken link (batch
index, parent batch hash, chain, heights, block parent hash) stops it with ``BROKEN_CHAIN``."""

from __future__ import annotations

import msgspec
import pytest

from strata.core.codec import encode
from strata.da import (
    ZERO_HASH,
    Batch,
    BatchError,
    batch_hash,
    decode_batch,
    derive_blocks,
    encode_batch,
    seal_batch,
)
from strata.exec.serial import SerialExecutor
from strata.stf.block import Block
from strata.stf.transactions import PlaceOrder
from tests.da.file_driver import seal_all, workload_chain
from tests.helpers.chain import make_chain

CHAIN, GENESIS_HASH = workload_chain(10)
BLOCKS: list[Block] = [block for block, _ in CHAIN.blocks]
CHAIN_ID = CHAIN.params.chain_id
BATCHES = seal_all(BLOCKS, 3, CHAIN_ID)  # heights 1-3, 4-6, 7-9, 10


def derive(batches: list[Batch], genesis: bytes = GENESIS_HASH) -> list[Block]:
    return list(derive_blocks(genesis, batches))


def broken(batches: list[Batch], genesis: bytes = GENESIS_HASH, code: str = "BROKEN_CHAIN") -> str:
    with pytest.raises(BatchError) as caught:
        derive(batches, genesis)
    assert caught.value.code == code, caught.value
    return caught.value.detail


def test_derivation_yields_the_blocks_in_order() -> None:
    assert [len(b.blocks) for b in BATCHES] == [3, 3, 3, 1]
    assert derive(BATCHES) == BLOCKS
    assert derive([]) == []


def test_derivation_from_decoded_bytes_is_identical() -> None:
    decoded = [decode_batch(encode_batch(batch)) for batch in BATCHES]
    assert derive(decoded) == BLOCKS
    assert [encode(block) for block in derive(decoded)] == [encode(block) for block in BLOCKS]


def test_derived_blocks_replay_to_the_same_headers_from_genesis_alone() -> None:
    fresh = make_chain()  # the genesis, and nothing else
    executor = SerialExecutor()
    for block in derive_blocks(GENESIS_HASH, BATCHES):
        output = executor.execute(fresh.state, block, fresh.params)
        assert output.header == block.header


def test_derivation_is_lazy_and_stops_at_the_first_bad_batch() -> None:
    bad = msgspec.structs.replace(BATCHES[2], blocks=(b"junk", *BATCHES[2].blocks[1:]))
    blocks = derive_blocks(GENESIS_HASH, [BATCHES[0], BATCHES[1], bad, BATCHES[3]])
    assert [next(blocks) for _ in range(6)] == BLOCKS[:6]
    with pytest.raises(BatchError) as caught:
        next(blocks)  # none of the bad batch's blocks comes out
    assert caught.value.code == "BAD_BLOCK"


def test_a_batch_is_checked_in_full_before_its_first_block() -> None:
    hashes = BATCHES[1].header.block_header_hashes
    wrong = msgspec.structs.replace(BATCHES[1].header, block_header_hashes=(*hashes[:2], bytes(32)))
    bad = Batch(wrong, BATCHES[1].blocks)
    blocks = derive_blocks(GENESIS_HASH, [BATCHES[0], bad])
    assert [next(blocks) for _ in range(3)] == BLOCKS[:3]
    with pytest.raises(BatchError) as caught:
        next(blocks)
    assert caught.value.code == "HEADER_MISMATCH"


# --- broken chains ---


def test_indexes_must_start_at_zero_and_be_consecutive() -> None:
    assert "index 1, expected 0" in broken(BATCHES[1:])
    assert "index 2, expected 1" in broken([BATCHES[0], BATCHES[2]])
    assert "index 0, expected 1" in broken([BATCHES[0], BATCHES[0]])


def test_parent_batch_hash_must_be_the_previous_batch() -> None:
    # batch 1 sealed with the right blocks but a wrong parent
    wrong_parent = seal_batch(CHAIN_ID, 1, b"\x01" * 32, BLOCKS[3:6])
    assert "parent batch hash" in broken([BATCHES[0], wrong_parent])
    # batch 2 whose parent is batch 0, not batch 1
    skipped = seal_batch(CHAIN_ID, 2, batch_hash(BATCHES[0]), BLOCKS[6:9])
    assert "parent batch hash" in broken([BATCHES[0], BATCHES[1], skipped])


def test_heights_must_continue() -> None:
    first = seal_batch(CHAIN_ID, 0, ZERO_HASH, BLOCKS[1:3])  # starts at height 2
    assert "starts at height 2, expected 1" in broken([first])
    gap = seal_batch(CHAIN_ID, 1, batch_hash(BATCHES[0]), BLOCKS[4:6])  # height 4 missing
    assert "starts at height 5, expected 4" in broken([BATCHES[0], gap])
    overlap = seal_batch(CHAIN_ID, 1, batch_hash(BATCHES[0]), BLOCKS[2:5])
    assert "starts at height 3, expected 4" in broken([BATCHES[0], overlap])


def test_block_parent_hashes_must_chain_from_genesis() -> None:
    assert "expected " + bytes(32).hex() in broken(BATCHES, genesis=bytes(32))
    # another chain with the same heights: its block 4 does not follow our block 3
    other = make_chain()
    for height in range(1, 7):
        other.block([other.tx("alice", PlaceOrder(2, True, 29_000 + height, 10, 0, False, None))])
    other_blocks = [block for block, _ in other.blocks]
    spliced = seal_batch(CHAIN_ID, 1, batch_hash(BATCHES[0]), other_blocks[3:6])
    assert "block 4 has parent" in broken([BATCHES[0], spliced])
    # inside one batch: heights follow, parents do not
    mixed = seal_batch(CHAIN_ID, 0, ZERO_HASH, [BLOCKS[0], other_blocks[1], BLOCKS[2]])
    assert "block 2 has parent" in broken([mixed])


def test_the_chain_id_must_not_change() -> None:
    foreign = [
        msgspec.structs.replace(
            block, header=msgspec.structs.replace(block.header, chain_id=CHAIN_ID + 1)
        )
        for block in BLOCKS[3:6]
    ]
    batch = seal_batch(CHAIN_ID + 1, 1, batch_hash(BATCHES[0]), foreign)
    assert "of chain" in broken([BATCHES[0], batch])


def test_batch_level_refusals_surface_through_derivation() -> None:
    empty = Batch(
        msgspec.structs.replace(BATCHES[0].header, last_height=0, block_header_hashes=()), ()
    )
    broken([empty], code="EMPTY")
    bad_version = Batch(msgspec.structs.replace(BATCHES[0].header, version=9), BATCHES[0].blocks)
    broken([bad_version], code="BAD_VERSION")

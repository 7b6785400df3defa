"""A block's output keeps each receipt as its canonical bytes (the leaves of the receipts root)
and decodes them when ``receipts`` is read: what execution encodes from a receipt's fields must
be exactly the encoding of the ``Receipt``, and the output must read, compare, copy and travel
(the index process receives it encoded) as it did with the records."""

from __future__ import annotations

from pathlib import Path

import msgspec

from strata.adapters.chain_store import ChainStore
from strata.core.codec import encode
from strata.core.ordered_merkle import compute_ordered_root
from strata.modules.clearing.events import OrderUpdate
from strata.stf.block import BlockOutput, Receipt, encode_receipts
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block, build_block, check_signatures, copy_state
from tests.storage.workload import GENESIS, block_time, block_transactions


def _output() -> BlockOutput:
    state, _ = make_genesis(GENESIS)
    txs = block_transactions(1, count=40)
    signers = check_signatures(GENESIS.params, txs)
    block, built = build_block(copy_state(state), block_time(1), (), txs, GENESIS.params, signers)
    applied = apply_block(state, block, GENESIS.params, signers)
    assert applied == built
    return applied


def test_each_receipt_is_its_records_canonical_encoding() -> None:
    output = _output()
    receipts = output.receipts
    assert len(receipts) == len(output.transactions) == 40
    assert all(type(receipt) is Receipt for receipt in receipts)
    # The bytes are the records' encodings, and they are what the receipts root commits to.
    assert encode_receipts(receipts) == output.encoded_receipts
    leaves = [*output.encoded_receipts, encode(output.block_events)]
    assert compute_ordered_root(leaves) == output.header.receipts_root
    # Events came through whole: the placements' order updates are there, typed.
    assert any(isinstance(event, OrderUpdate) for receipt in receipts for event in receipt.events)


def test_the_receipts_are_decoded_once_and_not_compared() -> None:
    output = _output()
    assert output.receipts is output.receipts
    fresh = msgspec.structs.replace(output)  # (no receipts decoded yet)
    assert fresh == output
    assert fresh.receipts == output.receipts
    other = msgspec.structs.replace(output, encoded_receipts=output.encoded_receipts[1:])
    assert other != output


def test_the_output_travels_encoded() -> None:
    output = _output()
    assert output.receipts  # (decoded now: not part of the encoding)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(output), type=BlockOutput)
    assert decoded == output
    assert decoded.receipts == output.receipts


def test_the_store_keeps_the_receipts_bytes(tmp_path: Path) -> None:
    """A real LMDB store writes the receipts' bytes as they are, in the record it always wrote
    (decoded whole, it gives the same receipts), and gives them back."""
    store = ChainStore.create(tmp_path / "chain", GENESIS, checkpoint_every=4, retain_heights=8)
    try:
        for height in (1, 2):
            txs = block_transactions(height, count=30)
            block, output = build_block(store.state, block_time(height), (), txs, store.params)
            store.commit_block(block, output)
            assert store.get_encoded_receipts(height) == (
                output.encoded_receipts,
                output.block_events,
            )
            assert store.get_receipts(height) == (output.receipts, output.block_events)
    finally:
        store.close()

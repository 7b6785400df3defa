"""Decoders never crash: any byte string is a transaction, or it is rejected with a stable code.

Random bytes and single-byte mutations of valid transactions go through ``decode_transaction``
and through ``build_block``; the only outcomes allowed are a decoded transaction, or an
``InvalidTransaction`` / rejection with a code of the invalid-transaction family. A block's bytes
get the same treatment through ``decode_block`` (``InvalidBlock`` ``MALFORMED_BLOCK``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.core.codec import encode
from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.stf.block import decode_block
from strata.stf.transactions import (
    BulkPlace,
    CancelOrder,
    PlaceOrder,
    Transfer,
    decode_transaction,
    encode_transaction,
)
from strata.stf.transition import build_block, copy_state
from tests.helpers.chain import make_chain

CHAIN = make_chain()
VALID = [
    CHAIN.tx("alice", PlaceOrder(1, True, 499_000, 5, 0, False, 9)),
    CHAIN.tx("bob", CancelOrder(1, 3, None)),
    CHAIN.tx("carol", Transfer(CHAIN.addr("alice"), 1_000)),
    CHAIN.tx("alice", BulkPlace((PlaceOrder(2, False, 31_000, 10, 3),) * 3)),
]


def _is_transaction_code(code: int) -> bool:
    return 2000 <= code < 3000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_reject(data: bytes) -> None:
    try:
        tx = decode_transaction(data)
    except InvalidTransaction as error:
        assert _is_transaction_code(error.code)
    else:
        assert encode_transaction(tx) == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.data())
def test_mutated_transactions_are_rejected_cleanly_by_the_block_builder(
    valid: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(valid) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = valid[:position] + bytes([value]) + valid[position + 1 :]
    state = copy_state(CHAIN.state)
    _, output = build_block(state, CHAIN.now_ms + 200, (), [mutated], CHAIN.params)
    if output.rejected:
        assert len(output.rejected) == 1
        assert _is_transaction_code(output.rejected[0][1])
    else:
        # Still a valid transaction (e.g. a mutated price): it was executed.
        assert output.transactions == (mutated,)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_block_bytes_are_malformed_blocks(data: bytes) -> None:
    try:
        block = decode_block(data)
    except InvalidBlock as error:
        assert error.code == ErrorCode.MALFORMED_BLOCK
    else:
        assert encode(block) == data

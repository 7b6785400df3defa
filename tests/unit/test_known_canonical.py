"""Execution decodes a transaction without re-encoding it when its signer was found: the signature
check decoded the same bytes first, canonically. Bytes that are not canonical never get a signer,
so they are still rejected as NON_CANONICAL_ENCODING."""

from __future__ import annotations

import pytest

from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.stf.block import Block
from strata.stf.genesis import make_genesis
from strata.stf.transactions import TX_DECODER
from strata.stf.transition import apply_block, build_block, check_signatures, copy_state
from tests.storage.workload import GENESIS, block_time, block_transactions


def _non_canonical(tx: bytes) -> bytes:
    """``tx`` with its first positive fixint after the header re-encoded as uint8 (``cc``): the
    same value, longer bytes (as the vector ``reject_non_canonical_encoding``)."""
    at = 1 + 22 + 9 + 1  # array header, account (bin8 of 20), nonce (uint64), action's header
    assert tx[at] < 0x80
    return tx[:at] + b"\xcc" + tx[at:]


def test_known_canonical_bytes_decode_to_the_same_value() -> None:
    for data in block_transactions(1, count=20):
        assert TX_DECODER.decode_known_canonical(data) == TX_DECODER.decode(data)


def test_what_the_known_path_does_not_check_never_reaches_it() -> None:
    good = block_transactions(1, count=1)[0]
    bad = _non_canonical(good)
    with pytest.raises(InvalidTransaction) as error:
        TX_DECODER.decode(bad)
    assert error.value.code == ErrorCode.NON_CANONICAL_ENCODING
    # Without the check, the bytes decode: the known path trusts its caller...
    assert TX_DECODER.decode_known_canonical(bad) == TX_DECODER.decode(good)
    # ...and the signature check, which decodes first, gives these bytes no signer.
    signers = check_signatures(GENESIS.params, [good, bad])
    assert signers[0] is not None and signers[1] is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x95\x01", ErrorCode.MALFORMED_TRANSACTION),
        (b"\xc1", ErrorCode.MALFORMED_TRANSACTION),
        (b"\x95" + bytes(16_384), ErrorCode.TRANSACTION_TOO_LARGE),
    ],
)
def test_known_path_still_rejects_what_does_not_decode(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(InvalidTransaction) as error:
        TX_DECODER.decode_known_canonical(data)
    assert error.value.code == code


def test_a_non_canonical_transaction_is_rejected_with_signers_from_upstream() -> None:
    state, _ = make_genesis(GENESIS)
    txs = block_transactions(1, count=6)
    txs[2] = _non_canonical(txs[2])
    signers = check_signatures(GENESIS.params, txs)
    block, output = build_block(copy_state(state), block_time(1), (), txs, GENESIS.params, signers)
    assert [code for _, code in output.rejected] == [ErrorCode.NON_CANONICAL_ENCODING]
    assert len(block.transactions) == 5
    # Forced into a block, it makes the block invalid, with upstream signers as without.
    forced = Block(block.header, block.system, tuple(txs))
    for given in (signers, None):
        with pytest.raises(InvalidBlock) as error:
            apply_block(copy_state(state), forced, GENESIS.params, given)
        assert error.value.code == ErrorCode.INVALID_TRANSACTION_IN_BLOCK
        assert "NON_CANONICAL_ENCODING" in str(error.value)

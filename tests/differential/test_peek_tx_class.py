"""``peek_tx_class`` (a transaction's canonical class read from its bytes) against
``compute_tx_class`` of the decoded action.

Execution orders a block by these classes before admitting anything, so the two must agree on
every transaction that decodes: the peek may give up (-1, and the executor decodes instead), but
never give another class. Compared on the golden vectors' transactions, on the benchmark's
workloads (where it must never give up but on bulk placements and modifies, which it leaves to
the decoder), on generated transactions of every action type with random times in force, and on
mangled bytes (where it must not raise).
"""

from __future__ import annotations

import random

import pytest
from bench.engine_bench import build_chain_workload
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.errors import InvalidTransaction
from strata.stf.transactions import (
    TX_DECODER,
    ApproveAgent,
    BulkCancel,
    BulkModify,
    BulkPlace,
    CancelAll,
    CancelOrder,
    CancelTrigger,
    ModifyOrder,
    MoveIsolatedMargin,
    PlaceOrder,
    PlaceTrigger,
    RevokeAgent,
    ScheduleCancel,
    SetMarginMode,
    SignedTransaction,
    Transfer,
    Withdraw,
    encode_transaction,
)
from strata.stf.transition import compute_tx_class, peek_tx_class
from tests.helpers.vectors import vector_transactions

TRANSACTIONS = vector_transactions()


def _decoded_class(data: bytes) -> int | None:
    try:
        return compute_tx_class(TX_DECODER.decode_known_canonical(data).action)
    except InvalidTransaction:
        return None


def _agrees(data: bytes) -> int:
    """Check the peek against the decoded class; return the peek."""
    peeked = peek_tx_class(data)
    want = _decoded_class(data)
    if want is not None:
        assert peeked in (-1, want), (data.hex(), peeked, want)
    return peeked


def _peekable(action: object) -> bool:
    """Whether the peek reads this action's class (it leaves bulk placements and modifies to
    the decoder)."""
    return not isinstance(action, BulkPlace | BulkModify)


def test_every_vector_transaction() -> None:
    classes = {_agrees(tx) for tx in TRANSACTIONS}
    assert {0, 1, 2} <= classes


@pytest.mark.parametrize("bulk", [False, True])
def test_the_benchmark_workloads_are_all_peeked(bulk: bool) -> None:
    _, blocks = build_chain_workload(3_000, 7, block_size=1_000, bulk=bulk)
    seen = set()
    for block, _ in blocks:
        for tx in block.transactions:  # type: ignore[attr-defined]
            peeked = _agrees(tx)
            if _peekable(TX_DECODER.decode(tx).action):
                assert peeked == _decoded_class(tx)  # never gives up on canonical bytes
                seen.add(peeked)
            else:
                assert peeked == -1
    assert seen == {0, 1, 2}


_U32 = st.integers(0, 2**32 - 1)
_ID = st.none() | st.integers(0, 2**63 - 1)
_TIF = st.integers(0, 3)
_PRICE = st.integers(1, 2**63 - 1)
_PLACE = st.builds(PlaceOrder, _U32, st.booleans(), _PRICE, _PRICE, _TIF, st.booleans(), _ID, _ID)
_MODIFY = st.builds(ModifyOrder, _U32, _ID, _ID, st.booleans(), _PRICE, _PRICE, _TIF, st.booleans())
_CANCEL = st.builds(CancelOrder, _U32, _ID, _ID)
_KEY = st.binary(min_size=32, max_size=32)
_ADDRESS = st.binary(min_size=20, max_size=20)
_ACTION = st.one_of(
    _PLACE,
    _MODIFY,
    _CANCEL,
    st.builds(BulkPlace, st.lists(_PLACE, max_size=20).map(tuple)),
    st.builds(BulkModify, st.lists(_MODIFY, max_size=20).map(tuple)),
    st.builds(BulkCancel, st.lists(_CANCEL, max_size=20).map(tuple)),
    st.builds(CancelAll, st.none() | _U32),
    st.builds(ApproveAgent, _KEY, st.integers(0, 2**63 - 1), st.binary(min_size=64, max_size=64)),
    st.builds(RevokeAgent, _KEY),
    st.builds(Transfer, _ADDRESS, _PRICE),
    st.builds(Withdraw, _PRICE, _ADDRESS),
    st.builds(ScheduleCancel, _ID),
    st.builds(PlaceTrigger, _U32, st.booleans(), _PRICE, st.booleans(), _PRICE, _PRICE, _TIF),
    st.builds(CancelTrigger, _U32, st.integers(0, 2**63 - 1)),
    st.builds(SetMarginMode, _U32, st.booleans()),
    st.builds(MoveIsolatedMargin, _U32, st.integers(-(2**62), 2**62)),
)


@settings(max_examples=600, deadline=None)
@given(
    _ADDRESS,
    st.integers(0, 2**63 - 1),
    _ACTION,
    st.none() | _KEY,
    st.binary(min_size=64, max_size=65),
)
def test_generated_transactions(
    account: bytes, nonce: int, action: object, agent: bytes | None, signature: bytes
) -> None:
    data = encode_transaction(SignedTransaction(account, nonce, action, agent, signature))  # type: ignore[arg-type]
    want = compute_tx_class(action) if _peekable(action) else -1  # type: ignore[arg-type]
    assert peek_tx_class(data) == want


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_mangled_bytes_never_raise_nor_misclass(data: st.DataObject) -> None:
    tx = bytearray(data.draw(st.sampled_from(TRANSACTIONS)))
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.sampled_from(("flip", "cut", "append", "insert")))
        at = data.draw(st.integers(0, len(tx)))
        if how == "flip" and at < len(tx):
            tx[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del tx[at:]
        elif how == "append":
            tx += data.draw(st.binary(min_size=1, max_size=8))
        else:
            tx[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    _agrees(bytes(tx))


def test_random_bytes_never_raise() -> None:
    rng = random.Random(5)
    for size in range(0, 200):
        for _ in range(20):
            data = bytes([0x95, 0xC4, 0x14]) + rng.randbytes(size)
            assert peek_tx_class(data) in (-1, 0, 1, 2)
            assert peek_tx_class(rng.randbytes(size)) in (-1, 0, 1, 2)

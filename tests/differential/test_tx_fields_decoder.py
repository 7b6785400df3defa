"""``TX_FIELDS_DECODER`` (a transaction decoded into the tuple of its fields, what the executor
runs on) against ``TX_DECODER`` (into a ``SignedTransaction``, what everything else uses).

They must accept exactly the same bytes, with the same verdict (the same error code for bytes
refused), and give the same values: otherwise a block could be valid for the executor and not for
a client, or the reverse. Compared on every transaction of the golden vectors (all the action
types and the malformed ones), on those mangled (bytes flipped, cut, appended; the array made one
item shorter or longer), and on random MessagePack arrays of five or so random items.
"""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.codec import CanonicalDecoder
from strata.core.errors import InvalidTransaction
from strata.stf.transactions import TX_DECODER, TX_FIELDS_DECODER, SignedTransaction
from tests.helpers.vectors import vector_transactions

TRANSACTIONS = vector_transactions()


def _verdict(decoder: CanonicalDecoder[object], data: bytes, canonical: bool) -> object:
    """The values decoded (as a tuple of fields), or the error code."""
    try:
        value = decoder.decode(data) if canonical else decoder.decode_known_canonical(data)
    except InvalidTransaction as error:
        return error.code
    if isinstance(value, SignedTransaction):
        return msgspec.structs.astuple(value)
    return value


def _same(data: bytes) -> None:
    for canonical in (True, False):
        want = _verdict(TX_DECODER, data, canonical)  # type: ignore[arg-type]
        got = _verdict(TX_FIELDS_DECODER, data, canonical)  # type: ignore[arg-type]
        assert got == want, (data.hex(), canonical)
        if isinstance(want, tuple):
            assert [type(v) for v in got] == [type(v) for v in want]  # type: ignore[union-attr]


def test_the_vectors_hold_valid_and_malformed_transactions() -> None:
    verdicts = [_verdict(TX_DECODER, tx, True) for tx in TRANSACTIONS]  # type: ignore[arg-type]
    assert sum(isinstance(v, tuple) for v in verdicts) >= 100
    assert sum(isinstance(v, int) for v in verdicts) >= 1
    kinds = {type(v[2]).__name__ for v in verdicts if isinstance(v, tuple)}
    assert len(kinds) >= 12, kinds


@pytest.mark.parametrize("data", TRANSACTIONS, ids=lambda d: d[:12].hex())
def test_same_verdict_on_every_vector_transaction(data: bytes) -> None:
    _same(data)


def test_same_verdict_on_arrays_one_shorter_or_longer() -> None:
    for data in TRANSACTIONS:
        try:
            items = msgspec.msgpack.decode(data)
        except msgspec.DecodeError:
            continue
        if not isinstance(items, list):
            continue
        _same(msgspec.msgpack.encode(items[:-1]))
        _same(msgspec.msgpack.encode([*items, 0]))
        _same(msgspec.msgpack.encode([*items, None]))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_same_verdict_on_mangled_transactions(data: st.DataObject) -> None:
    tx = bytearray(data.draw(st.sampled_from(TRANSACTIONS)))
    how = data.draw(st.sampled_from(("flip", "cut", "append")))
    if how == "flip" and tx:
        at = data.draw(st.integers(0, len(tx) - 1))
        tx[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        del tx[data.draw(st.integers(0, len(tx))) :]
    else:
        tx += data.draw(st.binary(min_size=1, max_size=8))
    _same(bytes(tx))


_ITEM = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.binary(max_size=70),
    st.lists(st.integers(0, 300), max_size=9),
)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(min_size=20, max_size=20),
    st.integers(-1, 2**64 - 1),
    st.sampled_from(TRANSACTIONS),
    st.lists(_ITEM, min_size=0, max_size=4),
)
def test_same_verdict_on_random_arrays(
    account: bytes, nonce: int, donor: bytes, rest: list[object]
) -> None:
    """An account, a nonce, the action of a vector transaction (when it has one) and random
    items after it."""
    try:
        action = msgspec.msgpack.decode(donor)[2]
    except (msgspec.DecodeError, IndexError, TypeError, KeyError):
        action = [5, 1, True, 100, 1]
    _same(msgspec.msgpack.encode([account, nonce, action, *rest]))

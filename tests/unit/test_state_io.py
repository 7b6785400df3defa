"""A state written out as its committed entries reads back as the same state."""

from __future__ import annotations

import pytest

from strata.core.errors import ErrorCode, InvalidBlock
from strata.stf.state_io import load_state
from strata.stf.state_root import compute_state_root, iter_state_leaves
from strata.stf.transactions import PlaceOrder, Transfer, Withdraw
from strata.stf.transition import build_block
from tests.helpers.chain import agent_from_seed, make_chain


def busy_chain():  # type: ignore[no-untyped-def]
    c = make_chain()
    agent = agent_from_seed("bot")
    c.block(
        [
            c.tx("alice", PlaceOrder(1, False, 500_100, 10, 0, False, 5)),
            c.tx("bob", PlaceOrder(1, True, 500_100, 4, 1)),
            c.tx("carol", PlaceOrder(2, True, 29_900, 50, 3)),
            c.approve("alice", agent, c.now_ms + 10**7),
            c.tx("bob", Transfer(c.addr("carol"), 1_000_000)),
            c.tx("carol", Withdraw(2_000_000, c.addr("carol"))),
        ],
        [c.price(2, 30_100)],
    )
    return c


def test_round_trip_keeps_every_entry_and_the_root() -> None:
    c = busy_chain()
    entries = sorted(iter_state_leaves(c.state))
    loaded = load_state(list(reversed(entries)), c.state.tip)
    assert sorted(iter_state_leaves(loaded)) == entries
    assert compute_state_root(loaded) == compute_state_root(c.state)
    # The loaded state goes on exactly as the original: same next block, same header.
    txs = [
        c.tx("alice", PlaceOrder(1, True, 500_000, 3, 0)),
        c.tx("bob", PlaceOrder(1, False, 499_000, 9, 1)),
    ]
    _, first = build_block(c.state, c.now_ms + 200, (), txs, c.params)
    _, second = build_block(loaded, c.now_ms + 200, (), txs, c.params)
    assert first.header == second.header


@pytest.mark.parametrize(
    "tamper",
    [
        lambda e: [*e, (b"\x99" + b"x" * 20, b"\x01")],  # unknown prefix
        lambda e: [(k, v + b"\x00") if k[0] == 0x40 else (k, v) for k, v in e],  # trailing byte
        lambda e: [(k[:-1], v) if k[0] == 0x70 else (k, v) for k, v in e],  # short book key
        lambda e: [(k, b"\xc1") if k[0] == 0x20 else (k, v) for k, v in e],  # not msgpack
    ],
)
def test_entries_that_do_not_check_out_are_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    c = busy_chain()
    entries = tamper(list(iter_state_leaves(c.state)))
    with pytest.raises(InvalidBlock) as raised:
        load_state(entries, c.state.tip)
    assert raised.value.code == ErrorCode.MALFORMED_BLOCK

"""Run every golden state-transition vector of ``tests/vectors/stf/`` (format: the README there).

For each vector: build the genesis state from its config, then apply each block's canonical bytes
with ``apply_block`` in validation mode. A valid block must reproduce its header hash, roots, gas,
receipt statuses and order outcomes (and, where the builder left transactions out, rebuilding from
the candidates must give the same block bytes and rejections); an invalid block must raise
``InvalidBlock`` with its code and is applied to a copy, so the chain continues from the state
before it. Finally the readable ``post`` summary must match.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from strata.core.errors import InvalidBlock
from strata.modules import clearing, collateral, funding, liquidation
from strata.state.store import State
from strata.stf.block import decode_block
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block, build_block, copy_state
from tests.spec import generate_vectors
from tests.spec.vector_format import (
    compute_block_expect,
    decode_genesis,
    iter_vector_paths,
    summarize_state,
)

PATHS = iter_vector_paths()


def check_invariants(state: State) -> None:
    """Conservation (the insurance fund's account, funding in transit and recorded bad debt
    included), zero net open interest per market, and reservations that equal the sum of
    each owner's resting orders' reservations."""
    ledger = collateral.get_ledger(state)
    assert collateral.sum_balances(state) + clearing.get_fee_pool(state) + (
        funding.sum_in_transit(state) - liquidation.get_bad_debt(state)
    ) == (ledger.deposited_quote - ledger.withdrawn_quote)
    assert liquidation.get_bad_debt(state) >= 0
    assert clearing.get_fee_pool(state) >= 0
    net: dict[int, int] = {}
    for positions in state.tables["positions"].data.values():
        for p in positions:
            net[p.market_id] = net.get(p.market_id, 0) + p.size_lots
    assert all(size == 0 for size in net.values()), net
    held: dict[bytes, int] = {}
    for book in state.books.values():
        for order in book.iter_orders():
            if order.reserved_quote:
                held[order.owner] = held.get(order.owner, 0) + order.reserved_quote
    assert held == dict(state.tables["reserved"].data)


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    config = decode_genesis(vector["genesis"])
    params = config.params
    state, _ = make_genesis(config)
    assert len(vector["blocks"]) == len(vector["expect"])
    for height_hint, (block_hex, expect) in enumerate(
        zip(vector["blocks"], vector["expect"], strict=True)
    ):
        data = bytes.fromhex(block_hex)
        block = decode_block(data)
        assert msgspec.msgpack.encode(block) == data, f"block {height_hint}: not canonical bytes"
        if "invalid_block_code" in expect:
            with pytest.raises(InvalidBlock) as info:
                apply_block(copy_state(state), block, params)
            assert info.value.code == expect["invalid_block_code"], str(info.value)
            continue
        if "candidates" in expect:
            candidates = [bytes.fromhex(tx) for tx in expect["candidates"]]
            rebuilt, built = build_block(
                copy_state(state), block.header.timestamp_ms, block.system, candidates, params
            )
            assert msgspec.msgpack.encode(rebuilt) == data, f"block {height_hint}: rebuild differs"
            assert [[h.hex(), c] for h, c in built.rejected] == expect["rejected"]
        output = apply_block(state, block, params)
        got = compute_block_expect(output)
        assert got.pop("rejected") == []  # validation never leaves a transaction out
        for key, value in got.items():
            assert value == expect[key], f"block {height_hint}: {key}"
        check_invariants(state)
    assert summarize_state(state) == vector["post"]


def test_vector_count_and_coverage() -> None:
    """At least 60 vectors, one file per scenario."""
    assert len(PATHS) >= 60
    assert {p.stem for p in PATHS} == set(generate_vectors.SCENARIOS)


def test_generator_check_mode_finds_no_difference() -> None:
    """``generate_vectors.py --check``: the files on disk are exactly what the code produces."""
    assert generate_vectors.main(["--check"]) == 0

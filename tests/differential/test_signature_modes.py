"""The signature precompile is an optimization, never a different chain: the same blocks applied
with signers from worker processes, from threads, or computed inside ``apply_block`` give
byte-identical outputs and roots (issue: parallel execution, "every mode ... equals the serial
executor's").

The stream mixes wallet-signed transactions, agent-signed ones, forged signatures and bytes that
do not decode, so that every kind of signer result (an address, an agent key, ``None``) crosses
the process boundary.
"""

from __future__ import annotations

import random

import msgspec
import pytest

from strata.client.signing import agent_from_seed
from strata.exec.signatures import SignaturePool, joined
from strata.stf.block import BlockOutput
from strata.stf.genesis import make_genesis
from strata.stf.transactions import PlaceOrder, decode_transaction
from strata.stf.transition import apply_block, build_block, copy_state
from tests.helpers.chain import sign
from tests.storage.workload import (
    GENESIS,
    NAMES,
    PARAMS,
    WALLETS,
    block_time,
    block_transactions,
)

BLOCKS = 12


def _stream() -> list[list[bytes]]:
    """Per block: the workload's transactions, plus agent-signed orders, a forged signature and
    bytes that do not decode (the builder leaves the bad ones out)."""
    rng = random.Random(5)
    agent = agent_from_seed("modes-agent")
    consent = agent.approve_for(WALLETS[0].address, 2**62, PARAMS.chain_id)
    approve = sign(WALLETS[0], consent, block_time(1) + 40_000, PARAMS)
    stream = []
    for height in range(1, BLOCKS + 1):
        txs = block_transactions(height, count=20)
        nonce = block_time(height) + 50_000
        for k in range(4):
            order = PlaceOrder(1, rng.random() < 0.5, 100_000 + rng.randint(-5, 5), 1)
            txs.append(
                sign(WALLETS[0], order, nonce + k, PARAMS, agent=agent, account=WALLETS[0].address)
            )
        forged = bytearray(txs[0])
        forged[-5] ^= 0xFF  # inside the signature
        txs += [bytes(forged), b"\x93\x01\x02"]
        if height == 1:
            txs.insert(0, approve)
        stream.append(txs)
    return stream


def _built() -> list[tuple[object, BlockOutput]]:
    state, _ = make_genesis(GENESIS)
    out = []
    for height, txs in enumerate(_stream(), start=1):
        block, output = build_block(state, block_time(height), (), txs, PARAMS)
        out.append((block, output))
    return out


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_signers_from_the_precompile_give_the_same_bytes(processes: int) -> None:
    built = _built()
    assert len(NAMES) > 1 and any(o.rejected for _, o in built), "the stream must hold bad txs"
    included = [decode_transaction(tx) for block, _ in built for tx in block.transactions]  # type: ignore[attr-defined]
    assert any(tx.agent is not None for tx in included), "agent-signed orders must be included"
    serial, _ = make_genesis(GENESIS)
    pooled = copy_state(serial)
    pool = SignaturePool(processes, threads=2)
    try:
        for block, _ in built:
            want = apply_block(serial, block, PARAMS)  # type: ignore[arg-type]
            futures = pool.submit(PARAMS, block.transactions, 2)  # type: ignore[attr-defined]
            got = apply_block(pooled, block, PARAMS, joined(futures))  # type: ignore[arg-type]
            assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(want)
    finally:
        pool.close()

"""When the signature workers are behind, the node checks signatures on its own thread too.

Whichever thread checks a transaction, its signer is ``check_signature`` of it: a good
signature admits it, a forged one is refused (``WRONG_SIGNER``: it recovers another address),
and the results keep the order of the request.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from strata.client.api import _TraderCore
from strata.client.signing import wallet_from_seed
from strata.core.errors import ErrorCode
from strata.node.config import NodeConfig, devnet_genesis
from strata.node.node import SIGNATURE_INLINE_MAX, Node, now_ms
from strata.stf.transactions import decode_transaction, encode_transaction


def _node(data_dir: Path, inline_after: int | None) -> tuple[Node, _TraderCore]:
    config = NodeConfig(
        data_dir=str(data_dir),
        devnet=True,
        index_process=False,
        signature_processes=1,
        signature_inline_after=inline_after,
    )
    node = Node.open(config, devnet_genesis(now_ms() - 1_000))
    trader = _TraderCore(
        wallet_from_seed("devnet-1"),
        chain_id=node.params.chain_id,
        bridge_address=node.params.bridge_address,
        markets=node.markets,
    )
    return node, trader


def _forged(data: bytes) -> bytes:
    """The same transaction with a bit of its signature flipped: it recovers another address."""
    tx = decode_transaction(data)
    signature = tx.signature[:40] + bytes([tx.signature[40] ^ 1]) + tx.signature[41:]
    return encode_transaction(msgspec.structs.replace(tx, signature=signature))


def _batch(trader: _TraderCore, count: int) -> list[bytes]:
    """Resting sells at distinct prices; every third one forged."""
    datas = [
        trader.sign_action(trader.place_action("BTC-PERP", "sell", str(61_000 + i), "0.01"))
        for i in range(count)
    ]
    return [_forged(d) if i % 3 == 2 else d for i, d in enumerate(datas)]


def _outcomes(results: list[dict[str, object]]) -> list[object]:
    return [
        "ok" if "hash" in r else r["error"]["code"]  # type: ignore[index]
        for r in results
    ]


def test_signatures_checked_inline_give_the_workers_results(tmp_path: Path) -> None:
    count = SIGNATURE_INLINE_MAX + 16  # the first 16 still go to the worker
    expected = ["ok" if i % 3 != 2 else ErrorCode.WRONG_SIGNER for i in range(count)]

    queued, trader = _node(tmp_path / "queued", inline_after=None)
    try:
        results = asyncio.run(queued.submit(_batch(trader, count)))
        assert _outcomes(results) == expected
        assert queued.metrics.signatures_inline._value.get() == 0
    finally:
        queued.close()

    inline, trader = _node(tmp_path / "inline", inline_after=100)
    try:
        inline._signature_backlog = 101  # as if other requests' transactions were queued
        results = asyncio.run(inline.submit(_batch(trader, count)))
        assert _outcomes(results) == expected
        assert inline.metrics.signatures_inline._value.get() == SIGNATURE_INLINE_MAX
        assert inline._signature_backlog == 101  # what it queued came back
        assert len(inline.mempool) == len([e for e in expected if e == "ok"])
    finally:
        inline.close()


def test_no_inline_checks_while_the_workers_keep_up(tmp_path: Path) -> None:
    node, trader = _node(tmp_path / "node", inline_after=100)
    try:
        node._signature_backlog = 100
        assert node._inline_count(500) == 0
        node._signature_backlog = 101
        assert node._inline_count(500) == SIGNATURE_INLINE_MAX
        assert node._inline_count(3) == 3
        node.config = msgspec.structs.replace(node.config, signature_inline_after=None)
        assert node._inline_count(500) == 0
    finally:
        node._signature_backlog = 0
        node.close()

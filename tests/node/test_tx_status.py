"""A transaction's status is definitive even while the index process lags behind the chain.

``strata_getTransaction`` waits briefly for the index to reach the tip; if it does not (a busy
machine, an index process still starting after a restart), an included transaction must still
read ``included`` with its receipt, never ``unknown``, and ``strata_getOrder`` says to retry
instead of "no such order". Here the index process is really paused
(``SIGSTOP``) while a block commits.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from strata.client.errors import RpcCode, RpcError
from strata.client.signing import wallet_from_seed
from strata.node.node import now_ms
from strata.node.rpc import get_order, get_transaction
from strata.stf.transactions import compute_transaction_hash
from tests.node.test_node_risk import _Driver


def test_included_transaction_reads_included_while_the_index_is_paused(tmp_path: Path) -> None:
    driver = _Driver(tmp_path / "node", genesis_ms=now_ms() - 1_000)
    node = driver.node
    assert node.indexer is not None, "this test needs the index process (two cores)"
    maker = driver.trader(wallet_from_seed("devnet-1"))
    ask = maker.place_action("BTC-PERP", "sell", "61000", "0.01", client_id=7)
    (sent,) = asyncio.run(node.submit([maker.sign_action(ask)]))
    tx_hash = sent["hash"]
    which = {"account": "0x" + maker.account.hex(), "client_id": 7}
    assert driver.call(get_transaction, tx_hash)["status"] == "pending"
    pid = node.indexer._process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        driver.block()
        lagging = driver.call(get_transaction, tx_hash)  # waits for the index, then answers
        assert node.indexer.tip < node.store.tip.height  # the index really was behind
        # The order's record is in the index only: "retry", never "no such order".
        with pytest.raises(RpcError) as behind:
            driver.call(get_order, "BTC-PERP", which)
        assert behind.value.code == RpcCode.HEIGHT_UNAVAILABLE
    finally:
        os.kill(pid, signal.SIGCONT)
    assert lagging["status"] == "included", lagging
    assert lagging["height"] == node.store.tip.height
    assert lagging["receipt"]["status"] == 0
    assert asyncio.run(node.indexer.wait_for(node.store.tip.height))
    assert driver.call(get_transaction, tx_hash) == lagging  # the index, caught up, agrees
    assert driver.call(get_order, "BTC-PERP", which)["status"] == "open"
    # The next commit forgets what the index now holds: the node keeps only the blocks the
    # index lags behind by (this empty one), and the index answers for the rest.
    driver.block()
    assert tx_hash.removeprefix("0x") not in {h.hex() for h in node._unindexed}
    assert not node._unindexed
    assert driver.call(get_transaction, tx_hash) == lagging
    node.close()


def test_a_busy_refusal_is_not_the_transactions_status(tmp_path: Path) -> None:
    """``MEMPOOL_FULL`` says the node is busy, not that the transaction is bad: the same bytes
    read as unknown and are accepted once there is room. A refusal about the transaction itself
    (a bad signature) reads as rejected with its code."""
    driver = _Driver(tmp_path / "node", genesis_ms=now_ms() - 1_000)
    node = driver.node
    maker = driver.trader(wallet_from_seed("devnet-1"))
    first = maker.sign_action(maker.place_action("BTC-PERP", "sell", "61000", "0.01"))
    second = maker.sign_action(maker.place_action("BTC-PERP", "sell", "61010", "0.01"))
    node.mempool.capacity = node.params.gas.place  # room for one order
    accepted, busy = asyncio.run(node.submit([first, second]))
    assert "hash" in accepted
    assert busy["error"]["code"] == RpcCode.MEMPOOL_FULL
    busy_hash = "0x" + compute_transaction_hash(second).hex()
    assert driver.call(get_transaction, busy_hash)["status"] == "unknown"
    assert RpcCode.MEMPOOL_FULL.name in str(node.metrics.refused.collect())  # still counted

    driver.block()  # room again
    forged = bytearray(maker.sign_action(maker.place_action("BTC-PERP", "sell", "62000", "0.01")))
    forged[-2] ^= 0xFF  # the signature's last bytes
    (bad,) = asyncio.run(node.submit([bytes(forged)]))
    assert "error" in bad
    status = driver.call(get_transaction, "0x" + compute_transaction_hash(bytes(forged)).hex())
    assert status["status"] == "rejected" and status["error"]["code"] == bad["error"]["code"]

    (again,) = asyncio.run(node.submit([second]))  # the same bytes are accepted, then included
    assert again == {"hash": busy_hash}
    driver.block()
    assert driver.call(get_transaction, busy_hash)["status"] == "included"
    node.close()


def test_a_full_mempool_refuses_before_the_signature_check(tmp_path: Path) -> None:
    """Overloaded, the node refuses an order at once (``MEMPOOL_FULL``) instead of checking its
    signature only to refuse it after; a cancel still goes through, since it may displace an
    order."""
    driver = _Driver(tmp_path / "node", genesis_ms=now_ms() - 1_000)
    node = driver.node
    maker = driver.trader(wallet_from_seed("devnet-1"))
    resting = maker.place_action("BTC-PERP", "sell", "61000", "0.01", client_id=3)
    first = maker.sign_action(resting)
    second = maker.sign_action(maker.place_action("BTC-PERP", "sell", "61010", "0.01"))
    cancel = maker.sign_action(maker.cancel_action("BTC-PERP", client_id=3))
    checked: list[bytes] = []
    submit = node.signatures.submit

    def counted(params: object, datas: list[bytes], parts: int | None = None) -> object:
        checked.extend(datas)
        return submit(params, datas, parts)  # type: ignore[arg-type]

    node.signatures.submit = counted  # type: ignore[assignment,method-assign]
    node.mempool.capacity = node.params.gas.place  # room for one order
    (accepted,) = asyncio.run(node.submit([first]))
    assert "hash" in accepted and checked == [first]
    (busy,) = asyncio.run(node.submit([second]))
    assert busy["error"]["code"] == RpcCode.MEMPOOL_FULL
    assert checked == [first], "a transaction refused as busy was sent to the signature check"
    (cancelled,) = asyncio.run(node.submit([cancel]))
    assert "hash" in cancelled, cancelled  # it displaced the order
    assert checked == [first, cancel]
    node.close()

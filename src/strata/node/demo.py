"""``strata devnet --demo``: a market maker and a taker inside the node, so the books are alive.

Devnet only. The bots sign real transactions with devnet keys (``devnet-8`` quotes, ``devnet-9``
takes; both funded at genesis) and submit them through the same admission path as the API. The
devnet oracle walks the prices (``Node._system_inputs``); the maker re-quotes around them.
"""

from __future__ import annotations

import asyncio
import logging
import random

from strata.client.signing import Wallet, wallet_from_seed
from strata.core.signatures import compute_transaction_digest
from strata.modules import oracle
from strata.node.node import Node, now_ms
from strata.stf.transactions import (
    Action,
    BulkPlace,
    CancelAll,
    PlaceOrder,
    SignedTransaction,
    encode_action,
    encode_transaction,
)

log = logging.getLogger("strata.node")
_IOC = 1


class _Bot:
    def __init__(self, node: Node, seed: str) -> None:
        self.node = node
        self.wallet: Wallet = wallet_from_seed(seed)
        self.nonce = 0

    def sign(self, action: Action) -> bytes:
        self.nonce = max(now_ms(), self.nonce + 1)
        params = self.node.params
        digest = compute_transaction_digest(
            params.chain_id,
            params.bridge_address,
            self.wallet.address,
            self.nonce,
            encode_action(action),
        )
        signature = self.wallet.sign_digest(digest)
        return encode_transaction(
            SignedTransaction(self.wallet.address, self.nonce, action, None, signature)
        )


async def run_demo(node: Node, levels: int = 5) -> None:
    """Quote ``levels`` bids and asks per market every other block, and send a small IOC order
    every block, until cancelled."""
    maker = _Bot(node, "devnet-8")
    taker = _Bot(node, "devnet-9")
    rng = random.Random(1)
    period = node.config.block_time_ms / 1000
    tick = 0
    while True:
        await asyncio.sleep(period)
        tick += 1
        state = node.store.state
        txs: list[bytes] = []
        for market_id, info in sorted(node.markets.items()):
            mark = oracle.get_mark_price(state, market_id)
            if mark is None:
                continue
            size = max(info.min_size_lots, 10)
            spread = max(1, mark // 5000)
            if tick % 2 == 1:
                orders = [
                    PlaceOrder(market_id, is_buy, mark - sign * spread * (i + 1), size * (i + 1))
                    for i in range(levels)
                    for is_buy, sign in ((True, 1), (False, -1))
                ]
                txs.append(maker.sign(CancelAll(market_id)))
                txs.append(maker.sign(BulkPlace(tuple(orders))))
            is_buy = rng.random() < 0.5
            worst = mark + 3 * spread if is_buy else max(1, mark - 3 * spread)
            txs.append(taker.sign(PlaceOrder(market_id, is_buy, worst, size, _IOC)))
        results = await node.submit(txs)
        for result in results:
            if "error" in result:
                log.debug("demo tx refused", extra={"fields": result["error"]})

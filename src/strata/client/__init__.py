"""Ring 2 client helpers: key handling and signing for wallets, agents, tools and tests.

The public SDK of a Strata node (docs/api.md)::

    from strata.client import Client, Trader, wallet_from_seed

    client = Client("http://127.0.0.1:8545")
    trader = Trader(client, wallet_from_seed("alice"))       # devnet key; else Wallet(key)
    client.faucet(trader.account, "10000")                   # devnet only: 10000 USDC
    trader.set_margin_mode("ETH-PERP", True, wait=True)       # isolated margin (docs/api.md)
    trader.move_isolated_margin("ETH-PERP", "250")           # once it holds a position there
    tx_hash = trader.place("BTC-PERP", "buy", "50010.5", "0.25", tif="post_only", client_id=7)
    print(client.wait_for_transaction(tx_hash)["status"])    # "included"
    print(client.order("BTC-PERP", account=trader.account, client_id=7))
    print(client.book("BTC-PERP", depth=5))

    async with FeedClient("ws://127.0.0.1:8545/ws") as feeds:   # in a coroutine
        sub = feeds.subscribe("book", market="BTC-PERP", depth=10)
        async for message in sub:
            print(sub.book.best_bid(), sub.book.best_ask())

Prices, sizes and USDC amounts are decimal strings, converted exactly by the market's tick and
lot (an off-grid value raises ``RpcError`` with ``name == "OFF_GRID"``); errors from the node are
:class:`RpcError` with the API's ``code`` and ``name``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strata.client.api import (
        AsyncClient,
        AsyncTrader,
        CancelSpec,
        Client,
        ModifySpec,
        OrderSpec,
        Trader,
        TriggerSpec,
    )
    from strata.client.errors import RpcCode, RpcError
    from strata.client.feeds import FeedClient, L2Book, book_checksum
    from strata.client.markets import MarketInfo
    from strata.client.signing import AgentKey, Wallet, agent_from_seed, wallet_from_seed

# Loaded on first use, so that ``import strata.client.signing`` (tests, the node) does not pull
# in the HTTP libraries.
_EXPORTS = {
    "AsyncClient": "api",
    "AsyncTrader": "api",
    "CancelSpec": "api",
    "Client": "api",
    "ModifySpec": "api",
    "OrderSpec": "api",
    "Trader": "api",
    "TriggerSpec": "api",
    "RpcCode": "errors",
    "RpcError": "errors",
    "FeedClient": "feeds",
    "L2Book": "feeds",
    "book_checksum": "feeds",
    "MarketInfo": "markets",
    "AgentKey": "signing",
    "Wallet": "signing",
    "agent_from_seed": "signing",
    "wallet_from_seed": "signing",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strata.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"strata.client.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "AgentKey",
    "AsyncClient",
    "AsyncTrader",
    "CancelSpec",
    "Client",
    "FeedClient",
    "L2Book",
    "MarketInfo",
    "ModifySpec",
    "OrderSpec",
    "RpcCode",
    "RpcError",
    "Trader",
    "TriggerSpec",
    "Wallet",
    "agent_from_seed",
    "book_checksum",
    "wallet_from_seed",
]

"""End-to-end: isolated margin over the real HTTP and WebSocket API of a ``strata devnet`` process
(its own node, 100 ms blocks, no bots), through the public SDK.

The story: a fresh account gets 10,000 USDC from the faucet and switches BTC-PERP to isolated
margin; it buys 0.1 BTC at 60,000 from a funded maker, so settlement tops the position's own
cash up to the initial requirement (600 USDC, 10%) from the balance. It moves 400 USDC in and
300 out; a second move of 200 out is more than the position frees (its equity would fall under
its initial requirement), so the transaction is included with ``INSUFFICIENT_FREE_COLLATERAL``
and changes nothing. ``strata_getAccount`` shows the position's own cash, equity, requirements
and ratio apart from the cross-margin figures, and the account feed shows the mode change and
both moves. (A plain devnet's marks do not move: liquidating an isolated position alone is
shown through a node driven block by block, ``tests/node/test_isolated_api.py``.)
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from strata.client import AsyncClient, AsyncTrader, RpcError, wallet_from_seed
from strata.core.errors import ErrorCode
from tests.e2e.test_api_e2e import WsRpc, with_ws
from tests.helpers.node_process import NodeProcess

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data_dir: Path = tmp_path_factory.mktemp("isolated") / "node"
    with NodeProcess(data_dir, block_time_ms=100) as process:
        yield process


def _btc(account: dict[str, Any]) -> dict[str, Any]:
    (position,) = [p for p in account["positions"] if p["market"] == "BTC-PERP"]
    return position


async def _until_events(
    ws: WsRpc, sub: str, kinds: list[str], timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """The account feed's events until those of ``kinds`` have come, in that order."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while [e["type"] for e in events if e["type"] in kinds] != kinds:
        message = await ws.next(sub, timeout=max(0.1, deadline - time.monotonic()))
        events.extend(message.get("events", []))
    return events


def test_isolated_margin_over_the_api(node: NodeProcess) -> None:
    wallet = wallet_from_seed("isolated-e2e")
    trader_hex = "0x" + wallet.address.hex()

    async def scenario(ws: WsRpc) -> None:
        async with AsyncClient(node.url) as client:
            trader = AsyncTrader(client, wallet)
            maker = AsyncTrader(client, wallet_from_seed("devnet-1"))
            feed = await ws.subscribe("account", {"address": trader_hex})
            await client.faucet(trader_hex, "10000")
            deadline = time.monotonic() + TIMEOUT
            while (await client.account(trader_hex))["collateral"] != "10000":
                assert time.monotonic() < deadline, "the faucet deposit never landed"
                await asyncio.sleep(0.05)

            mode = await trader.set_margin_mode("BTC-PERP", True, wait=True)
            assert mode["receipt"]["status"] == 0
            account = await client.account(trader_hex)
            assert account["isolated_markets"] == ["BTC-PERP"]

            await maker.place("BTC-PERP", "sell", "60000", "0.1", wait=True)
            bought = await trader.place("BTC-PERP", "buy", "60000", "0.1", tif="ioc", wait=True)
            assert bought["receipt"]["status"] == 0
            account = await client.account(trader_hex)
            btc = _btc(account)
            assert (btc["size"], btc["isolated"]) == ("0.1", True)
            assert btc["isolated_margin"] == {
                "cash": "-5400",
                "equity": "600",
                "free_collateral": "0",
                "withdrawable": "0",
                "initial_margin": "600",
                "maintenance_margin": "300",
                "margin_ratio": "2",
                "liquidatable": False,
            }
            # The cross account: no cross position, so its equity is its balance (10,000 less
            # the 600 of isolated margin and the 2.4 taker fee) and it needs no margin.
            assert account["collateral"] == account["equity"] == "9397.6"
            assert account["withdrawable"] == "9397.6"
            assert (account["maintenance_margin"], account["margin_ratio"]) == ("0", None)

            moved_in = await trader.move_isolated_margin("BTC-PERP", "400", wait=True)
            moved_out = await trader.move_isolated_margin("BTC-PERP", Decimal("-300"), wait=True)
            refused = await trader.move_isolated_margin("BTC-PERP", "-200", wait=True)
            assert moved_in["receipt"]["status"] == moved_out["receipt"]["status"] == 0
            assert refused["status"] == "included"
            assert refused["receipt"]["status"] == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
            assert not any(
                e["type"] == "isolated_margin_moved" for e in refused["receipt"]["events"]
            )
            account = await client.account(trader_hex)
            figures = _btc(account)["isolated_margin"]
            assert (figures["cash"], figures["equity"]) == ("-5300", "700")
            assert (figures["withdrawable"], figures["margin_ratio"]) == ("100", "2.333333")
            assert account["collateral"] == account["equity"] == "9297.6"

            # Refused before anything is sent: a move of zero, a move off the USDC grid.
            for amount, name in (("0", "INVALID_PARAMS"), ("0.0000001", "OFF_GRID")):
                with pytest.raises(RpcError) as error:
                    await trader.move_isolated_margin("BTC-PERP", amount)
                assert error.value.name == name

            # --- the account feed: the mode, then the two moves (the refused one is not) ---
            events = await _until_events(
                ws,
                feed,
                ["margin_mode_changed", "isolated_margin_moved", "isolated_margin_moved"],
            )
            (changed,) = [e for e in events if e["type"] == "margin_mode_changed"]
            assert (changed["account"], changed["market"], changed["isolated"]) == (
                trader_hex,
                "BTC-PERP",
                True,
            )
            moves = [e for e in events if e["type"] == "isolated_margin_moved"]
            assert [(m["amount"], m["cash"]) for m in moves] == [
                ("400", "-5000"),
                ("-300", "-5300"),
            ]
            position_sizes = [e["size"] for e in events if e["type"] == "position_changed"]
            assert position_sizes == ["0.1"]

            # The mode changes back only without a position.
            back = await trader.set_margin_mode("BTC-PERP", False, wait=True)
            assert back["receipt"]["status"] == ErrorCode.POSITION_OPEN

    asyncio.run(with_ws(node.ws_url, scenario))

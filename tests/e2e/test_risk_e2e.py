"""End-to-end: a fired trigger, a good-til-time expiry and a dead-man switch, seen over the real
HTTP and WebSocket API of a ``strata devnet`` process (its own node, 100 ms blocks, no bots).

A plain devnet has no oracle feeder (the devnet oracle signs prices only with ``--demo``, as a
random walk) and a market on its genesis price keeps its mark (``modules/oracle``): nothing a test
sends can move prices, so no position can fall under maintenance here. The liquidation story
(book, backstop, the fund's unwinding, a restart) is driven through the ``Node`` class with
signed oracle prices in ``tests/node/test_node_risk.py``; this test takes what a plain devnet
allows: a take-profit whose condition already holds at the mark fires in the next block.

The story: the trader buys 0.15 BTC at 60,000 (the mark) and sets a take-profit, a sell
triggered at a mark of 59,000 or above; the quoter bids 59,800. The trigger fires in the next
block's prologue and its order takes the bid in the block's matching, before any transaction:
no transaction placed that order. The quoter's good-til-time ask expires in a prologue, and the
trader's dead-man switch cancels its resting bid. Account feeds, trades feed, order status,
receipts and the L2 book (checksum at every block) all show it.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from strata.client import AsyncClient, AsyncTrader, OrderSpec, wallet_from_seed
from strata.client.signing import Wallet
from tests.e2e.test_api_e2e import LocalBook, WsRpc, read_book_until, with_ws
from tests.helpers.node_process import NodeProcess

TIMEOUT = 30.0
FUND_HEX = "0x" + "ff" * 20


def _hex(wallet: Wallet) -> str:
    return "0x" + wallet.address.hex()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data_dir: Path = tmp_path_factory.mktemp("risk") / "node"
    with NodeProcess(data_dir, block_time_ms=100) as process:
        yield process


async def _until(
    ws: WsRpc, sub: str, done: Any, seen: list[dict[str, Any]], timeout: float = TIMEOUT
) -> None:
    """Read ``sub``'s messages into ``seen`` until ``done(seen)``."""
    deadline = time.monotonic() + timeout
    while not done(seen):
        seen.append(await ws.next(sub, timeout=max(0.1, deadline - time.monotonic())))


def _events(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for m in messages for e in m.get("events", []) if e["type"] == kind]


def test_trigger_expiry_and_dead_man_switch_over_the_api(node: NodeProcess) -> None:
    trader_wallet = wallet_from_seed("devnet-7")
    maker_wallet = wallet_from_seed("devnet-1")
    quoter_wallet = wallet_from_seed("devnet-8")
    trader_hex, quoter_hex = _hex(trader_wallet), _hex(quoter_wallet)

    async def scenario(ws: WsRpc) -> None:
        async with AsyncClient(node.url) as client:
            trader = AsyncTrader(client, trader_wallet)
            maker = AsyncTrader(client, maker_wallet)
            quoter = AsyncTrader(client, quoter_wallet)
            risk = await client.risk()
            assert risk["insurance_fund"]["address"] == FUND_HEX
            assert risk["insurance_fund"]["cash"] == "1000000"  # the devnet's capital
            assert risk["bad_debt"] == "0" and risk["insurance_fund"]["positions"] == []
            (btc,) = [m for m in await client.markets() if m["symbol"] == "BTC-PERP"]
            assert btc["margin_schedule"][0] == {
                "from_notional": "0",
                "initial_margin_ppm": 100_000,
                "maintenance_margin_ppm": 50_000,
            }
            assert btc["max_open_interest"] is None

            book_sub = await ws.subscribe("book", {"market": "BTC-PERP"})
            trades_sub = await ws.subscribe("trades", {"market": "BTC-PERP"})
            trader_sub = await ws.subscribe("account", {"address": trader_hex})
            quoter_sub = await ws.subscribe("account", {"address": quoter_hex})

            await maker.place("BTC-PERP", "sell", "60000", "0.15", wait=True)
            await trader.place("BTC-PERP", "buy", "60000", "0.15", tif="ioc", wait=True)
            account = await client.account(trader_hex)
            assert account["positions"][0]["size"] == "0.15"
            assert account["liquidatable"] is False and Decimal(account["margin_ratio"]) > 1
            expires_at = int(time.time() * 1000) + 1_500
            quoted = await quoter.bulk_place(
                [
                    OrderSpec("BTC-PERP", "buy", "59800", "0.2", tif="post_only"),
                    OrderSpec("BTC-PERP", "sell", "65000", "0.01", expires_at_ms=expires_at),
                ],
                wait=True,
            )
            ask_id = [
                e["order_id"]
                for e in quoted["receipt"]["events"]
                if e["type"] == "order_update" and e["status"] == "open"
            ][1]
            placed = await trader.place("BTC-PERP", "buy", "50000", "0.001", wait=True)
            (bid,) = [e for e in placed["receipt"]["events"] if e["type"] == "order_update"]
            await trader.take_profit("BTC-PERP", "sell", "59000", "0.15", "59500")
            switch_at = int(time.time() * 1000) + 5_500
            await trader.schedule_cancel(switch_at, wait=True)

            # --- the trader's feed: trigger placed, fired (prologue), filled (matching) ---
            seen: list[dict[str, Any]] = []

            def sold(s: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [
                    f
                    for m in s
                    for f in m["fills"]
                    if f["taker"] == trader_hex and f["side"] == "sell"
                ]

            await _until(ws, trader_sub, lambda s: bool(sold(s)), seen)
            updates = _events(seen, "trigger_update")
            assert [e["status"] for e in updates] == ["placed", "fired"]
            trigger_id = updates[0]["trigger_id"]
            assert updates[1]["trigger_id"] == trigger_id and updates[1]["mark_price"] == "60000"
            (fill,) = sold(seen)
            assert (fill["price"], fill["size"], fill["maker"]) == ("59800", "0.15", quoter_hex)
            (message,) = [m for m in seen if fill in m["fills"]]
            assert [e["size"] for e in _events([message], "position_changed")] == ["0"]
            assert [(o["order_id"], o["status"]) for o in message["orders"]] == [
                (fill["taker_order_id"], "filled")
            ]
            status = await client.order("BTC-PERP", order_id=fill["taker_order_id"])
            assert (status["origin"], status["trigger_id"], status["status"]) == (
                "trigger",
                trigger_id,
                "filled",
            )
            assert (status["side"], status["price"], status["filled"]) == ("sell", "59500", "0.15")
            assert status["account"] == trader_hex
            fired_at = message["seq"]
            receipts = await client.receipts(fired_at)
            assert any(
                e["type"] == "trigger_update" and e["status"] == "fired"
                for e in receipts["block_events"]["prologue"]
            )
            matching = receipts["block_events"]["matching"]
            assert [e["type"] for e in matching if e["type"] == "fill"] == ["fill"]
            assert not any(
                e.get("taker") == trader_hex for r in receipts["receipts"] for e in r["events"]
            )
            account = await client.account(trader_hex)
            assert account["triggers"] == [] and account["positions"] == []
            assert account["cancel_at_ms"] == switch_at

            # --- the trades feed has the trigger's trade ---
            trades: list[dict[str, Any]] = []
            await _until(ws, trades_sub, lambda s: bool(s) and s[-1]["seq"] >= fired_at, trades)
            traded = [(t["taker"], t["price"], t["size"]) for m in trades for t in m["trades"]]
            assert (trader_hex, "59800", "0.15") in traded
            recent = await client.trades("BTC-PERP", 10)
            assert recent[0]["taker_order_id"] == fill["taker_order_id"]

            # --- the quoter's ask expires in a prologue; its feed and the index say so ---
            quoter_seen: list[dict[str, Any]] = []
            await _until(
                ws,
                quoter_sub,
                lambda s: any(o["reason"] == "expired" for m in s for o in m["orders"]),
                quoter_seen,
            )
            (expired,) = [o for m in quoter_seen for o in m["orders"] if o["reason"] == "expired"]
            assert expired["order_id"] == ask_id
            status = await client.order("BTC-PERP", order_id=ask_id)
            assert (status["status"], status["reason"]) == ("canceled", "expired")
            assert (status["side"], status["price"]) == ("sell", "65000")

            # --- the dead-man switch cancels the trader's bid ---
            await _until(
                ws, trader_sub, lambda s: bool(_events(s, "scheduled_cancel_fired")), seen, 15
            )
            (switch,) = _events(seen, "scheduled_cancel_fired")
            assert (switch["at_ms"], switch["orders_canceled"]) == (switch_at, 1)
            updates = [o for m in seen for o in m["orders"] if o["order_id"] == bid["order_id"]]
            assert [(o["status"], o["reason"]) for o in updates] == [
                ("open", "none"),
                ("canceled", "scheduled_cancel"),
            ]
            status = await client.order("BTC-PERP", order_id=bid["order_id"])
            assert (status["status"], status["reason"]) == ("canceled", "scheduled_cancel")
            account = await client.account(trader_hex)
            assert account["open_orders"] == [] and account["cancel_at_ms"] is None

            # --- the L2 book: every delta's checksum holds, and it ends as strata_getBook ---
            book = LocalBook()
            target = await client.book("BTC-PERP", 50)
            await read_book_until(ws, book_sub, book, target["seq"])
            assert book.side("bids") == target["bids"] and book.side("asks") == target["asks"]
            assert book.seqs == list(range(book.seqs[0], book.seqs[-1] + 1))  # no gap
            assert book.side("bids") == [["59800", "0.05"]] and book.side("asks") == []

    asyncio.run(with_ws(node.ws_url, scenario))

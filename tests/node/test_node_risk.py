"""A node driven block by block (no process, no HTTP) through a liquidation, a fired trigger, the
insurance fund's backstop and unwinding, and a good-til-time expiry: the order index, the feeds
(trades, account, L2 book with its checksum), the API handlers and a restart's rebuilt rings
all show what the block phases did.

The devnet oracle key (anyone can derive it) signs the prices, as ``strata devnet --demo`` does.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from strata.client.api import TriggerSpec, _TraderCore
from strata.client.feeds import L2Book
from strata.client.signing import Wallet, wallet_from_seed
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.node.config import NodeConfig, devnet_genesis
from strata.node.feeds import BOOK_DEPTH, Subscriber
from strata.node.node import Node, now_ms
from strata.node.rpc import Context, get_account, get_markets, get_order, get_receipts, get_risk
from strata.stf.transactions import Action, SystemInput

BTC = 1
FUND_HEX = "0x" + INSURANCE_FUND_ACCOUNT.hex()


class _Collect(Subscriber):
    def __init__(self, kind: str, key: Any) -> None:
        super().__init__(f"{kind}-{key!r}", kind, key)
        self.messages: list[dict[str, Any]] = []

    def push(self, text: str) -> None:
        self.messages.append(json.loads(text))


class _Driver:
    """A node with signed oracle prices and a book checked after every block."""

    def __init__(self, data_dir: Path, genesis_ms: int | None = None) -> None:
        config = NodeConfig(data_dir=str(data_dir), devnet=True, block_time_ms=100)
        genesis = None if genesis_ms is None else devnet_genesis(genesis_ms)
        self.node = node = Node.open(config, genesis)
        self.prices: dict[int, int] = {}
        plain = node._system_inputs

        def with_prices(timestamp_ms: int) -> list[SystemInput]:
            system = plain(timestamp_ms)
            system.extend(node._sign_price(m, p, timestamp_ms) for m, p in self.prices.items())
            return system

        node._system_inputs = with_prices  # type: ignore[method-assign]
        self.ctx = Context(node, "127.0.0.1")
        self.book = _Collect("book", BTC)
        node.feeds.add_subscriber(self.book)
        self.l2 = L2Book(BOOK_DEPTH)
        self.l2.apply(node.feeds.book_snapshot(BTC))

    def trader(self, wallet: Wallet) -> _TraderCore:
        params = self.node.params
        return _TraderCore(
            wallet,
            chain_id=params.chain_id,
            bridge_address=params.bridge_address,
            markets=self.node.markets,
        )

    def submit(self, trader: _TraderCore, action: Action) -> None:
        (result,) = asyncio.run(self.node.submit([trader.sign_action(action)]))
        assert "hash" in result, result

    def block(self) -> None:
        self.node.produce_block()
        feeds, state = self.node.feeds, self.node.store.state
        # The feed's book is the state's book, and the deltas rebuild it with the right checksum.
        assert feeds._books[BTC] == feeds.book_view(state, BTC, BOOK_DEPTH)
        for message in self.book.messages:
            self.l2.apply(message)
        self.book.messages.clear()

    def call(self, handler: Any, *params: Any) -> Any:
        return asyncio.run(handler(self.ctx, list(params)))


def test_liquidation_trigger_backstop_and_expiry_reach_index_feeds_and_api(
    tmp_path: Path,
) -> None:
    driver = _Driver(tmp_path / "node", genesis_ms=now_ms() - 1_000)
    node = driver.node
    victim_wallet = wallet_from_seed("risk-victim")
    victim = driver.trader(victim_wallet)
    maker = driver.trader(wallet_from_seed("devnet-1"))
    bidder = driver.trader(wallet_from_seed("devnet-2"))
    buyer = driver.trader(wallet_from_seed("devnet-3"))
    expiring = driver.trader(wallet_from_seed("devnet-4"))
    seller = driver.trader(wallet_from_seed("devnet-5"))
    victim_hex = "0x" + victim_wallet.address.hex()
    collected = {
        "victim": _Collect("account", victim_wallet.address),
        "maker": _Collect("account", maker.account),
        "fund": _Collect("account", INSURANCE_FUND_ACCOUNT),
        "trades": _Collect("trades", BTC),
    }
    for sub in collected.values():
        node.feeds.add_subscriber(sub)

    risk = driver.call(get_risk)
    assert risk["insurance_fund"]["cash"] == "1000000"  # the devnet's capital
    assert risk["bad_debt"] == "0" and risk["insurance_fund"]["positions"] == []

    # Block 1: the victim's collateral, the maker's ask, a good-til-time ask far away.
    node.faucet(victim_wallet.address, 1_000_000_000)
    driver.submit(maker, maker.place_action("BTC-PERP", "sell", "60000", "0.15"))
    expires_at = now_ms() + 1_500
    driver.submit(
        expiring,
        expiring.place_action("BTC-PERP", "sell", "70000", "0.01", expires_at_ms=expires_at),
    )
    driver.block()
    # Block 2: the victim goes long 0.15 BTC at 60,000 with 1,000 USDC (9x); a bid rests below.
    driver.submit(victim, victim.place_action("BTC-PERP", "buy", "60000", "0.15", tif="ioc"))
    driver.submit(victim, victim.place_action("BTC-PERP", "buy", "40000", "0.001"))
    driver.submit(bidder, bidder.place_action("BTC-PERP", "buy", "53500", "0.05"))
    driver.block()
    account = driver.call(get_account, victim_hex)
    assert account["positions"][0]["size"] == "0.15" and account["liquidatable"] is False
    assert account["margin_ratio"] is not None and float(account["margin_ratio"]) > 1
    # Block 3 on: the oracle falls towards 54,000 (at most 5% a block). The maker, short, takes
    # profit with a trigger; an ask waits for it.
    driver.prices[BTC] = 540_000
    take_profit = maker.stop_trigger("take_profit", "BTC-PERP", "buy", "55000", "0.15", "56000")
    assert take_profit == TriggerSpec("BTC-PERP", "buy", "55000", False, "56000", "0.15", "ioc")
    driver.submit(maker, maker.place_trigger_action(take_profit))
    driver.submit(seller, seller.place_action("BTC-PERP", "sell", "55500", "0.15"))
    driver.submit(maker, maker.schedule_cancel_action(now_ms() + 60_000))
    driver.block()
    account = driver.call(get_account, "0x" + maker.account.hex())
    assert [t["trigger_price"] for t in account["triggers"]] == ["55000"]
    assert account["cancel_at_ms"] is not None
    for _ in range(5):
        driver.block()
        if driver.call(get_risk)["insurance_fund"]["positions"]:
            break
    # The fund took over what the book could not absorb; a bid comes for it to unwind into.
    driver.submit(buyer, buyer.place_action("BTC-PERP", "buy", "54300", "0.1"))
    driver.block()
    time.sleep(max(0.0, (expires_at - now_ms()) / 1000) + 0.05)
    driver.block()  # the expiry alone changes the book: the checksum must follow

    # --- the victim: liquidated, seen on its account feed ---
    liquidation = [m for m in collected["victim"].messages if m["events"]]
    events = [e for m in liquidation for e in m["events"]]
    liquidated = next(e for e in events if e["type"] == "position_liquidated")
    assert any(e["type"] == "account_liquidated" for e in events)
    assert liquidated["book_size"] == "0.05" and liquidated["backstop_size"] == "0.1"
    message = next(m for m in liquidation if any(e is liquidated for e in m["events"]))
    assert [f["price"] for f in message["fills"]] == ["53500"]
    orders = {o["order_id"]: o for o in message["orders"]}
    assert sorted(o["reason"] for o in orders.values()) == ["ioc_remainder", "liquidated"]
    account = driver.call(get_account, victim_hex)
    assert account["positions"] == [] and account["open_orders"] == []

    # --- the order index: the canceled bid, the liquidation order with its limit ---
    for order_id, update in orders.items():
        status = driver.call(get_order, "BTC-PERP", {"order_id": order_id})
        assert status["status"] == "canceled" and status["account"] == victim_hex
        if update["reason"] == "liquidated":
            assert (status["reason"], status["price"], status["side"]) == (
                "liquidated",
                "40000",
                "buy",
            )
            assert status["origin"] == "transaction"
        else:
            assert (status["origin"], status["side"]) == ("liquidation", "sell")
            assert status["price"] == liquidated["bankruptcy_price"]
            assert status["filled"] == "0.05"

    # --- the trigger fired: its order filled, on the maker's feed and in the index ---
    maker_messages = collected["maker"].messages
    updates = [e for m in maker_messages for e in m["events"] if e["type"] == "trigger_update"]
    assert [e["status"] for e in updates] == ["placed", "fired"]
    fired = updates[1:]
    trigger_fills = [f for m in maker_messages for f in m["fills"] if f["price"] == "55500"]
    assert len(trigger_fills) == 1 and trigger_fills[0]["side"] == "buy"
    status = driver.call(get_order, "BTC-PERP", {"order_id": trigger_fills[0]["taker_order_id"]})
    assert (status["origin"], status["trigger_id"], status["status"]) == (
        "trigger",
        fired[0]["trigger_id"],
        "filled",
    )
    assert (status["side"], status["price"], status["size"]) == ("buy", "56000", "0.15")

    # --- the fund: backstop, then unwinding into the bid ---
    fund_fills = [f for m in collected["fund"].messages for f in m["fills"]]
    assert [(f["taker"], f["price"], f["size"]) for f in fund_fills] == [(FUND_HEX, "54300", "0.1")]
    unwind = driver.call(get_order, "BTC-PERP", {"order_id": fund_fills[0]["taker_order_id"]})
    assert (unwind["origin"], unwind["side"], unwind["status"]) == (
        "insurance_fund",
        "sell",
        "filled",
    )
    risk = driver.call(get_risk)
    assert risk["insurance_fund"]["positions"] == []
    assert float(risk["insurance_fund"]["cash"]) > 1_000_000  # the liquidation fee
    btc = next(m for m in risk["markets"] if m["market"] == "BTC-PERP")
    assert btc["max_open_interest"] is None and btc["open_interest"] == "0.15"

    # --- trades: the trigger's, the liquidation's and the fund's fills are trades ---
    traded = [(t["taker"], t["price"]) for m in collected["trades"].messages for t in m["trades"]]
    assert ("0x" + maker.account.hex(), "55500") in traded
    assert (victim_hex, "53500") in traded and (FUND_HEX, "54300") in traded

    # --- the expired ask: canceled in the prologue of the last block ---
    height = node.store.tip.height
    receipts = driver.call(get_receipts, height)
    assert set(receipts["block_events"]) == {"prologue", "matching", "settlement", "risk"}
    expired = [e for e in receipts["block_events"]["prologue"] if e.get("reason") == "expired"]
    assert len(expired) == 1 and expired[0]["account"] == "0x" + expiring.account.hex()
    status = driver.call(get_order, "BTC-PERP", {"order_id": expired[0]["order_id"]})
    assert (status["status"], status["reason"], status["price"]) == ("canceled", "expired", "70000")
    assert driver.l2.asks == [] or all(level[0] != "70000" for level in driver.l2.asks)

    markets = driver.call(get_markets)
    assert markets[0]["margin_schedule"][0]["maintenance_margin_ppm"] == 50_000

    # --- a restart rebuilds the trade and account rings from the blocks' own events ---
    node.stop()
    node.close()
    again = _Driver(tmp_path / "node")
    try:
        resumed = again.node.feeds.resume("trades", BTC, 0)
        assert resumed is not None
        rebuilt = [(t["taker"], t["price"]) for m in map(json.loads, resumed) for t in m["trades"]]
        assert rebuilt == traded
        fund = again.node.feeds.resume("account", INSURANCE_FUND_ACCOUNT, 0)
        assert fund is not None
        assert [f for m in map(json.loads, fund) for f in m["fills"]] == fund_fills
        again.block()
    finally:
        again.node.close()

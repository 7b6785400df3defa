"""Isolated margin through a node driven block by block (no process, no HTTP): what
``strata_getAccount`` shows of an isolated position (its own cash, equity, requirements and
ratio) beside the cross-margin account (which counts neither the position nor its cash), what
the account feed shows, and an isolated position liquidated alone while the cross account
keeps its own position.

Numbers (devnet BTC-PERP: 10% initial, 5% maintenance; taker fee 0.04%): 0.1 BTC bought at
60,000 isolated costs 6,000 from the position's cash, which settlement tops up from the balance
to the initial requirement, 600: cash -5,400, equity 600, maintenance 300, ratio 2.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from strata.client.signing import wallet_from_seed
from strata.core.errors import ErrorCode
from strata.modules import collateral
from strata.node.node import now_ms
from strata.node.rpc import get_account, get_transaction
from strata.stf.transition import get_account_risk, get_isolated_risk
from tests.node.test_node_risk import _Collect, _Driver

BTC, ETH = 1, 2
USDC = 1_000_000


def _position(account: dict[str, Any], market: str) -> dict[str, Any]:
    (position,) = [p for p in account["positions"] if p["market"] == market]
    return position


def _events(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for m in messages for e in m["events"] if e["type"] == kind]


def test_isolated_position_in_account_view_and_feed(tmp_path: Path) -> None:
    driver = _Driver(tmp_path / "node", genesis_ms=now_ms() - 1_000)
    node = driver.node
    wallet = wallet_from_seed("isolated-trader")
    trader = driver.trader(wallet)
    maker = driver.trader(wallet_from_seed("devnet-1"))
    bidder = driver.trader(wallet_from_seed("devnet-2"))
    address = wallet.address
    trader_hex = "0x" + address.hex()
    feed = _Collect("account", address)
    node.feeds.add_subscriber(feed)

    def submit_and_block(*actions: Any) -> list[str]:
        """Send the trader's actions, make a block; the transactions' hashes."""
        hashes = []
        for action in actions:
            (result,) = asyncio.run(node.submit([trader.sign_action(action)]))
            assert "hash" in result, result
            hashes.append(result["hash"])
        driver.block()
        return hashes

    # Block 1: 10,000 USDC for the trader; the maker's asks. Block 2: BTC-PERP isolated.
    node.faucet(address, 10_000 * USDC)
    driver.submit(maker, maker.place_action("BTC-PERP", "sell", "60000", "0.1"))
    driver.submit(maker, maker.place_action("ETH-PERP", "sell", "3000", "1"))
    driver.block()
    submit_and_block(trader.set_margin_mode_action("BTC-PERP", True))
    account = driver.call(get_account, trader_hex)
    assert account["isolated_markets"] == ["BTC-PERP"] and account["positions"] == []

    # Block 3: long 0.1 BTC isolated, long 1 ETH cross.
    submit_and_block(
        trader.place_action("BTC-PERP", "buy", "60000", "0.1", tif="ioc"),
        trader.place_action("ETH-PERP", "buy", "3000", "1", tif="ioc"),
    )
    account = driver.call(get_account, trader_hex)
    btc, eth = _position(account, "BTC-PERP"), _position(account, "ETH-PERP")
    assert (btc["size"], btc["isolated"], eth["isolated"]) == ("0.1", True, False)
    assert eth["isolated_margin"] is None
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
    # The cross account: 10,000 less the isolated margin (600), both taker fees (2.4 + 1.2) and
    # the ETH notional; its equity and requirements are the ETH position's only.
    assert account["collateral"] == "6396.4"
    assert account["equity"] == "9396.4"
    assert (account["initial_margin"], account["maintenance_margin"]) == ("150", "90")
    assert account["free_collateral"] == "9246.4" and account["withdrawable"] == "9246.4"
    assert account["margin_ratio"] == "104.404444" and account["liquidatable"] is False
    state = node.store.state
    cross = get_account_risk(state, address)
    assert Decimal(account["equity"]) * USDC == cross.equity_quote
    assert cross.equity_quote == collateral.get_balance(state, address) + 3_000 * USDC

    # Block 4: 400 in; block 5: 300 out; block 6: 200 out is more than the position frees.
    (moved_in,) = submit_and_block(trader.move_isolated_margin_action("BTC-PERP", "400"))
    account = driver.call(get_account, trader_hex)
    figures = _position(account, "BTC-PERP")["isolated_margin"]
    assert (figures["cash"], figures["equity"], figures["withdrawable"]) == ("-5000", "1000", "400")
    assert account["collateral"] == "5996.4"
    (moved_out,) = submit_and_block(trader.move_isolated_margin_action("BTC-PERP", "-300"))
    (refused,) = submit_and_block(trader.move_isolated_margin_action("BTC-PERP", "-200"))
    for tx_hash, status in ((moved_in, 0), (moved_out, 0)):
        assert driver.call(get_transaction, tx_hash)["receipt"]["status"] == status
    result = driver.call(get_transaction, refused)
    assert result["status"] == "included"
    assert result["receipt"]["status"] == ErrorCode.INSUFFICIENT_FREE_COLLATERAL == 3001
    assert not [e for e in result["receipt"]["events"] if e["type"] == "isolated_margin_moved"]
    account = driver.call(get_account, trader_hex)
    figures = _position(account, "BTC-PERP")["isolated_margin"]
    assert (figures["cash"], figures["equity"], figures["withdrawable"]) == ("-5300", "700", "100")
    assert figures["margin_ratio"] == "2.333333"
    assert account["collateral"] == "6296.4"
    isolated = get_isolated_risk(node.store.state, address, BTC)
    assert isolated is not None and Decimal(figures["equity"]) * USDC == isolated.equity_quote

    # --- the account feed: the mode, the two moves, in order ---
    (mode,) = _events(feed.messages, "margin_mode_changed")
    assert (mode["market"], mode["isolated"]) == ("BTC-PERP", True)
    moves = _events(feed.messages, "isolated_margin_moved")
    assert [(m["amount"], m["cash"]) for m in moves] == [("400", "-5000"), ("-300", "-5300")]
    assert {m["account"] for m in moves} == {trader_hex}

    # --- the mark falls: the isolated position loses, the cross account does not ---
    driver.submit(bidder, bidder.place_action("BTC-PERP", "buy", "56000", "0.1"))
    driver.prices[BTC] = 570_000
    for _ in range(3):
        driver.block()
    account = driver.call(get_account, trader_hex)
    btc = _position(account, "BTC-PERP")
    mark = Decimal(btc["mark_price"])
    assert mark < 60_000
    assert Decimal(btc["isolated_margin"]["equity"]) == 700 + (mark - 60_000) / 10
    assert Decimal(btc["unrealized_pnl"]) == (mark - 60_000) / 10
    assert (account["collateral"], account["equity"]) == ("6296.4", "9296.4")  # as before

    # --- and further: the isolated position is liquidated alone; the ETH position stays ---
    driver.prices[BTC] = 540_000
    for _ in range(6):
        driver.block()
        positions = driver.call(get_account, trader_hex)["positions"]
        if not any(p["market"] == "BTC-PERP" for p in positions):
            break
    account = driver.call(get_account, trader_hex)
    assert [p["market"] for p in account["positions"]] == ["ETH-PERP"]
    assert _events(feed.messages, "account_liquidated")
    assert [e["market"] for e in _events(feed.messages, "position_liquidated")] == ["BTC-PERP"]
    # It lost at most its cash: the balance paid nothing, and got back what the cash kept.
    assert Decimal(account["collateral"]) >= Decimal("6296.4")
    assert collateral.get_isolated_cash(node.store.state, address, BTC) == 0
    assert account["isolated_markets"] == ["BTC-PERP"]  # the mode stays

"""The SDK's isolated margin: ``set_margin_mode`` and ``move_isolated_margin`` built and signed
offline (decimal USDC, exact, negative moves out), and ``strata account`` showing isolated
positions apart from the cross-margin figures."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from strata.cli import trade_cli
from strata.client.api import AsyncTrader, Trader, _TraderCore
from strata.client.errors import RpcCode, RpcError
from strata.client.signing import agent_from_seed
from strata.node.config import DEVNET_CHAIN_ID
from strata.stf.transactions import MoveIsolatedMargin, SetMarginMode, decode_transaction
from tests.helpers.offline_trader import MARKETS, WALLET, AsyncSink, Sink, offline_core

BTC, ETH = 1, 2


def test_set_margin_mode_action_by_symbol_or_id() -> None:
    core = offline_core()
    assert core.set_margin_mode_action("BTC-PERP", True) == SetMarginMode(BTC, True)
    assert core.set_margin_mode_action(ETH, False) == SetMarginMode(ETH, False)
    with pytest.raises(RpcError) as unknown:
        core.set_margin_mode_action("DOGE-PERP", True)
    assert unknown.value.code == RpcCode.UNKNOWN_MARKET
    with pytest.raises(RpcError) as not_bool:
        core.set_margin_mode_action("BTC-PERP", 1)  # type: ignore[arg-type]
    assert not_bool.value.code == RpcCode.INVALID_PARAMS


@pytest.mark.parametrize(
    ("amount", "quote"),
    [
        ("250", 250_000_000),
        ("-12.5", -12_500_000),
        (Decimal("0.000001"), 1),
        (Decimal("-1000.25"), -1_000_250_000),
        (7, 7_000_000),
        (-3, -3_000_000),
    ],
)
def test_move_isolated_margin_amount_is_exact_usdc(amount: Any, quote: int) -> None:
    action = offline_core().move_isolated_margin_action("BTC-PERP", amount)
    assert action == MoveIsolatedMargin(BTC, quote)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("0.0000001", RpcCode.OFF_GRID),
        ("-0.0000001", RpcCode.OFF_GRID),
        ("0", RpcCode.INVALID_PARAMS),
        ("-0", RpcCode.INVALID_PARAMS),
        (1.5, RpcCode.INVALID_PARAMS),
        (Decimal("NaN"), RpcCode.INVALID_PARAMS),
        ("ten", RpcCode.INVALID_PARAMS),
    ],
)
def test_move_isolated_margin_refuses_what_is_not_an_exact_nonzero_amount(
    amount: Any, code: RpcCode
) -> None:
    with pytest.raises(RpcError) as refused:
        offline_core().move_isolated_margin_action("BTC-PERP", amount)
    assert refused.value.code == code


def test_trader_and_async_trader_send_the_margin_actions() -> None:
    sink = Sink()
    trader = Trader(sink, WALLET, chain_id=DEVNET_CHAIN_ID, markets=MARKETS)  # type: ignore[arg-type]
    trader.set_margin_mode("BTC-PERP", True)
    trader.move_isolated_margin("BTC-PERP", "400")
    trader.move_isolated_margin("BTC-PERP", "-300")
    trader.set_margin_mode("BTC-PERP", False)
    async_sink = AsyncSink()
    async_trader = AsyncTrader(
        async_sink,  # type: ignore[arg-type]
        WALLET,
        chain_id=DEVNET_CHAIN_ID,
        markets=MARKETS,
    )

    async def send() -> None:
        await async_trader.set_margin_mode("BTC-PERP", True)
        await async_trader.move_isolated_margin("BTC-PERP", "400")
        await async_trader.move_isolated_margin("BTC-PERP", "-300")
        await async_trader.set_margin_mode("BTC-PERP", False)

    asyncio.run(send())
    expected = [
        SetMarginMode(BTC, True),
        MoveIsolatedMargin(BTC, 400_000_000),
        MoveIsolatedMargin(BTC, -300_000_000),
        SetMarginMode(BTC, False),
    ]
    for sent in (sink.sent, async_sink.sent):
        txs = [decode_transaction(tx) for tx in sent]
        assert [tx.action for tx in txs] == expected
        assert all(tx.account == WALLET.address and tx.agent is None for tx in txs)


def test_an_agent_may_manage_margin() -> None:
    """Margin modes and moves are trading, not wallet-only actions: an agent signs them."""
    agent = agent_from_seed("bot")
    core = _TraderCore(
        None, agent, account=WALLET.address, chain_id=DEVNET_CHAIN_ID, markets=MARKETS
    )
    tx = decode_transaction(core.sign_action(core.move_isolated_margin_action("BTC-PERP", "-1")))
    assert tx.agent == agent.public_key and tx.action == MoveIsolatedMargin(BTC, -1_000_000)


ACCOUNT = {
    "address": "0x" + "11" * 20,
    "height": 12,
    "collateral": "6396.4",
    "equity": "9396.4",
    "free_collateral": "9246.4",
    "withdrawable": "9246.4",
    "initial_margin": "150",
    "maintenance_margin": "90",
    "margin_ratio": "104.404444",
    "liquidatable": False,
    "reserved": "0",
    "positions": [
        {
            "market": "BTC-PERP",
            "size": "0.1",
            "entry_price": "60000",
            "entry_cost": "6000",
            "mark_price": "60000",
            "unrealized_pnl": "0",
            "isolated": True,
            "isolated_margin": {
                "cash": "-5300",
                "equity": "700",
                "free_collateral": "100",
                "withdrawable": "100",
                "initial_margin": "600",
                "maintenance_margin": "300",
                "margin_ratio": "2.333333",
                "liquidatable": False,
            },
        },
        {
            "market": "ETH-PERP",
            "size": "1",
            "entry_price": "3000",
            "entry_cost": "3000",
            "mark_price": "3000",
            "unrealized_pnl": "0",
            "isolated": False,
            "isolated_margin": None,
        },
    ],
    "isolated_markets": ["BTC-PERP"],
    "open_orders": [],
    "triggers": [],
    "cancel_at_ms": None,
    "agents": [],
    "nonces": {"floor": 0, "recent": []},
}


def test_strata_account_shows_isolated_positions_apart(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class _Client:
        def __init__(self, url: str) -> None:
            self.url = url

        def __enter__(self) -> _Client:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def account(self, address: str) -> dict[str, Any]:
            return ACCOUNT

    monkeypatch.setattr(trade_cli, "Client", _Client)
    assert trade_cli.main(["account", ACCOUNT["address"]]) == 0  # type: ignore[list-item]
    out = capsys.readouterr().out
    summary, rest = out.split("\npositions\n")
    assert "cross margin" in summary and "withdrawable" in summary
    assert '["BTC-PERP"]' in summary  # isolated_markets
    positions, isolated = rest.split("\nisolated positions\n")
    assert "isolated_margin" not in positions and "true" in positions and "false" in positions
    header, _, btc, *others = isolated.strip().splitlines()
    assert header.split() == ["market", "size", "cash", *trade_cli._ISOLATED_FIELDS[1:]]
    figures = ["-5300", "700", "100", "600", "300", "2.333333", "false"]
    assert btc.split() == ["BTC-PERP", "0.1", *figures]
    assert others[0] == "" and "open orders" in others[1]

"""The SDK's timed orders and triggers: good-til-time places, triggers (stop-loss and take-profit
helpers), trigger cancels and the dead-man switch, built and signed offline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from strata.client.api import AsyncTrader, Trader, TriggerSpec
from strata.client.errors import RpcCode, RpcError
from strata.node.config import DEVNET_CHAIN_ID
from strata.stf.transactions import (
    CancelTrigger,
    PlaceOrder,
    PlaceTrigger,
    ScheduleCancel,
    decode_transaction,
)
from tests.helpers.offline_trader import MARKETS, WALLET, AsyncSink, Sink, offline_core


def test_place_action_with_expiry_is_good_til_time() -> None:
    action = offline_core().place_action("BTC-PERP", "buy", "59000", "0.1", expires_at_ms=1_234)
    assert action == PlaceOrder(1, True, 590_000, 1_000, 0, False, None, 1_234)
    assert offline_core().place_action("BTC-PERP", "buy", "59000", "0.1").expires_at_ms is None


@pytest.mark.parametrize(
    ("kind", "side", "above"),
    [
        ("stop_loss", "sell", False),  # a long's stop: the mark falls
        ("take_profit", "sell", True),  # a long's profit: the mark rises
        ("stop_loss", "buy", True),  # a short's stop: the mark rises
        ("take_profit", "buy", False),
    ],
)
def test_stop_and_take_profit_trigger_on_the_right_side(kind: str, side: str, above: bool) -> None:
    core = offline_core()
    spec = core.stop_trigger(kind, "BTC-PERP", side, "57000", "0.1", "56500")
    assert spec == TriggerSpec("BTC-PERP", side, "57000", above, "56500", "0.1", "ioc")
    action = core.place_trigger_action(spec)
    assert action == PlaceTrigger(1, side == "buy", 570_000, above, 565_000, 1_000, 1)


def test_a_market_trigger_takes_the_widest_worst_price() -> None:
    core = offline_core()
    sell = core.place_trigger_action(
        core.stop_trigger("stop_loss", "ETH-PERP", "sell", "2900", "1")
    )
    assert sell.price_ticks == 1 and not sell.trigger_above
    buy = core.place_trigger_action(core.stop_trigger("stop_loss", "ETH-PERP", "buy", "3100", "1"))
    assert buy.price_ticks == MARKETS[2].max_price_ticks and buy.trigger_above
    with pytest.raises(ValueError):
        core.stop_trigger("trailing", "ETH-PERP", "buy", "3100", "1")
    with pytest.raises(RpcError) as refused:
        core.stop_trigger("stop_loss", "ETH-PERP", "long", "3100", "1")
    assert refused.value.code == RpcCode.INVALID_PARAMS
    with pytest.raises(RpcError) as off_grid:
        core.place_trigger_action(TriggerSpec("ETH-PERP", "buy", "3100.001", True, "3200", "1"))
    assert off_grid.value.code == RpcCode.OFF_GRID


def test_trader_sends_triggers_cancels_and_the_dead_man_switch() -> None:
    sink = Sink()
    trader = Trader(sink, WALLET, chain_id=DEVNET_CHAIN_ID, markets=MARKETS)  # type: ignore[arg-type]
    trader.place("BTC-PERP", "sell", "61000", "0.1", expires_at_ms=99)
    trader.place_trigger("BTC-PERP", "sell", "57000", False, "56500", "0.1", "gtc")
    trader.stop_loss("BTC-PERP", "sell", "57000", "0.1", "56500")
    trader.take_profit("BTC-PERP", "sell", "63000", "0.1")
    trader.cancel_trigger("BTC-PERP", 17)
    trader.schedule_cancel(5_000)
    trader.schedule_cancel(None)
    actions: list[Any] = [decode_transaction(tx).action for tx in sink.sent]
    assert actions == [
        PlaceOrder(1, False, 610_000, 1_000, 0, False, None, 99),
        PlaceTrigger(1, False, 570_000, False, 565_000, 1_000, 0),
        PlaceTrigger(1, False, 570_000, False, 565_000, 1_000, 1),
        PlaceTrigger(1, False, 630_000, True, 1, 1_000, 1),
        CancelTrigger(1, 17),
        ScheduleCancel(5_000),
        ScheduleCancel(None),
    ]
    nonces = [decode_transaction(tx).nonce for tx in sink.sent]
    assert nonces == sorted(set(nonces))


def test_async_trader_sends_the_same_actions() -> None:
    sink = AsyncSink()
    trader = AsyncTrader(sink, WALLET, chain_id=DEVNET_CHAIN_ID, markets=MARKETS)  # type: ignore[arg-type]

    async def send() -> None:
        await trader.place("BTC-PERP", "buy", "59000", "0.1", expires_at_ms=7)
        await trader.place_trigger("BTC-PERP", "buy", "63000", True, "63500", "0.1")
        await trader.stop_loss("BTC-PERP", "buy", "63000", "0.1", "63500")
        await trader.take_profit("BTC-PERP", "buy", "57000", "0.1", "57500")
        await trader.cancel_trigger("BTC-PERP", 3)
        await trader.schedule_cancel(10_000)

    asyncio.run(send())
    actions: list[Any] = [decode_transaction(tx).action for tx in sink.sent]
    assert actions == [
        PlaceOrder(1, True, 590_000, 1_000, 0, False, None, 7),
        PlaceTrigger(1, True, 630_000, True, 635_000, 1_000, 1),
        PlaceTrigger(1, True, 630_000, True, 635_000, 1_000, 1),
        PlaceTrigger(1, True, 570_000, False, 575_000, 1_000, 1),
        CancelTrigger(1, 3),
        ScheduleCancel(10_000),
    ]


def test_trade_cli_expires_in_becomes_expires_at_ms() -> None:
    from strata.cli.trade_cli import _expires_at_ms, build_parser

    args = build_parser().parse_args(
        ["order", "place", "BTC-PERP", "buy", "0.1", "59000", "--seed", "x", "--expires-in", "2.5"]
    )
    assert args.expires_in == 2.5
    at_ms = _expires_at_ms(args.expires_in)
    assert at_ms is not None and 2_000 < at_ms - time.time_ns() // 1_000_000 <= 2_500
    assert _expires_at_ms(None) is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(
            ["order", "place", "BTC-PERP", "buy", "0.1", "1", "--seed", "x", "--expires-in", "-1"]
        )

"""The JSON wire form (docs/api.md): exact round trips, every rejection, signed transactions that
the chain accepts, events as JSON, and the SDK clients against a mocked HTTP transport."""

from __future__ import annotations

import itertools
import json
import typing
from decimal import Decimal
from typing import Any

import httpx
import pytest

from strata.client.api import Client, OrderSpec, Trader
from strata.client.errors import RpcCode, RpcError
from strata.client.markets import MarketInfo
from strata.client.signing import agent_from_seed, wallet_from_seed
from strata.client.wire import (
    action_from_json,
    action_to_json,
    event_to_json,
    transaction_from_json,
    transaction_to_json,
)
from strata.core.signatures import (
    compute_transaction_digest,
    recover_wallet_address,
    verify_agent_signature,
)
from strata.modules.book.types import OrderReason, OrderStatus
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.funding import FundingTick
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    FundDeleveraged,
    PositionLiquidated,
)
from strata.modules.oracle import OracleFresh, OracleStale
from strata.modules.triggers import ScheduledCancelFired, TriggerUpdate
from strata.stf.events import (
    AgentApproved,
    AgentRevoked,
    CancelScheduled,
    Deposited,
    Event,
    FeeCharged,
    IsolatedMarginMoved,
    MarginModeChanged,
    OraclePriceUpdated,
    Transferred,
    WithdrawalRequested,
)
from strata.stf.transactions import (
    MAX_BULK_ITEMS,
    Action,
    BulkCancel,
    BulkModify,
    BulkPlace,
    CancelAll,
    CancelOrder,
    CancelTrigger,
    ModifyOrder,
    MoveIsolatedMargin,
    PlaceOrder,
    PlaceTrigger,
    RevokeAgent,
    ScheduleCancel,
    SetMarginMode,
    Transfer,
    Withdraw,
    compute_transaction_hash,
    decode_transaction,
    encode_action,
    encode_transaction,
)
from tests.helpers.chain import BTC, CHAIN_ID, ETH, make_chain, sign

BTC_INFO = MarketInfo.of(BTC, "0.1", "0.0001")
ETH_INFO = MarketInfo.of(ETH, "0.01", "0.0001")
MARKETS = {1: BTC_INFO, 2: ETH_INFO}

ALICE = wallet_from_seed("alice")
BOB = wallet_from_seed("bob")
AGENT = agent_from_seed("alice-bot")
U63 = (1 << 63) - 1

PLACE = PlaceOrder(1, True, 500_105, 2_500, 0, False, 7)

ACTIONS: list[Action] = [
    AGENT.approve_for(ALICE.address, 1_900_000_000_000, CHAIN_ID),
    RevokeAgent(AGENT.public_key),
    Transfer(BOB.address, 1_000_500_000),
    Withdraw(1, BOB.address),
    PLACE,
    PlaceOrder(2, False, 300_001, 1, 3, True, None),
    PlaceOrder(1, True, U63, U63, 1, False, U63),
    CancelOrder(1, 42, None),
    CancelOrder(2, None, 7),
    CancelAll(None),
    CancelAll(2),
    ModifyOrder(1, 42, None, False, 500_000, 10, 2, True),
    ModifyOrder(2, None, 9, True, 1, 1, 0, False),
    BulkPlace(tuple(PlaceOrder(1, i % 2 == 0, 500_000 + i, 1 + i, 3, False, i) for i in range(64))),
    BulkCancel((CancelOrder(1, 1, None), CancelOrder(2, None, 3))),
    BulkModify((ModifyOrder(1, None, 5, True, 10, 10, 0, False),)),
    BulkPlace(()),
    PlaceOrder(1, True, 500_000, 10, 0, False, None, 1_700_000_060_000),
    ScheduleCancel(1_700_000_010_000),
    ScheduleCancel(None),
    PlaceTrigger(1, False, 490_000, False, 480_000, 10),
    PlaceTrigger(2, True, 310_000, True, 310_000, 10, 0),
    CancelTrigger(1, 1_700_000_000_123),
    SetMarginMode(1, True),
    MoveIsolatedMargin(1, 2_500_000),
    MoveIsolatedMargin(2, -1),
]


def error_of(obj: Any, markets: dict[int, MarketInfo] = MARKETS) -> RpcError:
    with pytest.raises(RpcError) as exc:
        action_from_json(obj, markets)
    return exc.value


def place_json(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "place",
        "market": "BTC-PERP",
        "side": "buy",
        "price": "50010.5",
        "size": "0.25",
        "tif": "gtc",
        "reduce_only": False,
        "client_id": 7,
    }
    obj.update(overrides)
    return {k: v for k, v in obj.items() if v is not ...}


# --- round trips -----------------------------------------------------------------------------


def test_every_action_type_is_covered() -> None:
    assert {type(a) for a in ACTIONS} == set(typing.get_args(Action))


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: type(a).__name__)
def test_action_round_trip(action: Action) -> None:
    obj = action_to_json(action, MARKETS)
    # Through real JSON text, as the node sees it.
    back = action_from_json(json.loads(json.dumps(obj)), MARKETS)
    assert back == action
    assert encode_action(back) == encode_action(action)


def test_docs_example_place() -> None:
    obj = {
        "type": "place",
        "market": "BTC-PERP",
        "side": "buy",
        "price": "50010.5",
        "size": "0.25",
        "tif": "gtc",
        "reduce_only": False,
        "client_id": 7,
    }
    assert action_from_json(obj, MARKETS) == PLACE
    assert action_to_json(PLACE, MARKETS) == {**obj, "expires_at_ms": None}


def test_defaults_and_market_by_id() -> None:
    minimal = {"type": "place", "market": 1, "side": "buy", "price": "50010.5", "size": "0.25"}
    assert action_from_json(minimal, MARKETS) == PlaceOrder(1, True, 500_105, 2_500)
    assert action_from_json({"type": "cancel_all"}, MARKETS) == CancelAll(None)
    assert action_from_json({"type": "cancel_all", "market": None}, MARKETS) == CancelAll(None)
    tif = action_from_json(place_json(tif="post_only"), MARKETS)
    assert isinstance(tif, PlaceOrder) and tif.tif == 3 and type(tif.tif) is int
    cancel = {"type": "cancel", "market": "ETH-PERP", "order_id": 5, "client_id": None}
    assert action_from_json(cancel, MARKETS) == CancelOrder(2, 5, None)


def test_equal_decimals_give_equal_actions() -> None:
    a = action_from_json(place_json(price="50010.50", size="0.2500"), MARKETS)
    assert a == PLACE


# --- rejections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        place_json(price="50010.55"),
        place_json(size="0.00001"),
        {"type": "transfer", "to": "0x" + "11" * 20, "amount": "1.0000001"},
        {"type": "bulk_place", "orders": [{**place_json(price="1.01", type=...)}]},
        {"type": "withdraw", "amount": "0.5000001", "destination": "0x" + "11" * 20},
    ],
)
def test_off_grid(obj: dict[str, Any]) -> None:
    assert error_of(obj).code == RpcCode.OFF_GRID


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (place_json(price=50010.5), "price"),
        (place_json(size=1), "size"),
        (place_json(price="5e4"), "price"),
        (place_json(client_id=7.0), "client_id"),
        (place_json(client_id=True), "client_id"),
        (place_json(client_id=-1), "client_id"),
        (place_json(client_id=U63 + 1), "client_id"),
        (place_json(reduce_only=0), "reduce_only"),
        (place_json(reduce_only="false"), "reduce_only"),
        (place_json(side="long"), "side"),
        (place_json(side=None), "side"),
        (place_json(tif="GTC"), "tif"),
        (place_json(tif=0), "tif"),
        (place_json(price="0"), "positive"),
        (place_json(size="-0.25"), "positive"),
        (place_json(price="9" * 40), "out of range"),
        (place_json(market=True), "market"),
        (place_json(market=1.0), "market"),
        (place_json(market=-1), "market"),
        (place_json(leverage=10), "unknown field 'leverage'"),
        (place_json(market=...), "missing field 'market'"),
        ({"type": "launch"}, "unknown action type"),
        ({"market": "BTC-PERP"}, "unknown action type"),
        ({"type": None}, "unknown action type"),
        ([], "must be an object"),
        ("place", "must be an object"),
        ({"type": "cancel", "market": 1}, "exactly one"),
        ({"type": "cancel", "market": 1, "order_id": 1, "client_id": 2}, "exactly one"),
        ({"type": "cancel", "market": 1, "order_id": True}, "order_id"),
        ({"type": "cancel_all", "market": 1, "extra": 1}, "unknown field"),
        ({"type": "transfer", "to": "0x" + "11" * 19, "amount": "1"}, "20 bytes"),
        ({"type": "transfer", "to": "11" * 20, "amount": "1"}, "0x"),
        ({"type": "transfer", "to": "0x" + "zz" * 20, "amount": "1"}, "hex"),
        ({"type": "transfer", "to": "0x" + "11 " * 20, "amount": "1"}, "hex"),
        ({"type": "transfer", "to": "0x" + "1" * 41, "amount": "1"}, "hex"),
        ({"type": "transfer", "to": 11, "amount": "1"}, "0x"),
        ({"type": "transfer", "to": "0x" + "11" * 20, "amount": "0"}, "positive"),
        ({"type": "transfer", "to": "0x" + "11" * 20, "amount": "-1"}, "positive"),
        ({"type": "transfer", "to": "0x" + "11" * 20, "amount": 1}, "amount"),
        ({"type": "withdraw", "amount": "1", "destination": "0x" + "11" * 21}, "20 bytes"),
        ({"type": "revoke_agent", "public_key": "0x" + "11" * 31}, "32 bytes"),
        (
            {
                "type": "approve_agent",
                "public_key": "0x" + "11" * 32,
                "valid_until_ms": 1,
                "agent_signature": "0x" + "11" * 65,
            },
            "64 bytes",
        ),
        (
            {
                "type": "approve_agent",
                "public_key": "0x" + "11" * 32,
                "valid_until_ms": 1.5,
                "agent_signature": "0x" + "11" * 64,
            },
            "valid_until_ms",
        ),
        ({"type": "bulk_place", "orders": {}}, "must be a list"),
        ({"type": "bulk_cancel", "cancels": [{"market": 1}]}, "cancels[0]"),
        ({"type": "bulk_place", "orders": [place_json()]}, "unknown field 'type'"),
        (
            {"type": "modify", "market": 1, "side": "buy", "price": "1", "size": "1"},
            "exactly one",
        ),
    ],
)
def test_invalid_params(obj: Any, fragment: str) -> None:
    error = error_of(obj)
    assert error.code == RpcCode.INVALID_PARAMS, error
    assert error.name == "INVALID_PARAMS"
    assert fragment in error.message


def test_bulk_limit_names_max_bulk_items() -> None:
    order = {k: v for k, v in place_json().items() if k != "type"}
    full = action_from_json({"type": "bulk_place", "orders": [order] * MAX_BULK_ITEMS}, MARKETS)
    assert isinstance(full, BulkPlace) and len(full.orders) == 64
    for kind, key, item in (
        ("bulk_place", "orders", order),
        ("bulk_cancel", "cancels", {"market": 1, "order_id": 1}),
    ):
        error = error_of({"type": kind, key: [item] * (MAX_BULK_ITEMS + 1)})
        assert error.code == RpcCode.INVALID_PARAMS
        assert "MAX_BULK_ITEMS" in error.message and "64" in error.message


@pytest.mark.parametrize("market", ["DOGE-PERP", 3, "btc-perp"])
def test_unknown_market(market: object) -> None:
    assert error_of(place_json(market=market)).code == RpcCode.UNKNOWN_MARKET
    assert error_of({"type": "cancel_all", "market": market}).code == RpcCode.UNKNOWN_MARKET
    with pytest.raises(RpcError) as exc:
        action_to_json(PLACE, {2: ETH_INFO})
    assert exc.value.code == RpcCode.UNKNOWN_MARKET


# --- transactions ------------------------------------------------------------------------------


def test_signed_transaction_json_round_trip_keeps_canonical_bytes() -> None:
    chain = make_chain()
    for action in ACTIONS[:-1]:
        for agent in (None, AGENT):
            raw = sign(ALICE, action, 1_700_000_000_123, chain.params, agent=agent)
            tx = decode_transaction(raw)
            obj = json.loads(json.dumps(transaction_to_json(tx, MARKETS)))
            assert obj["agent"] == (None if agent is None else "0x" + AGENT.public_key.hex())
            back = transaction_from_json(obj, MARKETS)
            assert encode_transaction(back) == raw


def test_transaction_from_json_rejections() -> None:
    raw = sign(ALICE, PLACE, 1_700_000_000_123, make_chain().params)
    good = transaction_to_json(decode_transaction(raw), MARKETS)
    del good["agent"]  # optional
    assert encode_transaction(transaction_from_json(good, MARKETS)) == raw
    bad_cases = [
        ({**good, "nonce": 1.0}, RpcCode.INVALID_PARAMS),
        ({**good, "nonce": U63 + 1}, RpcCode.INVALID_PARAMS),
        ({**good, "nonce": True}, RpcCode.INVALID_PARAMS),
        ({**good, "signature": "0x" + "11" * 63}, RpcCode.INVALID_PARAMS),
        ({**good, "agent": "0x" + "11" * 20}, RpcCode.INVALID_PARAMS),
        ({**good, "account": "0x" + "11" * 32}, RpcCode.INVALID_PARAMS),
        ({**good, "hash": "0x"}, RpcCode.INVALID_PARAMS),
        ({k: v for k, v in good.items() if k != "signature"}, RpcCode.INVALID_PARAMS),
        ({**good, "action": place_json(price="1.05")}, RpcCode.OFF_GRID),
        ({**good, "action": place_json(market="X")}, RpcCode.UNKNOWN_MARKET),
    ]
    for obj, code in bad_cases:
        with pytest.raises(RpcError) as exc:
            transaction_from_json(obj, MARKETS)
        assert exc.value.code == code, obj


# --- events ------------------------------------------------------------------------------------

A1, A2 = b"\x01" * 20, b"\x02" * 20
EVENTS: list[Event] = [
    AgentApproved(A1, AGENT.public_key, 5),
    AgentRevoked(A1, AGENT.public_key),
    Transferred(A1, A2, 1_500_000),
    WithdrawalRequested(3, A1, A2, 2_000_000),
    Deposited(4, A1, 10_000_000_000),
    OraclePriceUpdated(1, 500_000, 1_700_000_000_000, A2),
    FeeCharged(A1, 25),
    OrderUpdate(1, 9, A1, OrderStatus.CANCELED, OrderReason.IOC_REMAINDER, 100, 2_400, 7),
    FillEvent(1, 8, 9, A2, A1, True, 500_105, 2_500, -1_250, 6_251),
    PositionChanged(A1, 2, -25_000, -7_500_000_000, 12_345, 6_251),
    OracleStale(1, 1_700_000_000_000, 500_100),
    OracleFresh(2, 1_700_000_000_000, 250_050),
    FundingTick(1, 1_700_003_600_000, 120, 18_000, 130, 500_100, 650_130, 650_130),
    TriggerUpdate(A1, 1, 1_700_000_000_123, 1, 490_000),
    ScheduledCancelFired(A1, 1_700_000_010_000, 3, 1),
    CancelScheduled(A1, None),
    MarginModeChanged(A1, 1, True),
    IsolatedMarginMoved(A1, 1, -1_500_000, 8_500_000),
    AccountLiquidated(A1, 9_000_000, 10_000_000, 200_000, 3),
    PositionLiquidated(
        A1,
        1,
        500_100,
        500_000,
        25_000,
        5_000,
        10**13,
        5_000,
        1_800_000,
        248_250_000,
        496_500,
        4_000,
        198_640_000,
        993_200,
        1_000,
        49_650_000,
        0,
        10**12,
        0,
        0,
    ),
    Deleveraged(A1, A2, 1, 1_000, 49_650_000, 0, 1_250_000),
    BadDebtChanged(A1, 1_000_000, 500_000, 500_000),
    FundDeleveraged(3_000_000_000, 7_000_000_000, 3_000_000_000, 571_429, None),
]


def test_every_event_type_has_a_json_form() -> None:
    assert {type(e) for e in EVENTS} == set(typing.get_args(Event))
    names = [event_to_json(e, MARKETS)["type"] for e in EVENTS]
    assert names == [
        "agent_approved",
        "agent_revoked",
        "transferred",
        "withdrawal_requested",
        "deposited",
        "oracle_price_updated",
        "fee_charged",
        "order_update",
        "fill",
        "position_changed",
        "oracle_stale",
        "oracle_fresh",
        "funding_tick",
        "trigger_update",
        "scheduled_cancel_fired",
        "cancel_scheduled",
        "margin_mode_changed",
        "isolated_margin_moved",
        "account_liquidated",
        "position_liquidated",
        "deleveraged",
        "bad_debt_changed",
        "fund_deleveraged",
    ]
    assert event_to_json(EVENTS[10], MARKETS)["index_price"] == "50010"
    liquidated = event_to_json(EVENTS[19], MARKETS)
    assert liquidated["bankruptcy_price"] == "49650"
    assert liquidated["size_before"] == "2.5"
    assert liquidated["book_value"] == "198.64"
    for event in EVENTS:
        text = json.dumps(event_to_json(event, MARKETS))
        assert "e+" not in text and "E-" not in text


def test_event_values() -> None:
    fill = event_to_json(EVENTS[8], MARKETS)
    assert fill == {
        "type": "fill",
        "market": "BTC-PERP",
        "market_id": 1,
        "maker_order_id": 8,
        "taker_order_id": 9,
        "maker": "0x" + A2.hex(),
        "taker": "0x" + A1.hex(),
        "side": "buy",
        "price": "50010.5",
        "size": "0.25",
        "maker_fee": "-0.00125",
        "taker_fee": "0.006251",
    }
    update = event_to_json(EVENTS[7], MARKETS)
    assert update["status"] == "canceled" and update["status_code"] == 2
    assert update["reason"] == "ioc_remainder" and update["reason_code"] == 5
    assert update["remaining"] == "0.01" and update["filled"] == "0.24"
    assert update["client_id"] == 7 and update["account"] == "0x" + A1.hex()
    position = event_to_json(EVENTS[9], MARKETS)
    assert position["size"] == "-2.5" and position["entry_cost"] == "-7500"
    assert event_to_json(EVENTS[4], MARKETS)["amount"] == "10000"
    assert event_to_json(EVENTS[5], MARKETS)["price"] == "50000"
    unknown = OrderUpdate(1, 9, A1, 99, 99, 0, 0, None)
    assert event_to_json(unknown, MARKETS)["status"] == "unknown"
    with pytest.raises(RpcError):
        event_to_json(EVENTS[8], {2: ETH_INFO})
    with pytest.raises(TypeError):
        event_to_json(PLACE, MARKETS)  # type: ignore[arg-type]


# --- the trader signs what the chain accepts ---------------------------------------------------


def offline_trader(**kw: Any) -> Trader:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.content!r}")

    client = Client("http://node.invalid")
    client._http = httpx.Client(transport=httpx.MockTransport(refuse))
    return Trader(client, kw.pop("wallet", ALICE), chain_id=CHAIN_ID, markets=MARKETS, **kw)


def test_trader_signs_transactions_the_chain_includes() -> None:
    chain = make_chain()
    alice = offline_trader()
    bob = offline_trader(wallet=chain.wallets["bob"])
    # The test chain's clock is in 2023: nonces must be near its time, not the wall clock.
    sell = alice.place_action("BTC-PERP", "sell", "50010.5", "0.25", "gtc")
    maker = alice.sign_action(sell, chain.nonce())
    taker = bob.sign_action(bob.place_action(1, "buy", "50010.5", "0.25", tif="ioc"), chain.nonce())
    output = chain.block([maker, taker])
    assert output.rejected == ()
    assert [receipt.status for receipt in output.receipts] == [0, 0]
    events = [event_to_json(e, MARKETS) for r in output.receipts for e in r.events]
    fills = [e for e in events if e["type"] == "fill"]
    assert len(fills) == 1 and fills[0]["price"] == "50010.5" and fills[0]["size"] == "0.25"
    assert fills[0]["side"] == "buy"
    settled = [event_to_json(e, MARKETS) for e in output.block_events.settlement]
    assert any(e["type"] == "position_changed" for e in settled)


def test_trader_agent_signature_and_wallet_only_actions() -> None:
    trader = offline_trader(agent=AGENT)
    raw = trader.sign_action(trader.cancel_all_action("ETH-PERP"), nonce=123)
    tx = decode_transaction(raw)
    digest = compute_transaction_digest(
        CHAIN_ID, bytes(20), ALICE.address, 123, encode_action(tx.action)
    )
    assert tx.agent == AGENT.public_key and tx.account == ALICE.address
    assert verify_agent_signature(AGENT.public_key, digest, tx.signature)
    # Wallet-only actions are signed by the wallet even when the trader has an agent.
    tx = decode_transaction(trader.sign_action(trader.transfer_action(BOB.address, "1.5"), 124))
    digest = compute_transaction_digest(
        CHAIN_ID, bytes(20), ALICE.address, 124, encode_action(tx.action)
    )
    assert tx.agent is None and recover_wallet_address(digest, tx.signature) == ALICE.address
    agent_only = Trader(
        trader.client, None, AGENT, account=ALICE.address, chain_id=CHAIN_ID, markets=MARKETS
    )
    with pytest.raises(ValueError):
        agent_only.sign_action(Withdraw(1, BOB.address))


def test_trader_checks_units_before_sending() -> None:
    trader = offline_trader()
    with pytest.raises(RpcError) as exc:
        trader.place("BTC-PERP", "buy", "50010.55", "0.25")
    assert exc.value.code == RpcCode.OFF_GRID
    with pytest.raises(RpcError) as exc:
        trader.place("BTC-PERP", "buy", 50010.5, "0.25")  # type: ignore[arg-type]
    assert exc.value.code == RpcCode.INVALID_PARAMS
    with pytest.raises(RpcError) as exc:
        trader.place("NOPE", "buy", "1", "1")
    assert exc.value.code == RpcCode.UNKNOWN_MARKET
    assert trader.place_action("BTC-PERP", "buy", Decimal("50010.50"), 1) == PlaceOrder(
        1, True, 500_105, 10_000
    )
    order = {k: v for k, v in place_json(price=Decimal("50010.5")).items() if k != "type"}
    bulk = trader.bulk_place_action([OrderSpec("BTC-PERP", "buy", "1", "1", "post_only"), order])
    assert bulk.orders[0].tif == 3 and bulk.orders[1] == PLACE


def test_nonces_strictly_increase() -> None:
    trader = offline_trader()
    nonces = [trader.next_nonce() for _ in range(1000)]
    assert all(b > a for a, b in itertools.pairwise(nonces))


# --- the HTTP client against a mocked node -----------------------------------------------------


class FakeNode:
    """Answers JSON-RPC like a node: status, markets, raw sends (checked), transactions."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, params = request["method"], request["params"]
        result: Any
        if method == "strata_getStatus":
            result = {"chain_id": CHAIN_ID, "height": 5, "bridge_address": "0x" + "00" * 20}
        elif method == "strata_getMarkets":
            result = [
                {**info.to_json(), "mark_price": "50000", "status": "active"}
                for info in MARKETS.values()
            ]
        elif method == "strata_sendRawTransaction":
            raw = bytes.fromhex(params[0][2:])
            tx = decode_transaction(raw)
            digest = compute_transaction_digest(
                CHAIN_ID, bytes(20), tx.account, tx.nonce, encode_action(tx.action)
            )
            if recover_wallet_address(digest, tx.signature) != tx.account:
                return {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "error": {
                        "code": 2011,
                        "message": "wrong signer",
                        "data": {"name": "WRONG_SIGNER"},
                    },
                }
            self.sent.append(raw)
            result = {"hash": "0x" + compute_transaction_hash(raw).hex()}
        elif method == "strata_getTransaction":
            result = {"hash": params[0], "status": "included", "height": 6, "receipt": {}}
        else:
            return {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {
                    "code": -32601,
                    "message": f"no method {method}",
                    "data": {"name": "METHOD_NOT_FOUND"},
                },
            }
        return {"jsonrpc": "2.0", "id": request["id"], "result": result}

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if isinstance(body, list):
            return httpx.Response(200, json=[self.answer(r) for r in reversed(body)])
        return httpx.Response(200, json=self.answer(body))


def test_client_and_trader_against_a_fake_node() -> None:
    node = FakeNode()
    client = Client("http://node.invalid")
    client._http = httpx.Client(transport=httpx.MockTransport(node.handle))
    trader = Trader(client, ALICE)
    tx_hash = trader.place("BTC-PERP", "buy", "50010.5", "0.25", client_id=7)
    assert trader.chain_id == CHAIN_ID and set(trader.markets) == {1, 2}
    assert tx_hash == "0x" + compute_transaction_hash(node.sent[0]).hex()
    assert decode_transaction(node.sent[0]).action == PLACE
    result = trader.cancel("BTC-PERP", client_id=7, wait=True)
    assert result["status"] == "included"
    # Batches come back in call order even when the node answers out of order.
    status, markets = client.batch([("strata_getStatus", []), ("strata_getMarkets", [])])
    assert status["chain_id"] == CHAIN_ID and len(markets) == 2
    with pytest.raises(RpcError) as exc:
        client.call("strata_nope")
    assert exc.value.code == RpcCode.METHOD_NOT_FOUND and exc.value.name == "METHOD_NOT_FOUND"
    out = client.batch([("strata_nope", []), ("strata_getStatus", [])], return_errors=True)
    assert isinstance(out[0], RpcError) and out[1]["height"] == 5

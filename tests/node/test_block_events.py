"""The node's order index and feeds read every event of a block: the receipts' and the block's
own lists (prologue, matching, settlement, risk), in the order they happened.

The blocks here are written by hand (events as ``apply_block`` emits them), so each rule of
``node/index.py`` and ``node/feeds.py`` is checked on its own; ``test_node_risk.py`` drives real
blocks through a node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from strata.modules.book.types import OrderReason, OrderStatus
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.liquidation import AccountLiquidated, PositionLiquidated
from strata.modules.triggers import ScheduledCancelFired, TriggerStatus, TriggerUpdate
from strata.node.config import devnet_genesis
from strata.node.events import Phase, block_segments
from strata.node.feeds import Feeds, Subscriber, render_account_messages
from strata.node.index import NodeIndex, OrderOrigin
from strata.state.store import State
from strata.stf.block import Block, BlockEvents, BlockOutput, Header, Receipt, encode_receipts
from strata.stf.events import Event, IsolatedMarginMoved, MarginModeChanged
from strata.stf.genesis import make_genesis
from strata.stf.transactions import (
    Action,
    MoveIsolatedMargin,
    PlaceOrder,
    PlaceTrigger,
    SetMarginMode,
    SignedTransaction,
    encode_transaction,
)

GENESIS = devnet_genesis(0)
MARKETS = GENESIS.market_infos()
BTC = 1
ALICE, BOB, CAROL, DAVE, ERIN = (bytes([i]) * 20 for i in range(1, 6))
FUND = INSURANCE_FUND_ACCOUNT


def _state() -> State:
    state, _ = make_genesis(GENESIS.chain)
    return state


def _signed(account: bytes, nonce: int, action: Action) -> SignedTransaction:
    return SignedTransaction(account, nonce, action, None, b"\x01" * 65)


def _block(
    height: int,
    txs: list[tuple[SignedTransaction, list[Event]]] = (),  # type: ignore[assignment]
    *,
    prologue: tuple[Event, ...] = (),
    matching: tuple[Event, ...] = (),
    settlement: tuple[Event, ...] = (),
    risk: tuple[Event, ...] = (),
) -> tuple[Block, BlockOutput, dict[bytes, SignedTransaction]]:
    """A block with transactions ``(tx, receipt events)`` and the block's own event lists."""
    header = Header(
        chain_id=1,
        height=height,
        parent_hash=bytes(32),
        timestamp_ms=1_000 * height,
        gas_used=0,
        state_root=bytes(32),
        transactions_root=bytes(32),
        receipts_root=bytes(32),
        withdrawals_root=bytes(32),
    )
    datas = [encode_transaction(tx) for tx, _ in txs]
    hashes = [bytes([height, i]) * 16 for i in range(len(txs))]
    receipts = tuple(
        Receipt(h, 0, 0, tuple(events)) for h, (_, events) in zip(hashes, txs, strict=True)
    )
    output = BlockOutput(
        header=header,
        encoded_receipts=encode_receipts(receipts),
        block_events=BlockEvents(prologue, settlement, risk, matching),
        withdrawals=(),
        transactions=tuple(datas),
    )
    decoded = {h: tx for h, (tx, _) in zip(hashes, txs, strict=True)}
    return Block(header, (), tuple(datas)), output, decoded


def _update(
    order_id: int,
    owner: bytes,
    status: int,
    reason: int,
    remaining: int,
    filled: int,
    client_id: int | None = None,
) -> OrderUpdate:
    return OrderUpdate(BTC, order_id, owner, status, reason, remaining, filled, client_id)


def _fill(
    maker_id: int,
    taker_id: int,
    maker: bytes,
    taker: bytes,
    taker_buys: bool,
    price: int,
    size: int,
) -> FillEvent:
    return FillEvent(BTC, maker_id, taker_id, maker, taker, taker_buys, price, size, 0, 0)


def _liquidated(account: bytes, size_before: int, limit: int, mark: int) -> PositionLiquidated:
    return PositionLiquidated(
        account=account,
        market_id=BTC,
        mark_ticks=mark,
        index_ticks=mark,
        size_before_lots=size_before,
        wanted_lots=abs(size_before),
        budget_quote=10**12,
        slice_lots=abs(size_before),
        equity_share_quote=-5,
        bankruptcy_value_quote=0,
        limit_price_ticks=limit,
        book_lots=4,
        book_value_quote=0,
        fee_quote=0,
        backstop_lots=5,
        backstop_value_quote=0,
        fund_loss_quote=0,
        fund_loss_limit_quote=0,
        adl_lots=0,
        adl_value_quote=0,
    )


def _two_blocks() -> list[tuple[Block, BlockOutput, dict[bytes, SignedTransaction]]]:
    """Block 1: Alice rests a good-til-time bid (order 5), Bob places a stop-loss (trigger 6),
    Carol rests an ask (order 8), Dave a bid (order 10), Erin a bid (order 11). Block 2: Alice's
    bid expires and Bob's trigger fires in the prologue; the trigger's IOC order (9) takes 3 lots
    of Carol's ask in matching; in the risk phase Dave is liquidated (his bid canceled, his
    liquidation order 12 sells 4 lots to Erin), the fund takes over 5 lots and its unwinding
    order (13) finds no bid."""
    gtt = PlaceOrder(BTC, True, 100, 10, 0, False, 7, 50_000)
    stop = PlaceTrigger(BTC, False, 95, False, 90, 5)
    block1 = _block(
        1,
        [
            (_signed(ALICE, 1, gtt), [_update(5, ALICE, OrderStatus.OPEN, 0, 10, 0, 7)]),
            (_signed(BOB, 1, stop), [TriggerUpdate(BOB, BTC, 6, TriggerStatus.PLACED, 0)]),
            (
                _signed(CAROL, 1, PlaceOrder(BTC, False, 99, 3)),
                [_update(8, CAROL, OrderStatus.OPEN, 0, 3, 0)],
            ),
            (
                _signed(DAVE, 1, PlaceOrder(BTC, True, 50, 1)),
                [_update(10, DAVE, OrderStatus.OPEN, 0, 1, 0)],
            ),
            (
                _signed(ERIN, 1, PlaceOrder(BTC, True, 98, 4)),
                [_update(11, ERIN, OrderStatus.OPEN, 0, 4, 0)],
            ),
        ],
    )
    block2 = _block(
        2,
        prologue=(
            _update(5, ALICE, OrderStatus.CANCELED, OrderReason.EXPIRED, 10, 0, 7),
            TriggerUpdate(BOB, BTC, 6, TriggerStatus.FIRED, 94),
        ),
        matching=(
            _fill(8, 9, CAROL, BOB, False, 99, 3),
            _update(8, CAROL, OrderStatus.FILLED, OrderReason.FILLED, 0, 3),
            _update(9, BOB, OrderStatus.CANCELED, OrderReason.IOC_REMAINDER, 2, 3),
        ),
        settlement=(PositionChanged(BOB, BTC, -3, 0, 0, 0),),
        risk=(
            _update(10, DAVE, OrderStatus.CANCELED, OrderReason.LIQUIDATED, 1, 0),
            AccountLiquidated(DAVE, -5, 40, 1_000_000, 1),
            _fill(11, 12, ERIN, DAVE, False, 98, 4),
            _update(11, ERIN, OrderStatus.FILLED, OrderReason.FILLED, 0, 4),
            _update(12, DAVE, OrderStatus.FILLED, OrderReason.FILLED, 0, 4),
            PositionChanged(DAVE, BTC, 5, 0, 0, 0),
            PositionChanged(FUND, BTC, 5, 0, 0, 0),
            _liquidated(DAVE, 9, 97, 94),
            _update(13, FUND, OrderStatus.CANCELED, OrderReason.IOC_REMAINDER, 5, 0),
        ),
    )
    return [block1, block2]


def test_block_segments_put_the_triggers_orders_before_the_transactions() -> None:
    _, output, _ = _two_blocks()[1]
    phases = [phase for phase, _, _ in block_segments(output)]
    assert phases == [Phase.PROLOGUE, Phase.MATCHING, Phase.SETTLEMENT, Phase.RISK]
    _, output, _ = _two_blocks()[0]
    phases = [phase for phase, _, _ in block_segments(output)]
    assert phases[:2] == [Phase.PROLOGUE, Phase.MATCHING] and phases[-2:] == [
        Phase.SETTLEMENT,
        Phase.RISK,
    ]
    assert phases[2:-2] == [Phase.TRANSACTION] * 5


def test_index_records_orders_of_every_phase(tmp_path: Path) -> None:
    index = NodeIndex(tmp_path / "index")
    state = _state()
    for block, output, decoded in _two_blocks():
        index.add_block(block, output, state, decoded)

    expired = index.order(BTC, 5)
    assert expired is not None
    assert (expired.status, expired.reason) == (OrderStatus.CANCELED, OrderReason.EXPIRED)
    assert (expired.is_buy, expired.price_ticks, expired.height) == (True, 100, 2)
    found = index.order_by_client_id(ALICE, BTC, 7)
    assert found is not None and found[0] == 5 and found[1].status == OrderStatus.CANCELED

    # The trigger's order: side and limit from the trigger Bob placed in block 1.
    fired = index.order(BTC, 9)
    assert fired is not None
    assert (fired.origin, fired.trigger_id, fired.account) == (OrderOrigin.TRIGGER, 6, BOB)
    assert (fired.is_buy, fired.price_ticks) == (False, 90)
    assert (fired.status, fired.remaining_lots, fired.filled_lots) == (
        OrderStatus.CANCELED,
        2,
        3,
    )
    maker = index.order(BTC, 8)
    assert maker is not None and maker.status == OrderStatus.FILLED and maker.filled_lots == 3

    canceled = index.order(BTC, 10)
    assert canceled is not None
    assert (canceled.status, canceled.reason) == (OrderStatus.CANCELED, OrderReason.LIQUIDATED)

    # The liquidation order: the side that closes the long, the bankruptcy price as its limit.
    liquidation = index.order(BTC, 12)
    assert liquidation is not None
    assert (liquidation.origin, liquidation.account) == (OrderOrigin.LIQUIDATION, DAVE)
    assert (liquidation.is_buy, liquidation.price_ticks) == (False, 97)
    assert (liquidation.status, liquidation.filled_lots) == (OrderStatus.FILLED, 4)

    # The fund's unwinding order: no fill, but the side that closes its long and the mark.
    unwind = index.order(BTC, 13)
    assert unwind is not None
    assert (unwind.origin, unwind.account) == (OrderOrigin.INSURANCE_FUND, FUND)
    assert (unwind.is_buy, unwind.price_ticks) == (False, 94)
    assert unwind.status == OrderStatus.CANCELED
    index.close()


def test_index_keeps_a_trigger_across_a_restart_and_forgets_a_canceled_one(
    tmp_path: Path,
) -> None:
    first, second = _two_blocks()
    index = NodeIndex(tmp_path / "index")
    index.add_block(*first[:2], _state(), first[2])
    index.close()
    reopened = NodeIndex(tmp_path / "index")  # the trigger is on disk, not in memory
    reopened.add_block(*second[:2], _state(), second[2])
    fired = reopened.order(BTC, 9)
    assert fired is not None and (fired.is_buy, fired.price_ticks) == (False, 90)
    # A trigger canceled by a dead-man switch leaves nothing behind; an unknown trigger's order
    # still gets a record, its side from its fills.
    block3 = _block(
        3,
        prologue=(
            TriggerUpdate(BOB, BTC, 6, TriggerStatus.CANCELED, 0),
            ScheduledCancelFired(BOB, 2_500, 0, 1),
            TriggerUpdate(CAROL, BTC, 20, TriggerStatus.FIRED, 94),
        ),
        matching=(
            _fill(11, 21, ERIN, CAROL, False, 98, 1),
            _update(21, CAROL, OrderStatus.FILLED, OrderReason.FILLED, 0, 1),
        ),
    )
    reopened.add_block(*block3[:2], _state(), block3[2])
    unknown = reopened.order(BTC, 21)
    assert unknown is not None
    assert (unknown.origin, unknown.trigger_id, unknown.is_buy) == (OrderOrigin.TRIGGER, 20, False)
    assert unknown.price_ticks == 98  # its worst fill, for want of its limit
    reopened.close()


class _Collect(Subscriber):
    def __init__(self, kind: str, key: Any) -> None:
        super().__init__(f"{kind}-{key!r}", kind, key)
        self.messages: list[dict[str, Any]] = []

    def push(self, text: str) -> None:
        self.messages.append(json.loads(text))


def test_feeds_publish_trades_orders_and_events_of_every_phase() -> None:
    feeds = Feeds(MARKETS)
    state = _state()
    feeds.load(state, 0, ())
    trades = _Collect("trades", BTC)
    dave = _Collect("account", DAVE)
    bob = _Collect("account", BOB)
    alice = _Collect("account", ALICE)
    for sub in (trades, dave, bob, alice):
        feeds.add_subscriber(sub)
    block1, block2 = _two_blocks()
    feeds.publish(block1[1], state)
    expiry_only = _block(2, prologue=block2[1].block_events.prologue)[1]
    touched = Feeds(MARKETS)._publish_events(expiry_only, None)
    assert touched == {BTC}  # an expiry alone changes the book
    feeds.publish(block2[1], state)

    # Trades: the trigger's fill (matching) then the liquidation's (risk), in that order.
    last = trades.messages[-1]
    assert last["seq"] == 2
    assert [(t["taker"], t["price"], t["size"]) for t in last["trades"]] == [
        ("0x" + BOB.hex(), "9.9", "0.0003"),
        ("0x" + DAVE.hex(), "9.8", "0.0004"),
    ]
    assert [t["taker_order_id"] for t in feeds.recent_trades(BTC, 10)] == [12, 9]

    # Dave: his canceled bid, his liquidation order and fill, the liquidation events.
    message = dave.messages[-1]
    assert message["seq"] == 2 and message["prev_seq"] == 1
    assert [f["taker_order_id"] for f in message["fills"]] == [12]
    assert [(o["order_id"], o["reason"]) for o in message["orders"]] == [
        (10, "liquidated"),
        (12, "filled"),
    ]
    assert [e["type"] for e in message["events"]] == [
        "account_liquidated",
        "position_changed",
        "position_liquidated",
    ]
    # Bob: the trigger fired (prologue), its order filled (matching), his position (settlement).
    message = bob.messages[-1]
    assert [e["type"] for e in message["events"]] == ["trigger_update", "position_changed"]
    assert message["events"][0]["status"] == "fired"
    assert [(o["order_id"], o["reason"]) for o in message["orders"]] == [(9, "ioc_remainder")]
    # Alice: her order expired in the prologue.
    assert [(o["order_id"], o["reason"]) for o in alice.messages[-1]["orders"]] == [(5, "expired")]


def test_account_messages_rendered_in_the_index_process_are_the_same_and_sent_once() -> None:
    """With ``remote`` (a node with an index process), ``publish`` lists the subscribed
    accounts' messages instead of sending them; what the index process renders from the block
    as it travels there (msgpack) is the same text, and a subscriber that resumed before it came
    back is not sent it twice."""
    state = _state()
    local, remote = Feeds(MARKETS), Feeds(MARKETS)
    remote.remote = True
    subs: dict[str, dict[bytes, _Collect]] = {}
    for name, feeds in (("local", local), ("remote", remote)):
        feeds.load(state, 0, ())
        subs[name] = {a: _Collect("account", a) for a in (ALICE, BOB, DAVE)}
        for sub in subs[name].values():
            feeds.add_subscriber(sub)
    trades = _Collect("trades", BTC)
    remote.add_subscriber(trades)
    decoder = msgspec.msgpack.Decoder(BlockOutput)
    pending = []
    for _, output, _ in _two_blocks():
        local.publish(output, state)
        requests = remote.publish(output, state)
        assert {a for a, _ in requests} <= {ALICE, BOB, DAVE} and requests
        travelled = decoder.decode(msgspec.msgpack.encode(output))
        pending.append(
            (output.header.height, render_account_messages(travelled, MARKETS, requests))
        )
    assert [m["seq"] for m in trades.messages] == [1, 2]  # the other feeds do not wait
    assert all(s.messages == [] for s in subs["remote"].values())

    late = _Collect("account", DAVE)  # resumes from height 1 before block 2's texts arrive
    remote.add_subscriber(late)
    replay = remote.resume("account", DAVE, 1)
    assert replay is not None
    for text in replay:
        late.push(text)
    for height, messages in pending:
        remote.rendered(height, messages)
    for account in (ALICE, BOB, DAVE):
        assert subs["remote"][account].messages == subs["local"][account].messages
        assert subs["remote"][account].messages  # each had a message
    assert late.messages == subs["local"][DAVE].messages[-1:]
    assert remote._awaiting == {}


def test_feeds_rebuild_rings_from_block_events_on_load() -> None:
    """A restarted node rebuilds its trade and account rings from the blocks' events: the
    trigger's and the liquidation's trades are there to resume from."""
    feeds = Feeds(MARKETS)
    outputs = [output for _, output, _ in _two_blocks()]
    feeds.load(_state(), 2, outputs)
    resumed = feeds.resume("trades", BTC, 1)
    assert resumed is not None
    trades = json.loads(resumed[-1])["trades"]
    assert [t["taker_order_id"] for t in trades] == [9, 12]
    fund = feeds.resume("account", FUND, 0)
    assert fund is not None and len(fund) == 1
    fund_message = json.loads(fund[0])
    assert [o["order_id"] for o in fund_message["orders"]] == [13]
    assert [e["type"] for e in fund_message["events"]] == ["position_changed"]


def test_account_feed_shows_margin_mode_and_isolated_margin_moves() -> None:
    """``margin_mode_changed`` and ``isolated_margin_moved`` (receipt events) reach the owner's
    account feed, in order with its position change, and come back from the ring on restart."""
    feeds = Feeds(MARKETS)
    state = _state()
    feeds.load(state, 0, ())
    erin = _Collect("account", ERIN)
    alice = _Collect("account", ALICE)
    feeds.add_subscriber(erin)
    feeds.add_subscriber(alice)
    mode = MarginModeChanged(ERIN, BTC, True)
    moved_in = IsolatedMarginMoved(ERIN, BTC, 400_000_000, -5_000_000_000)
    moved_out = IsolatedMarginMoved(ERIN, BTC, -300_000_000, -5_300_000_000)
    _, first, _ = _block(1, [(_signed(ERIN, 1, SetMarginMode(BTC, True)), [mode])])
    _, second, _ = _block(
        2,
        [
            (_signed(ERIN, 2, MoveIsolatedMargin(BTC, 400_000_000)), [moved_in]),
            (_signed(ERIN, 3, MoveIsolatedMargin(BTC, -300_000_000)), [moved_out]),
        ],
        settlement=(PositionChanged(ERIN, BTC, 1_000, 6_000_000_000, 0, 0, 0),),
    )
    feeds.publish(first, state)
    feeds.publish(second, state)
    assert alice.messages == []
    assert [m["seq"] for m in erin.messages] == [1, 2]
    assert erin.messages[1]["prev_seq"] == 1
    assert erin.messages[0]["events"] == [
        {
            "type": "margin_mode_changed",
            "account": "0x" + ERIN.hex(),
            "market": "BTC-PERP",
            "market_id": BTC,
            "isolated": True,
        }
    ]
    events = erin.messages[1]["events"]
    assert [e["type"] for e in events] == [
        "isolated_margin_moved",
        "isolated_margin_moved",
        "position_changed",
    ]
    assert [(e["amount"], e["cash"]) for e in events[:2]] == [("400", "-5000"), ("-300", "-5300")]

    rebuilt = Feeds(MARKETS)
    rebuilt.load(_state(), 2, [first, second])
    resumed = rebuilt.resume("account", ERIN, 0)
    assert resumed is not None
    assert [json.loads(text) for text in resumed] == erin.messages

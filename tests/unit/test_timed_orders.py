"""Good-til-time expiry, the dead-man switch (ScheduleCancel) and triggers (stop-loss and
take-profit on the mark), on small real chains (rules: ``modules/triggers``)."""

from __future__ import annotations

from strata.core.errors import ErrorCode
from strata.modules import clearing, margin, oracle, triggers
from strata.modules.book import OrderReason, OrderStatus
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.modules.triggers import ScheduledCancelFired, TriggerStatus, TriggerUpdate
from strata.stf.block import BlockOutput
from strata.stf.events import CancelScheduled
from strata.stf.transactions import (
    BulkPlace,
    CancelTrigger,
    PlaceOrder,
    PlaceTrigger,
    ScheduleCancel,
)
from strata.stf.transition import apply_block
from tests.helpers.chain import BLOCK_MS, Chain, make_chain

IOC = 1


def _updates(events: tuple[object, ...] | list[object]) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate)]


def _replays(chain: Chain) -> None:
    """The validator reproduces every block the builder made (from genesis)."""
    fresh = make_chain(tuple(chain.wallets), prices=((1, 500_000), (2, 30_000)))
    for block, output in chain.blocks:
        assert apply_block(fresh.state, block, fresh.params).header == output.header


def test_a_good_til_time_order_is_canceled_by_the_first_block_at_its_time() -> None:
    c = make_chain()
    expires = c.now_ms + 3 * BLOCK_MS
    out = c.block([c.tx("alice", PlaceOrder(1, True, 490_000, 10, expires_at_ms=expires))])
    assert out.receipts[0].status == 0
    reserved = margin.get_reserved(c.state, c.addr("alice"))
    assert reserved > 0
    out = c.block()
    assert not _updates(out.block_events.prologue)
    out = c.block()  # timestamp == expires: the order ends in this block's prologue
    (update,) = _updates(out.block_events.prologue)
    assert update.status == OrderStatus.CANCELED and update.reason == OrderReason.EXPIRED
    assert update.remaining_lots == 10
    assert margin.get_reserved(c.state, c.addr("alice")) == 0
    assert c.state.books[1].get_order(update.order_id) is None
    _replays(c)


def test_an_order_already_expired_is_refused_single_and_in_bulk() -> None:
    c = make_chain()
    past = c.now_ms + BLOCK_MS  # the next block's own timestamp
    single = c.tx("alice", PlaceOrder(1, True, 490_000, 10, expires_at_ms=past))
    bulk = c.tx(
        "bob",
        BulkPlace(
            (
                PlaceOrder(1, True, 490_000, 10, expires_at_ms=past),
                PlaceOrder(1, True, 489_000, 10, expires_at_ms=past + 1),
            )
        ),
    )
    out = c.block([single, bulk])
    assert out.receipts[0].status == ErrorCode.ORDER_EXPIRED
    bulk_updates = _updates(out.receipts[1].events)
    assert [u.status for u in bulk_updates] == [OrderStatus.REJECTED, OrderStatus.OPEN]
    assert bulk_updates[0].reason == OrderReason.EXPIRED
    assert len(c.state.books[1]) == 1


def test_a_modify_keeps_the_expiry_of_the_order_it_replaces() -> None:
    from strata.stf.transactions import ModifyOrder

    c = make_chain()
    expires = c.now_ms + 4 * BLOCK_MS
    c.block([c.tx("alice", PlaceOrder(1, True, 490_000, 10, client_id=5, expires_at_ms=expires))])
    out = c.block([c.tx("alice", ModifyOrder(1, None, 5, True, 491_000, 12))])
    assert out.receipts[0].status == 0
    (order,) = c.state.books[1].orders_of(c.addr("alice"))
    assert order.expires_at_ms == expires and order.price_ticks == 491_000
    c.block()
    out = c.block()
    assert [u.reason for u in _updates(out.block_events.prologue)] == [OrderReason.EXPIRED]
    assert len(c.state.books[1]) == 0


def test_the_dead_man_switch_cancels_everything_unless_renewed() -> None:
    c = make_chain()
    alice = c.addr("alice")
    at = c.now_ms + BLOCK_MS + 5_000
    out = c.block(
        [
            c.tx("alice", ScheduleCancel(at)),
            c.tx("alice", PlaceOrder(1, True, 490_000, 10)),
            c.tx("alice", PlaceOrder(2, False, 31_000, 100)),
            c.tx("alice", PlaceTrigger(1, False, 480_000, False, 470_000, 10)),
        ]
    )
    assert [r.status for r in out.receipts] == [0, 0, 0, 0]
    assert out.receipts[0].events == (CancelScheduled(alice, at),)
    # Renewed before it fires: nothing happens at the old time.
    renewed = at + 2_000
    c.block([c.tx("alice", ScheduleCancel(renewed))])
    while c.now_ms + BLOCK_MS < renewed:
        out = c.block()
        assert not any(isinstance(e, ScheduledCancelFired) for e in out.block_events.prologue)
    assert len(c.state.books[1]) == 1 and len(c.state.books[2]) == 1
    out = c.block()  # the first block at the renewed time
    fired = [e for e in out.block_events.prologue if isinstance(e, ScheduledCancelFired)]
    assert fired == [ScheduledCancelFired(alice, renewed, 2, 1)]
    reasons = {u.reason for u in _updates(out.block_events.prologue)}
    assert reasons == {OrderReason.SCHEDULED_CANCEL}
    assert len(c.state.books[1]) == 0 and len(c.state.books[2]) == 0
    assert triggers.get_triggers(c.state, alice) == ()
    assert triggers.get_cancel_schedule(c.state, alice) is None
    assert margin.get_reserved(c.state, alice) == 0
    _replays(c)


def test_a_schedule_too_soon_is_refused_and_none_clears_it() -> None:
    c = make_chain()
    alice = c.addr("alice")
    too_soon = c.now_ms + BLOCK_MS + 4_999
    out = c.block([c.tx("alice", ScheduleCancel(too_soon))])
    assert out.receipts[0].status == ErrorCode.SCHEDULE_TOO_SOON
    c.block([c.tx("alice", ScheduleCancel(c.now_ms + 60_000))])
    assert triggers.get_cancel_schedule(c.state, alice) is not None
    c.block([c.tx("alice", ScheduleCancel(None))])
    assert triggers.get_cancel_schedule(c.state, alice) is None
    assert c.state.tables["schedules_count"].data[b""] == 0


def _long_with_stop(c: Chain) -> int:
    """alice long 10 lots at 500_000 from bob; a stop-loss selling at mark <= 490_000; carol
    bids 485_000 for it. Returns the trigger id (its transaction's nonce)."""
    c.block(
        [
            c.tx("bob", PlaceOrder(1, False, 500_000, 10)),
            c.tx("alice", PlaceOrder(1, True, 500_000, 10, IOC)),
            c.tx("carol", PlaceOrder(1, True, 485_000, 10)),
        ]
    )
    nonce = c.nonce()
    out = c.block([c.tx("alice", PlaceTrigger(1, False, 490_000, False, 480_000, 10), nonce)])
    assert out.receipts[0].events == (
        TriggerUpdate(c.addr("alice"), 1, nonce, TriggerStatus.PLACED, 0),
    )
    return nonce


def test_a_stop_loss_fires_on_the_mark_and_its_order_matches_first() -> None:
    c = make_chain()
    alice = c.addr("alice")
    trigger_id = _long_with_stop(c)
    out = c.block([], [c.price(1, 495_000)])
    assert not any(isinstance(e, TriggerUpdate) for e in out.block_events.prologue)
    out = c.block([], [c.price(1, 489_000)])
    fired = [e for e in out.block_events.prologue if isinstance(e, TriggerUpdate)]
    assert len(fired) == 1 and fired[0].status == TriggerStatus.FIRED
    assert fired[0].trigger_id == trigger_id and fired[0].mark_ticks <= 490_000
    fills = [e for e in out.block_events.matching if isinstance(e, FillEvent)]
    assert [(f.taker, f.price_ticks, f.size_lots) for f in fills] == [(alice, 485_000, 10)]
    assert clearing.get_position_size(c.state, alice, 1) == 0
    assert triggers.get_triggers(c.state, alice) == ()
    _replays(c)


def test_a_take_profit_on_a_flat_position_is_rejected_reduce_only() -> None:
    c = make_chain()
    alice = c.addr("alice")
    c.block([c.tx("alice", PlaceTrigger(1, False, 505_000, True, 500_000, 10))])
    out = c.block([], [c.price(1, 506_000)])
    (update,) = _updates(out.block_events.matching)
    assert update.status == OrderStatus.REJECTED and update.reason == OrderReason.REDUCE_ONLY
    assert triggers.get_triggers(c.state, alice) == ()


def test_cancel_trigger_and_unknown_trigger() -> None:
    c = make_chain()
    alice = c.addr("alice")
    trigger_id = _long_with_stop(c)
    out = c.block([c.tx("alice", CancelTrigger(1, trigger_id + 1))])
    assert out.receipts[0].status == ErrorCode.UNKNOWN_TRIGGER
    out = c.block([c.tx("alice", CancelTrigger(1, trigger_id))])
    assert out.receipts[0].status == 0
    assert triggers.get_triggers(c.state, alice) == ()
    out = c.block([], [c.price(1, 480_000)])
    assert not out.block_events.matching
    assert clearing.get_position_size(c.state, alice, 1) == 10


def test_too_many_triggers_in_one_market() -> None:
    c = make_chain()
    limit = 50  # BTC's max_open_orders_per_account
    txs = [
        c.tx("alice", PlaceTrigger(1, False, 400_000 + i, False, 1, 1)) for i in range(limit + 1)
    ]
    out = c.block(txs)
    statuses = [r.status for r in out.receipts]
    assert statuses[:limit] == [0] * limit
    assert statuses[limit] == ErrorCode.TOO_MANY_TRIGGERS


def test_a_trigger_does_not_fire_while_the_index_is_stale() -> None:
    c = make_chain()
    alice = c.addr("alice")
    _long_with_stop(c)
    c.block([], [c.price(1, 495_000)])
    # No fresh price for longer than the staleness bound: the index goes stale.
    for _ in range(c.params.oracle_staleness_ms // BLOCK_MS + 1):
        c.block()
    assert oracle.is_stale(c.state, 1)
    # A trigger whose condition holds at the (frozen) mark does not fire while stale...
    c.block([c.tx("alice", PlaceTrigger(1, False, 496_000, False, 1, 5))])
    out = c.block()
    assert not any(isinstance(e, TriggerUpdate) for e in out.block_events.prologue)
    assert len(triggers.get_triggers(c.state, alice)) == 2
    # ...and the first fresh price fires both.
    out = c.block([], [c.price(1, 489_000)])
    assert not oracle.is_stale(c.state, 1)
    fired = [e for e in out.block_events.prologue if isinstance(e, TriggerUpdate)]
    assert [e.status for e in fired] == [TriggerStatus.FIRED] * 2
    assert clearing.get_position_size(c.state, alice, 1) == 0


def test_block_output_carries_the_matching_events() -> None:
    out: BlockOutput = make_chain().block()
    assert out.block_events.matching == ()

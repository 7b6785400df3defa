"""The prologue's order steps: good-til-time expiry, the dead-man switch, and triggers.

The rules are in ``modules/triggers`` (its docstring is the spec). These steps run after the
prices and funding of the prologue, so triggers see the block's mark.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata.modules import margin, oracle, triggers
from strata.modules.book import Book, Order, OrderReason, OrderStatus
from strata.modules.clearing.events import OrderUpdate
from strata.modules.clearing.matching import PlaceOp
from strata.modules.triggers import ScheduledCancelFired, TriggerStatus, TriggerUpdate
from strata.state.store import State
from strata.stf.events import Event


def release_canceled(
    state: State, market_id: int, book: Book, order: Order, reason: OrderReason
) -> OrderUpdate:
    """An order that left ``book`` outside matching: mark it for the state root, give its
    reservation back to its owner, and say so."""
    book.dirty.add(order.order_id)
    if order.reserved_quote:
        margin.add_reserved(state, order.owner, -order.reserved_quote)
    return OrderUpdate(
        market_id,
        order.order_id,
        order.owner,
        OrderStatus.CANCELED,
        reason,
        order.size_lots,
        0,
        order.client_id,
    )


def cancel_account_orders(
    state: State, account: bytes, market_ids: Sequence[int], reason: OrderReason
) -> list[OrderUpdate]:
    """Cancel every open order of ``account``, market by market, ascending by order id."""
    updates: list[OrderUpdate] = []
    for market_id in market_ids:
        book: Book = state.books[market_id]
        for order in book.orders_of(account):
            book.cancel(order.order_id)
            updates.append(release_canceled(state, market_id, book, order, reason))
    return updates


def apply_expiries(state: State, timestamp_ms: int, market_ids: Sequence[int]) -> list[Event]:
    """Step 1: cancel the good-til-time orders whose time has come."""
    events: list[Event] = []
    for market_id in market_ids:
        book: Book = state.books[market_id]
        for order in book.pop_expired(timestamp_ms):
            events.append(release_canceled(state, market_id, book, order, OrderReason.EXPIRED))
    return events


def apply_schedules(state: State, timestamp_ms: int, market_ids: Sequence[int]) -> list[Event]:
    """Step 2: the dead-man switches that are due."""
    events: list[Event] = []
    for account, at_ms in triggers.get_due_schedules(state, timestamp_ms):
        canceled = cancel_account_orders(state, account, market_ids, OrderReason.SCHEDULED_CANCEL)
        held = triggers.get_triggers(state, account)
        triggers.set_triggers(state, account, ())
        triggers.set_cancel_schedule(state, account, None)
        events.extend(canceled)
        events.extend(
            TriggerUpdate(account, t.market_id, t.trigger_id, TriggerStatus.CANCELED, 0)
            for t in held
        )
        events.append(ScheduledCancelFired(account, at_ms, len(canceled), len(held)))
    return events


def apply_triggers(
    state: State, market_ids: Sequence[int]
) -> tuple[list[Event], dict[int, list[PlaceOp]]]:
    """Step 3: fire the triggers whose condition holds at the block's marks. Returns the events
    and, per market, the reduce-only orders to match first (ascending by trigger id; their
    ``tx_index`` is set by the caller)."""
    marks: dict[int, int] = {}
    for market_id in market_ids:
        mark = oracle.get_mark_price(state, market_id)
        if mark is not None and not oracle.is_stale(state, market_id):
            marks[market_id] = mark
    fired: dict[int, list[tuple[int, bytes, triggers.Trigger]]] = {}
    events: list[Event] = []
    for account in triggers.get_trigger_accounts(state):
        held = triggers.get_triggers(state, account)
        kept = []
        for t in held:
            mark_now = marks.get(t.market_id)
            if mark_now is not None and triggers.is_triggered(t, mark_now):
                fired.setdefault(t.market_id, []).append((t.trigger_id, account, t))
                events.append(
                    TriggerUpdate(account, t.market_id, t.trigger_id, TriggerStatus.FIRED, mark_now)
                )
            else:
                kept.append(t)
        if len(kept) != len(held):
            triggers.set_triggers(state, account, tuple(kept))
    places: dict[int, list[PlaceOp]] = {}
    for market_id, entries in fired.items():
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        places[market_id] = [
            PlaceOp(
                0, account, market_id, t.is_buy, t.price_ticks, t.size_lots, t.tif, True, None, 0
            )
            for _, account, t in entries
        ]
    return events, places


__all__ = [
    "apply_expiries",
    "apply_schedules",
    "apply_triggers",
    "cancel_account_orders",
    "release_canceled",
]

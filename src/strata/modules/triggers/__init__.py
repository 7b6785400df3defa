"""Triggers and the dead-man switch: orders the prologue places or cancels by itself.

=====================  ======  ====================  ===========================================
table                  prefix  key                   value
=====================  ======  ====================  ===========================================
``triggers``           0xA0    address (20 bytes)    tuple of :class:`Trigger`, by (market, id)
``trigger_accounts``   0xA1    (a ``state.registry`` over 0xA1-0xA3) accounts with a trigger
``cancel_schedule``    0xA4    address (20 bytes)    the time (ms) of the account's dead-man switch
``schedules``          0xA5    (a ``state.registry`` over 0xA5-0xA7) accounts with a schedule
=====================  ======  ====================  ===========================================

Rules (the prologue, after prices and funding, runs them in this order)
-----------------------------------------------------------------------
1. **Expiry**: in each market, ascending, resting orders whose ``expires_at_ms`` is at or before
   the block's timestamp are canceled (reason ``EXPIRED``), ascending by order id.
2. **Dead-man switch**: accounts whose scheduled time is at or before the block's timestamp,
   ascending by address, lose every open order (reason ``SCHEDULED_CANCEL``) and every trigger;
   their schedule is cleared (:class:`ScheduledCancelFired`).
3. **Triggers**: every trigger whose condition holds at the block's mark (``mark >= trigger``
   for ``trigger_above``, ``mark <= trigger`` otherwise) in a market whose index is fresh fires:
   it leaves the state (:class:`TriggerUpdate` ``FIRED``) and its reduce-only order joins the
   block's matching in that market, before the transactions' placements, ascending by trigger
   id. Its events are ``BlockEvents.matching``.

A trigger's id comes from its market's order sequence when it is placed. An account holds at
most ``max_open_orders_per_account`` triggers per market (``TOO_MANY_TRIGGERS``).
"""

from __future__ import annotations

from enum import IntEnum

from strata.modules.triggers.records import ScheduledCancelFired as ScheduledCancelFired
from strata.modules.triggers.records import Trigger as Trigger
from strata.modules.triggers.records import TriggerUpdate as TriggerUpdate
from strata.state.registry import (
    register_registry,
    registry_add,
    registry_members,
    registry_remove,
)
from strata.state.store import BYTES_KEY, State, Table

TRIGGER_ACCOUNTS = "trigger_accounts"
SCHEDULES = "schedules"


class TriggerStatus(IntEnum):
    PLACED = 0
    FIRED = 1
    CANCELED = 2
    """By ``CancelTrigger`` or the dead-man switch."""


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("triggers", 0xA0, j, BYTES_KEY, tuple[Trigger, ...]))
    register_registry(state, TRIGGER_ACCOUNTS, 0xA1, BYTES_KEY, bytes)
    state.add_table(Table("cancel_schedule", 0xA4, j, BYTES_KEY, int))
    register_registry(state, SCHEDULES, 0xA5, BYTES_KEY, bytes)


# ------------------------------------------------------------------------------ triggers


def get_triggers(state: State, account: bytes) -> tuple[Trigger, ...]:
    """The account's triggers, ascending by (market, trigger id)."""
    triggers: tuple[Trigger, ...] | None = state.tables["triggers"].data.get(account)
    return () if triggers is None else triggers


def set_triggers(state: State, account: bytes, triggers: tuple[Trigger, ...]) -> None:
    """Store the account's triggers (sorted here), keeping the registry of accounts with one."""
    table = state.tables["triggers"]
    if triggers:
        table.put(account, tuple(sorted(triggers, key=_trigger_key)))
        registry_add(state, TRIGGER_ACCOUNTS, account)
    elif account in table.data:
        table.delete(account)
        registry_remove(state, TRIGGER_ACCOUNTS, account)


def _trigger_key(trigger: Trigger) -> tuple[int, int]:
    return trigger.market_id, trigger.trigger_id


def get_trigger_accounts(state: State) -> list[bytes]:
    """Accounts holding at least one trigger, ascending by address."""
    return sorted(registry_members(state, TRIGGER_ACCOUNTS))


def is_triggered(trigger: Trigger, mark_ticks: int) -> bool:
    """Whether ``trigger`` fires at ``mark_ticks``."""
    if trigger.trigger_above:
        return mark_ticks >= trigger.trigger_price_ticks
    return mark_ticks <= trigger.trigger_price_ticks


# ------------------------------------------------------------------------- dead-man switch


def get_cancel_schedule(state: State, account: bytes) -> int | None:
    """The time of the account's dead-man switch, or ``None``."""
    at_ms: int | None = state.tables["cancel_schedule"].data.get(account)
    return at_ms


def set_cancel_schedule(state: State, account: bytes, at_ms: int | None) -> None:
    table = state.tables["cancel_schedule"]
    if at_ms is None:
        if account in table.data:
            table.delete(account)
            registry_remove(state, SCHEDULES, account)
        return
    table.put(account, at_ms)
    registry_add(state, SCHEDULES, account)


def get_due_schedules(state: State, timestamp_ms: int) -> list[tuple[bytes, int]]:
    """``(account, at_ms)`` of every schedule due at ``timestamp_ms``, ascending by address."""
    table = state.tables["cancel_schedule"].data
    due = []
    for account in registry_members(state, SCHEDULES):
        at_ms: int = table[account]
        if at_ms <= timestamp_ms:
            due.append((account, at_ms))
    due.sort()
    return due

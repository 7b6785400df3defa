"""Events of account actions and system inputs; matching events live in ``clearing.events``.

Every state change emits a typed event. Events are committed in the receipts root and are the only
source of feeds and indexes.
"""

from __future__ import annotations

import msgspec

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


class AgentApproved(msgspec.Struct, frozen=True, array_like=True, tag=1):
    account: bytes
    public_key: bytes
    valid_until_ms: int


class AgentRevoked(msgspec.Struct, frozen=True, array_like=True, tag=2):
    account: bytes
    public_key: bytes


class Transferred(msgspec.Struct, frozen=True, array_like=True, tag=3):
    sender: bytes
    recipient: bytes
    amount_quote: int


class WithdrawalRequested(msgspec.Struct, frozen=True, array_like=True, tag=4):
    withdrawal_id: int
    account: bytes
    destination: bytes
    amount_quote: int


class Deposited(msgspec.Struct, frozen=True, array_like=True, tag=5):
    index: int
    account: bytes
    amount_quote: int


class OraclePriceUpdated(msgspec.Struct, frozen=True, array_like=True, tag=6):
    """An oracle key's submission was accepted (it counts towards the index of this block)."""

    market_id: int
    price_ticks: int
    timestamp_ms: int
    signer: bytes


class CancelScheduled(msgspec.Struct, frozen=True, array_like=True, tag=29):
    """An account set (``at_ms``) or cleared (``None``) its dead-man switch."""

    account: bytes
    at_ms: int | None


class MarginModeChanged(msgspec.Struct, frozen=True, array_like=True, tag=30):
    """An account now trades ``market_id`` isolated (``isolated``) or cross."""

    account: bytes
    market_id: int
    isolated: bool


class IsolatedMarginMoved(msgspec.Struct, frozen=True, array_like=True, tag=31):
    """Quote moved into (positive) or out of an isolated position; ``cash_quote`` after."""

    account: bytes
    market_id: int
    amount_quote: int
    cash_quote: int


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class FeeCharged(msgspec.Struct, frozen=True, gc=False, array_like=True, tag=7):
    """Gas fee paid by a transaction's account."""

    account: bytes
    fee_quote: int


Event = (
    AgentApproved
    | AgentRevoked
    | Transferred
    | WithdrawalRequested
    | Deposited
    | OraclePriceUpdated
    | FeeCharged
    | OrderUpdate
    | FillEvent
    | PositionChanged
    | OracleStale
    | OracleFresh
    | FundingTick
    | AccountLiquidated
    | PositionLiquidated
    | Deleveraged
    | FundDeleveraged
    | BadDebtChanged
    | TriggerUpdate
    | ScheduledCancelFired
    | CancelScheduled
    | MarginModeChanged
    | IsolatedMarginMoved
)

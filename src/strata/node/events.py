"""A committed block's events in the order they happened (ring 2: what feeds and indexes read).

``BlockOutput`` keeps the events of a block in five places: the receipts (one per transaction)
and the four lists of ``BlockEvents``. ``stf/transition.py`` (``_execute``) runs them as:

1. **prologue**: deposits, oracle, funding, then expiries and dead-man switches (``OrderUpdate``
   ``EXPIRED``/``SCHEDULED_CANCEL``) and fired triggers (``TriggerUpdate``);
2. admission (the receipts' own events: fees, refusals with order id 0, triggers placed or
   canceled, schedules, margin modes changed and isolated margin moved), which touches no
   order id;
3. **matching**, market by market: the transactions' cancels, then the fired triggers' orders
   (``BlockEvents.matching``), then the transactions' placements (the receipts);
4. **settlement** (``PositionChanged``);
5. **risk**: liquidations, the insurance fund's unwinding, bad debt.

A transaction's cancel never meets a trigger order (the trigger orders are placed after it), so
reading the matching list before the receipts gives every order and every market its events in
the order they happened: :func:`block_segments` returns prologue, matching, receipts (in block
order), settlement, risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from strata.stf.block import BlockOutput, Receipt
from strata.stf.events import Event


class Phase(Enum):
    PROLOGUE = "prologue"
    MATCHING = "matching"
    TRANSACTION = "transaction"
    SETTLEMENT = "settlement"
    RISK = "risk"


Segment = tuple[Phase, Receipt | None, Sequence[Event]]


def block_segments(output: BlockOutput) -> list[Segment]:
    """The block's events as ``(phase, receipt or None, events)``, in the order they happened
    (see the module docstring)."""
    block_events = output.block_events
    segments: list[Segment] = [
        (Phase.PROLOGUE, None, block_events.prologue),
        (Phase.MATCHING, None, block_events.matching),
    ]
    segments.extend((Phase.TRANSACTION, receipt, receipt.events) for receipt in output.receipts)
    segments.append((Phase.SETTLEMENT, None, block_events.settlement))
    segments.append((Phase.RISK, None, block_events.risk))
    return segments


__all__ = ["Phase", "Segment", "block_segments"]

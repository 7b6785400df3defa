"""``strata explain``: the story of an account's liquidations, told from the risk events alone.

Input: the risk events of blocks (``BlockEvents.risk``) in height order, from a node's chain
database or a scenario's blocks, and the markets' listings (for symbols and ``quote_per_tick_lot``).
Nothing else is read: every figure printed is a field of an event, or arithmetic on fields of the
same event, so the story is exactly what the chain committed to in its receipts root.

A liquidation of the account (an ``AccountLiquidated`` event) is followed, in the same block, by
its ``PositionLiquidated`` slices, the ``FillEvent``s of its book orders, the ``Deleveraged``
events of its auto-deleveraging and its ``BadDebtChanged``; the account may also appear as the
*counterparty* of someone else's deleveraging, which is told too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.core.units import PPM
from strata.modules.clearing.events import FillEvent
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    PositionLiquidated,
)
from strata.modules.markets import Market
from strata.stf.events import Event

USDC = 1_000_000


def usdc(quote: int) -> str:
    """Quote units as a USDC string with six decimals trimmed to two (display only)."""
    sign = "-" if quote < 0 else ""
    whole, rest = divmod(abs(quote), USDC)
    return f"{sign}{whole:,}.{rest * 100 // USDC:02d}"


@dataclass
class Liquidation:
    """One liquidation of the account, with everything its block's events say about it."""

    height: int
    account: AccountLiquidated
    slices: list[PositionLiquidated] = field(default_factory=list)
    fills: list[FillEvent] = field(default_factory=list)
    deleveraged: list[Deleveraged] = field(default_factory=list)
    bad_debt: list[BadDebtChanged] = field(default_factory=list)


@dataclass
class Story:
    """Everything the events say about one account up to a height."""

    account: bytes
    up_to_height: int
    liquidations: list[Liquidation] = field(default_factory=list)
    deleveraged_as_counterparty: list[tuple[int, Deleveraged]] = field(default_factory=list)


def collect_story(
    account: bytes, blocks: Iterable[tuple[int, Sequence[Event]]], up_to_height: int
) -> Story:
    """Gather the account's liquidation events from ``(height, risk events)`` pairs."""
    story = Story(account, up_to_height)
    for height, events in blocks:
        if height > up_to_height:
            break
        current: Liquidation | None = None
        for event in events:
            if isinstance(event, AccountLiquidated):
                current = Liquidation(height, event) if event.account == account else None
                if current is not None:
                    story.liquidations.append(current)
            elif isinstance(event, Deleveraged):
                if event.account == account and current is not None:
                    current.deleveraged.append(event)
                elif event.counterparty == account:
                    story.deleveraged_as_counterparty.append((height, event))
            elif current is None:
                continue
            elif isinstance(event, PositionLiquidated) and event.account == account:
                current.slices.append(event)
            elif isinstance(event, FillEvent) and event.taker == account:
                current.fills.append(event)
            elif isinstance(event, BadDebtChanged) and event.account == account:
                current.bad_debt.append(event)
    return story


def _why_not_backstop(s: PositionLiquidated, account: bytes) -> str:
    if account == INSURANCE_FUND_ACCOUNT:
        return "the insurance fund itself is never backstopped"
    rest_share = s.equity_share_quote * s.adl_lots // s.slice_lots
    loss = max(0, -rest_share)
    if loss > s.fund_loss_limit_quote:
        return (
            f"the fund's loss {usdc(loss)} would pass the per-account limit left "
            f"{usdc(s.fund_loss_limit_quote)} (insurance_max_loss_per_account_quote)"
        )
    return (
        "the insurance fund's limits left no room (its equity must stay at or above its initial "
        "requirement and its notional within insurance_max_leverage_ppm of its equity, and it "
        "never adds to a position it is losing on)"
    )


def render_story(story: Story, markets: Mapping[int, Market], name_of: Any = None) -> str:
    """The story as text (one paragraph per liquidation)."""

    def who(address: bytes) -> str:
        label = "0x" + address.hex()
        if address == INSURANCE_FUND_ACCOUNT:
            return "the insurance fund"
        named = name_of(address) if name_of is not None else None
        return f"{named} ({label})" if named and named != label else label

    def symbol(market_id: int) -> str:
        market = markets.get(market_id)
        return market.symbol if market is not None else f"market {market_id}"

    lines = [f"account {who(story.account)}, up to height {story.up_to_height}"]
    if not story.liquidations and not story.deleveraged_as_counterparty:
        lines.append("  no liquidation and no auto-deleveraging in these blocks")
    for n, liq in enumerate(story.liquidations, 1):
        a = liq.account
        ratio = a.equity_quote * PPM // a.maintenance_quote if a.maintenance_quote else 0
        lines.append("")
        lines.append(f"liquidation {n}, block {liq.height}")
        lines.append(
            f"  why: equity {usdc(a.equity_quote)} USDC < maintenance "
            f"{usdc(a.maintenance_quote)} USDC (health {ratio / 10_000:.2f}% of maintenance)"
        )
        if a.equity_quote <= 0:
            how = "all of every position (equity not positive)"
        elif a.close_ppm == PPM:
            how = "all of every position (restoring maintenance needed more than half)"
        else:
            how = (
                f"{a.close_ppm / 10_000:.2f}% of every position (twice what restores "
                "maintenance at the mark, at least liquidation_min_close_ppm)"
            )
        lines.append(f"  close: {how}; {a.orders_canceled} open order(s) canceled")
        for s in liq.slices:
            market = markets.get(s.market_id)
            qptl = market.quote_per_tick_lot if market is not None else 1
            side = "long" if s.size_before_lots > 0 else "short"
            lines.append(
                f"  {symbol(s.market_id)}: {side} {abs(s.size_before_lots):,} lots at mark "
                f"{s.mark_ticks:,} (index {s.index_ticks:,}) ticks"
            )
            budget_lots = s.budget_quote // (s.mark_ticks * qptl) if s.mark_ticks else 0
            limited = (
                f"; the market's per-block notional limit left {usdc(s.budget_quote)} USDC "
                f"({budget_lots:,} lots), so {s.wanted_lots - s.slice_lots:,} lots wait"
                if s.slice_lots < s.wanted_lots
                else ""
            )
            lines.append(
                f"    slice: wanted {s.wanted_lots:,} lots, closed {s.slice_lots:,}{limited}"
            )
            if not s.slice_lots:
                continue
            bankruptcy = s.bankruptcy_value_quote * 10 // (s.slice_lots * qptl)
            lines.append(
                f"    equity share {usdc(s.equity_share_quote)} USDC -> bankruptcy value "
                f"{usdc(s.bankruptcy_value_quote)} USDC (about {bankruptcy // 10:,}."
                f"{bankruptcy % 10} ticks a lot; book limit "
                f"{s.limit_price_ticks or 'none: no price respects it'})"
            )
            if s.book_lots:
                prices = sorted({f.price_ticks for f in liq.fills if f.market_id == s.market_id})
                shown = ", ".join(f"{p:,}" for p in prices[:6]) + (
                    " ..." if len(prices) > 6 else ""
                )
                lines.append(
                    f"    book: {s.book_lots:,} lots for {usdc(s.book_value_quote)} USDC "
                    f"(fills at {shown}); fee {usdc(s.fee_quote)} USDC to the insurance fund"
                )
            else:
                lines.append("    book: nothing within the bankruptcy price")
            if s.backstop_lots:
                lines.append(
                    f"    backstop: the insurance fund took {s.backstop_lots:,} lots for "
                    f"{usdc(s.backstop_value_quote)} USDC, its loss {usdc(s.fund_loss_quote)} "
                    f"(limit left {usdc(s.fund_loss_limit_quote)})"
                )
            if s.adl_lots:
                lines.append(
                    f"    auto-deleveraging: {s.adl_lots:,} lots for {usdc(s.adl_value_quote)} "
                    f"USDC, because {_why_not_backstop(s, story.account)}"
                )
                for d in liq.deleveraged:
                    if d.market_id == s.market_id:
                        lines.append(
                            f"      rank {d.rank} (key {d.rank_key:,}): {who(d.counterparty)} "
                            f"closed {d.size_lots:,} lots for {usdc(d.value_quote)} USDC"
                        )
        for b in liq.bad_debt:
            lines.append(
                f"  bad debt: the fund covered {usdc(b.covered_by_fund_quote)} USDC, "
                f"{usdc(b.recorded_quote)} USDC recorded (chain total {usdc(b.total_quote)}); "
                "withdrawals are gated while it is outstanding"
            )
    if story.deleveraged_as_counterparty:
        lines.append("")
        lines.append("deleveraged as a counterparty (ranked by profit x leverage)")
        for height, d in story.deleveraged_as_counterparty:
            lines.append(
                f"  block {height}: {symbol(d.market_id)} rank {d.rank} (key {d.rank_key:,}): "
                f"closed {d.size_lots:,} lots against {who(d.account)} for "
                f"{usdc(d.value_quote)} USDC (its bankruptcy value)"
            )
    return "\n".join(lines)


def story_to_json(story: Story) -> dict[str, object]:
    """The story as plain data (``--json``): the events' fields, addresses in hex."""

    def fields(event: Any) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in event.__struct_fields__:
            value = getattr(event, name)
            out[name] = "0x" + value.hex() if isinstance(value, bytes) else value
        return out

    return {
        "account": "0x" + story.account.hex(),
        "up_to_height": story.up_to_height,
        "liquidations": [
            {
                "height": liq.height,
                "account": fields(liq.account),
                "slices": [fields(s) for s in liq.slices],
                "fills": [fields(f) for f in liq.fills],
                "deleveraged": [fields(d) for d in liq.deleveraged],
                "bad_debt": [fields(b) for b in liq.bad_debt],
            }
            for liq in story.liquidations
        ],
        "deleveraged_as_counterparty": [
            {"height": h, **fields(d)} for h, d in story.deleveraged_as_counterparty
        ],
    }

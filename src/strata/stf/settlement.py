"""The settlement phase's step for one account: fills, fees, reservation releases and credits.

The risk phase (``stf/risk.py``) settles the fills of liquidation orders with the same step.
"""

from __future__ import annotations

from typing import Final

from strata.modules import clearing, collateral, funding, liquidation, margin
from strata.modules.clearing.events import PositionChanged
from strata.modules.clearing.matching import AccountDelta
from strata.modules.margin import Position
from strata.state.store import State
from strata.stf.events import Event

# Compiled, a ``Final`` name is a C variable, not a lookup in the module's globals at each use.
_POSITION_CHANGED: Final = PositionChanged


def process_settlement(
    state: State,
    account: bytes,
    delta: AccountDelta | None,
    credit_quote: int,
    quote_per_tick_lot: dict[int, int],
) -> list[Event]:
    """Apply one account's fills (market by market), fees, releases and credits. Before its
    first fill in a market, the position settles its funding (``funding.settle_position_funding``)
    so fills always apply to a position settled at the market's index now. An isolated position
    that grew is topped up to its initial requirement from the balance (``modules/collateral``;
    the orders that grew it reserved that margin)."""
    events: list[Event] = []
    if delta is not None and delta.fills:
        fills = delta.fills
        i = 0
        n = len(fills)
        volume = 0
        while i < n:
            market_id = fills[i][0]
            qptl = quote_per_tick_lot[market_id]
            position = clearing.get_position(state, account, market_id)
            size_before = abs(position.size_lots)
            position, funding_paid = funding.settle_position_funding(state, account, position)
            realized = fees = cash = 0
            # The fills apply to the position's figures one after another (one record at the end).
            size = position.size_lots
            cost = position.entry_cost_quote
            while i < n and fills[i][0] == market_id:
                _, is_buy, price, qty, fee = fills[i]
                notional = price * qty * qptl
                size, cost, pnl = clearing.compute_trade(size, cost, is_buy, qty, notional)
                cash += (-notional if is_buy else notional) - fee  # a buyer pays, a seller is paid
                realized += pnl
                fees += fee
                volume += notional
                i += 1
            position = clearing.compute_traded_position(position, size, cost)
            # The market's fills move the position's cash and the fee pool once, by their sums
            # (the same totals as fill by fill: nothing reads them in between).
            collateral.add_position_cash(state, account, market_id, cash)
            clearing.add_fee_pool(state, fees)
            clearing.set_position(state, account, position)
            if abs(position.size_lots) > size_before and collateral.is_isolated(
                state, account, market_id
            ):
                _top_up_isolated(state, account, position)
            events.append(
                _POSITION_CHANGED(
                    account,
                    market_id,
                    position.size_lots,
                    position.entry_cost_quote,
                    realized,
                    fees,
                    funding_paid,
                )
            )
        clearing.add_volume(state, account, volume)
    if delta is not None and delta.release_quote:
        margin.add_reserved(state, account, -delta.release_quote)
    if credit_quote:
        collateral.add_balance(state, account, credit_quote)
    return events


def _top_up_isolated(state: State, account: bytes, position: Position) -> None:
    risk = liquidation.compute_isolated_risk(
        state,
        account,
        position,
        liquidation.market_risk_params(state),
    )
    need = risk.initial_quote - risk.equity_quote
    if need > 0:
        collateral.move_isolated_cash(state, account, position.market_id, need)

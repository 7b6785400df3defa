"""The risk phase: liquidations, the backstop, auto-deleveraging and bad debt.

The rules are stated in ``modules/liquidation`` (its docstring is the spec); this file runs them
in order after the settlement phase. Everything reads the marks and funding indexes the prologue
set, which nothing in the block changes afterwards.

Order: candidates ascending by ``equity * 1e6 // maintenance`` then address (then market, for
isolated positions); each candidate's positions ascending by market id; then the insurance fund
is deleveraged if it holds too much for its equity; then it unwinds what it holds (ascending
market id); then it repays recorded bad debt. Liquidation orders and the fund's unwinding
match against the books as the settlement phase left them, and their fills settle at once
(``stf/settlement.py``), so each candidate sees what the ones before it did.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata.core.units import PPM, compute_ppm_ceil, div_ceil
from strata.modules import clearing, collateral, funding, liquidation, margin, markets, oracle
from strata.modules.book import OrderReason, TimeInForce
from strata.modules.clearing import FeeTier
from strata.modules.clearing.events import PositionChanged
from strata.modules.clearing.matching import (
    AccountDelta,
    MarketWork,
    PlaceOp,
    process_market_matching,
)
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    FundDeleveraged,
    PositionLiquidated,
)
from strata.modules.margin import AccountRisk, MarketRiskParams, Position
from strata.modules.markets import Market
from strata.state.store import State
from strata.stf.events import Event
from strata.stf.params import ChainParams
from strata.stf.settlement import process_settlement
from strata.stf.timed import cancel_account_orders

FUND = INSURANCE_FUND_ACCOUNT


def process_risk(state: State, params: ChainParams, market_ids: Sequence[int]) -> list[Event]:
    """Run the risk phase of a block; returns its events (``BlockEvents.risk``)."""
    return _RiskPhase(state, params, market_ids).run()


class _RiskPhase:
    """Working data of one block's risk phase (never part of the state)."""

    def __init__(self, state: State, params: ChainParams, market_ids: Sequence[int]) -> None:
        self.state = state
        self.params = params
        self.market_ids = market_ids
        self.risk_params: dict[int, MarketRiskParams] = {
            m: liquidation.get_market_risk_params(state, m) for m in market_ids
        }
        self.markets: dict[int, Market] = {}
        for m in market_ids:
            market = markets.get_market(state, m)
            assert market is not None
            self.markets[m] = market
        self.stale = {m for m in market_ids if oracle.is_stale(state, m)}
        self.budget = dict.fromkeys(market_ids, params.liquidation_max_notional_per_block_quote)
        # Liquidation orders pay no taker fee, and their makers get no rebate (the fee pool
        # must never pay out more than it took).
        self.tiers = tuple(
            FeeTier(t.min_volume_quote, max(t.maker_ppm, 0), 0) for t in params.fee_tiers
        )
        self.adl_ranking: dict[tuple[int, bool], list[object]] = {}
        """Per (market, side deleveraged): ``[ranking, cursor]`` (see :meth:`deleverage`)."""
        self.events: list[Event] = []

    # ------------------------------------------------------------------ figures

    def holders(self) -> list[tuple[bytes, tuple[Position, ...]]]:
        """Every account with a position and its positions, in the registry's index order
        (``clearing``: read key by key, so a fraud proof can show none was skipped)."""
        state = self.state
        return [
            (account, clearing.get_positions(state, account))
            for account in clearing.get_holders(state)
        ]

    def account_risk(self, account: bytes) -> AccountRisk:
        """The account's cross-margin figures now."""
        return liquidation.compute_cross_risk(self.state, account, self.risk_params.__getitem__)

    def position_risk(self, account: bytes, market_id: int, isolated: bool) -> AccountRisk:
        """The figures that margin the account's position in ``market_id``: the isolated
        position's own, or the cross account's."""
        if not isolated:
            return self.account_risk(account)
        position = clearing.get_position(self.state, account, market_id)
        return liquidation.compute_isolated_risk(
            self.state, account, position, self.risk_params.__getitem__
        )

    def notional(self, positions: Sequence[Position]) -> int:
        total = 0
        for p in positions:
            mp = self.risk_params[p.market_id]
            total += abs(p.size_lots) * mp.mark_ticks * mp.quote_per_tick_lot
        return total

    def fund_free(self) -> int:
        """The fund's equity beyond its maintenance requirement (what it can pay out)."""
        risk = self.account_risk(FUND)
        return risk.equity_quote - risk.maintenance_quote

    # ------------------------------------------------------------------ the phase

    def run(self) -> list[Event]:
        state = self.state
        candidates: list[tuple[int, bytes, int]] = []
        get_params = self.risk_params.__getitem__
        for account, positions in self.holders():
            cross, isolated = liquidation.split_positions(state, account, positions)
            if cross:
                risk = margin.compute_account_risk(
                    collateral.get_balance(state, account),
                    0,  # reservations count in neither equity nor maintenance
                    cross,
                    get_params,
                )
                if risk.equity_quote < risk.maintenance_quote:
                    ratio = risk.equity_quote * PPM // risk.maintenance_quote
                    candidates.append((ratio, account, -1))
            for position in isolated:
                risk = liquidation.compute_isolated_risk(state, account, position, get_params)
                if risk.equity_quote < risk.maintenance_quote:
                    ratio = risk.equity_quote * PPM // risk.maintenance_quote
                    candidates.append((ratio, account, position.market_id))
        candidates.sort()
        for _, account, market_id in candidates:
            if market_id < 0:
                self.liquidate(account)
            else:
                self.liquidate_isolated(account, market_id)
        self.derisk_fund()
        self.unwind_fund()
        self.repay_bad_debt()
        return self.events

    def derisk_fund(self) -> None:
        """The fund's own stops, at the mark, against the most profitable opposite positions:

        1. a position whose unrealized loss passes ``insurance_stop_loss_ppm`` of the fund's
           equity (10%) is auto-deleveraged whole (the fund does not ride a squeeze);
        2. then, when the fund's notional passes ``insurance_deleverage_leverage_ppm`` of its
           equity (2x), or its equity is gone, every position is auto-deleveraged in proportion
           down to ``insurance_max_leverage_ppm`` (1x).

        A fund left with no position and a negative balance has bad debt. The per-block
        liquidation budget does not hold a stop back: it limits what liquidations put on the
        book, and a stop closes off the book, at the mark."""
        state = self.state
        params = self.params
        positions = [
            p for p in clearing.get_positions(state, FUND) if p.market_id not in self.stale
        ]
        if not positions:
            return
        equity = self.account_risk(FUND).equity_quote
        stop = max(0, equity) * params.insurance_stop_loss_ppm // PPM
        kept = []
        for position in positions:
            mp = self.risk_params[position.market_id]
            owed = margin.compute_funding_owed(
                position.size_lots, mp.funding_index_micro, position.funding_index_micro
            )
            value = position.size_lots * mp.mark_ticks * mp.quote_per_tick_lot
            if value - position.entry_cost_quote - owed < -stop:
                notional = abs(value)
                self.events.append(FundDeleveraged(equity, notional, 0, PPM, position.market_id))
                self.close_fund_at_mark(position, PPM)
            else:
                kept.append(position)
        if not kept:
            self.settle_bad_debt(FUND)
            return
        equity = self.account_risk(FUND).equity_quote
        notional = self.notional(kept)
        if equity > 0 and notional * PPM <= equity * params.insurance_deleverage_leverage_ppm:
            return
        target = max(0, equity) * params.insurance_max_leverage_ppm // PPM
        close_ppm = min(PPM, div_ceil((notional - target) * PPM, notional))
        self.events.append(FundDeleveraged(equity, notional, target, close_ppm, None))
        for position in kept:
            self.close_fund_at_mark(position, close_ppm)
        self.settle_bad_debt(FUND)

    def close_fund_at_mark(self, position: Position, close_ppm: int) -> None:
        """Auto-deleverage ``close_ppm`` of one of the fund's positions at the mark."""
        market_id = position.market_id
        mp = self.risk_params[market_id]
        lots = div_ceil(abs(position.size_lots) * close_ppm, PPM)
        value = lots * mp.mark_ticks * mp.quote_per_tick_lot
        self.deleverage(FUND, market_id, position.size_lots > 0, lots, value)
        index = oracle.get_index_price(self.state, market_id)
        self.events.append(
            PositionLiquidated(
                FUND,
                market_id,
                mp.mark_ticks,
                0 if index is None else index,
                position.size_lots,
                lots,
                self.budget[market_id],
                lots,
                0,  # at the mark: no equity share is given away
                value,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                lots,
                value,
            )
        )

    def liquidate(self, account: bytes) -> None:
        state = self.state
        positions, _ = liquidation.split_positions(
            state, account, clearing.get_positions(state, account)
        )
        fresh = [p for p in positions if p.market_id not in self.stale]
        if not fresh:
            return  # frozen: every position is in a market with a stale index
        risk = self.account_risk(account)
        equity = risk.equity_quote
        maintenance = risk.maintenance_quote
        if equity >= maintenance:
            return  # restored by what earlier liquidations in this block did
        canceled = self.cancel_orders(account)
        close_ppm = liquidation.compute_close_ppm(
            equity, maintenance, self.params.liquidation_min_close_ppm
        )
        self.events.append(AccountLiquidated(account, equity, maintenance, close_ppm, canceled))
        fund_allowance = self.params.insurance_max_loss_per_account_quote
        # What the slices of later positions will take of the equity at most (so that a
        # liquidation fee never eats into it: see close_slice).
        shares = [
            div_ceil(max(0, equity) * self.position_maintenance(p), maintenance) for p in fresh
        ]
        for n, position in enumerate(fresh):
            fund_allowance -= self.close_slice(
                account,
                position,
                equity,
                maintenance,
                close_ppm,
                fund_allowance,
                False,
                sum(shares[n + 1 :]),
            )
        self.settle_bad_debt(account)

    def position_maintenance(self, position: Position) -> int:
        mp = self.risk_params[position.market_id]
        notional = abs(position.size_lots) * mp.mark_ticks * mp.quote_per_tick_lot
        return mp.maintenance_requirement(notional)

    def liquidate_isolated(self, account: bytes, market_id: int) -> None:
        """An isolated position under its own maintenance: liquidated alone."""
        if market_id in self.stale:
            return  # frozen
        position = clearing.get_position(self.state, account, market_id)
        if not position.size_lots:
            return
        risk = self.position_risk(account, market_id, True)
        equity = risk.equity_quote
        maintenance = risk.maintenance_quote
        if equity >= maintenance:
            return
        canceled = cancel_account_orders(self.state, account, (market_id,), OrderReason.LIQUIDATED)
        self.events.extend(canceled)
        close_ppm = liquidation.compute_close_ppm(
            equity, maintenance, self.params.liquidation_min_close_ppm
        )
        self.events.append(
            AccountLiquidated(account, equity, maintenance, close_ppm, len(canceled), market_id)
        )
        self.close_slice(
            account,
            position,
            equity,
            maintenance,
            close_ppm,
            self.params.insurance_max_loss_per_account_quote,
            True,
        )
        self.settle_bad_debt(account)

    def cancel_orders(self, account: bytes) -> int:
        """Cancel every open order of ``account`` (reason ``LIQUIDATED``); returns how many."""
        canceled = cancel_account_orders(
            self.state, account, self.market_ids, OrderReason.LIQUIDATED
        )
        self.events.extend(canceled)
        return len(canceled)

    def close_slice(
        self,
        account: bytes,
        position: Position,
        equity: int,
        maintenance: int,
        close_ppm: int,
        fund_allowance: int,
        isolated: bool,
        later_shares: int = 0,
    ) -> int:
        """Close one position's slice: book, then backstop or ADL. Returns the fund's loss.
        ``equity`` and ``maintenance`` are the figures that margin the position (the isolated
        position's own when ``isolated``); ``later_shares`` bounds the equity the slices of the
        account's later positions will take. The liquidation fee is capped so that the equity
        left after it covers what the rest of this slice and those later slices will take at
        their bankruptcy values: a fee never turns a solvent liquidation into bad debt."""
        market_id = position.market_id
        mp = self.risk_params[market_id]
        mark = mp.mark_ticks
        qptl = mp.quote_per_tick_lot
        is_long = position.size_lots > 0
        size = abs(position.size_lots)
        per_lot = mark * qptl
        wanted = div_ceil(size * close_ppm, PPM)
        budget = self.budget[market_id]
        lots = min(wanted, budget // per_lot)
        share = value = limit = 0
        book_lots = book_value = fee = 0
        backstop_lots = backstop_value = fund_loss = adl_lots = adl_value = 0
        if lots:
            self.budget[market_id] = budget - lots * per_lot
            share = liquidation.compute_equity_share(
                equity,
                self.position_maintenance(position),
                maintenance,
                lots,
                size,
            )
            value = liquidation.compute_bankruptcy_value(is_long, lots, mark, qptl, share)
            limit = liquidation.compute_limit_price(
                is_long, lots, value, qptl, self.markets[market_id].max_price_ticks
            )
            if limit:
                book_lots, book_value = self.take_from_book(
                    account, market_id, not is_long, limit, lots
                )
            if book_lots:
                fee = compute_ppm_ceil(book_value, self.params.liquidation_fee_ppm)
                left = self.position_risk(account, market_id, isolated).equity_quote
                rest_share = share * (lots - book_lots) // lots
                fee = min(fee, max(0, left - max(0, rest_share) - later_shares))
                if fee:
                    collateral.add_position_cash(self.state, account, market_id, -fee)
                    collateral.add_insurance_fund(self.state, fee)
            rest = lots - book_lots
            if rest:
                rest_share = share * rest // lots
                taken = taken_share = 0
                if account != FUND:
                    taken = self.fund_capacity(market_id, is_long, rest, rest_share, fund_allowance)
                if taken:
                    taken_share = rest_share * taken // rest
                    backstop_value = liquidation.compute_bankruptcy_value(
                        is_long, taken, mark, qptl, taken_share
                    )
                    at_mark = taken * mark * qptl
                    self.transfer(account, FUND, market_id, is_long, taken, backstop_value, at_mark)
                    backstop_lots, fund_loss = taken, max(0, -taken_share)
                left = rest - taken
                if left:
                    adl_value = liquidation.compute_bankruptcy_value(
                        is_long, left, mark, qptl, rest_share - taken_share
                    )
                    self.deleverage(account, market_id, is_long, left, adl_value)
                    adl_lots = left
        index = oracle.get_index_price(self.state, market_id)
        self.events.append(
            PositionLiquidated(
                account,
                market_id,
                mark,
                0 if index is None else index,
                position.size_lots,
                wanted,
                budget,
                lots,
                share,
                value,
                limit,
                book_lots,
                book_value,
                fee,
                backstop_lots,
                backstop_value,
                fund_loss,
                fund_allowance,
                adl_lots,
                adl_value,
            )
        )
        return fund_loss

    def take_from_book(
        self, account: bytes, market_id: int, is_buy: bool, limit_ticks: int, lots: int
    ) -> tuple[int, int]:
        """A reduce-only IOC order of ``account`` limited at ``limit_ticks``; its fills and its
        makers' settle at once. Returns ``(lots filled, quote value of the fills)``."""
        state = self.state
        market = self.markets[market_id]
        op = PlaceOp(
            0, account, market_id, is_buy, limit_ticks, lots, TimeInForce.IOC, True, None, 0
        )
        deltas: dict[bytes, AccountDelta] = {}
        sink: list[Event] = []
        process_market_matching(
            state,
            market,
            state.books[market_id],
            (),
            (op,),
            self.tiers,
            (sink,),
            deltas,
            [MarketWork()],
        )
        self.events.extend(sink)
        filled = value = 0
        own = deltas.get(account)
        if own is not None:
            qptl = market.quote_per_tick_lot
            for _, _, price, qty, _ in own.fills:
                filled += qty
                value += price * qty * qptl
        qptl_of = {market_id: market.quote_per_tick_lot}
        for owner in sorted(deltas):
            self.events.extend(process_settlement(state, owner, deltas[owner], 0, qptl_of))
        return filled, value

    def fund_capacity(
        self, market_id: int, is_long: bool, lots: int, share: int, allowance: int
    ) -> int:
        """How many of ``lots`` (the side of a long if ``is_long``, whose equity share is
        ``share``) the fund takes over: all of them if it can, else the largest number found by
        bisection for which its loss (the negative part of their share) stays within
        ``allowance``, its equity at or above its *initial* requirement, and its notional within
        ``insurance_max_leverage_ppm`` of its equity, so that a price that keeps moving after a
        takeover cannot drain it at once. It takes nothing that would add to a position of the
        same side it is losing on (no averaging down into a squeeze). The rest is
        auto-deleveraged."""
        risk = self.account_risk(FUND)
        mp = self.risk_params[market_id]
        per_lot = mp.mark_ticks * mp.quote_per_tick_lot
        held = clearing.get_position(self.state, FUND, market_id)
        size = held.size_lots
        if size and (size > 0) == is_long:
            owed = margin.compute_funding_owed(
                size, mp.funding_index_micro, held.funding_index_micro
            )
            if size * per_lot - held.entry_cost_quote - owed < 0:
                return 0  # the fund never adds to a position it is losing on
        initial_other = risk.initial_quote - mp.initial_requirement(abs(size) * per_lot)
        notional_other = self.notional(clearing.get_positions(self.state, FUND)) - (
            abs(size) * per_lot
        )
        leverage_ppm = self.params.insurance_max_leverage_ppm

        def fits(k: int) -> bool:
            part = share * k // lots
            if -part > allowance:
                return False
            after = abs(size + (k if is_long else -k)) * per_lot
            equity = risk.equity_quote + part
            return (
                equity >= initial_other + mp.initial_requirement(after)
                and (notional_other + after) * PPM <= equity * leverage_ppm
            )

        if fits(lots):
            return lots
        low, high = 0, lots  # fits(high) is false; low is the best found
        while high - low > 1:
            middle = (low + high) // 2
            if fits(middle):
                low = middle
            else:
                high = middle
        return low if low and fits(low) else 0

    def transfer(
        self,
        seller_of_side: bytes,
        taker: bytes,
        market_id: int,
        is_long: bool,
        lots: int,
        value_quote: int,
        taker_basis_quote: int | None = None,
    ) -> None:
        """Move ``lots`` of a position from ``seller_of_side`` (long if ``is_long``) to ``taker``
        at ``value_quote`` in all: the closing side trades against the taking side, each settling
        its funding first. ``taker_basis_quote``, if given, is the taker's cost basis for the
        lots instead of the value (the fund's takeovers are booked at the mark, the difference
        realized at once, so its positions' PnL tracks the market from the takeover on)."""
        state = self.state
        for account, is_buy in ((seller_of_side, not is_long), (taker, is_long)):
            position = clearing.get_position(state, account, market_id)
            position, paid = funding.settle_position_funding(state, account, position)
            basis = value_quote
            if account == taker and taker_basis_quote is not None:
                basis = taker_basis_quote
            position, realized = clearing.compute_trade_on_position(position, is_buy, lots, basis)
            # What the basis leaves out is realized now: paid above it, or received below it.
            realized += (basis - value_quote) if is_buy else (value_quote - basis)
            collateral.add_position_cash(
                state, account, market_id, -value_quote if is_buy else value_quote
            )
            clearing.set_position(state, account, position)
            self.events.append(
                PositionChanged(
                    account,
                    market_id,
                    position.size_lots,
                    position.entry_cost_quote,
                    realized,
                    0,
                    paid,
                )
            )

    def ranking(self, market_id: int, want_short: bool) -> list[tuple[int, bytes]]:
        """``(-key, account)`` of every position on one side of a market, highest key first,
        then by address (computed at the block's first deleveraging in that market and side,
        and kept for the block: see :meth:`deleverage`; sizes are read fresh when used)."""
        mp = self.risk_params[market_id]
        ranked: list[tuple[int, bytes]] = []
        for account, positions in self.holders():
            for p in positions:
                if p.market_id == market_id and (p.size_lots < 0) == want_short:
                    value = p.size_lots * mp.mark_ticks * mp.quote_per_tick_lot
                    owed = margin.compute_funding_owed(
                        p.size_lots, mp.funding_index_micro, p.funding_index_micro
                    )
                    if collateral.is_isolated(self.state, account, market_id):
                        notional = self.notional((p,))
                        equity = self.position_risk(account, market_id, True).equity_quote
                    else:
                        cross, _ = liquidation.split_positions(self.state, account, positions)
                        notional = self.notional(cross)
                        equity = self.account_risk(account).equity_quote
                    key = liquidation.compute_adl_key(
                        value - p.entry_cost_quote - owed, p.entry_cost_quote, notional, equity
                    )
                    ranked.append((-key, account))
                    break
        ranked.sort()
        return ranked

    def deleverage(
        self, account: bytes, market_id: int, is_long: bool, lots: int, value_quote: int
    ) -> None:
        """Close ``lots`` of ``account``'s position against the highest-ranked opposite positions
        at ``value_quote`` in all, shared per lot (cumulative rounding, so the parts sum up).

        The walk through a market side's ranking goes on where the block's previous deleveraging
        there stopped: a position passed over (used up, or empty when reached) is not revisited,
        so the phase stays linear in the number of positions. If the walk reaches the end before
        the lots are covered (positions opened in this block after the ranking was made), the side
        is ranked again from the positions now."""
        done = 0
        paid = 0
        side = (market_id, is_long)
        while done < lots:
            entry = self.adl_ranking.get(side)
            fresh = entry is None
            if entry is None:
                entry = self.adl_ranking[side] = [self.ranking(market_id, is_long), 0]
            ranked: list[tuple[int, bytes]] = entry[0]  # type: ignore[assignment]
            cursor: int = entry[1]  # type: ignore[assignment]
            while cursor < len(ranked) and done < lots:
                neg_key, counterparty = ranked[cursor]
                size = clearing.get_position_size(self.state, counterparty, market_id)
                available = 0 if counterparty == account else (-size if is_long else size)
                if available <= 0:
                    cursor += 1
                    continue
                take = min(available, lots - done)
                done += take
                part = value_quote * done // lots - paid
                paid += part
                self.transfer(account, counterparty, market_id, is_long, take, part)
                self.events.append(
                    Deleveraged(account, counterparty, market_id, take, part, cursor, -neg_key)
                )
                # A counterparty closed out of its last position at a loss has bad debt too.
                self.settle_bad_debt(counterparty)
                if take == available:
                    cursor += 1
            entry[1] = cursor
            if done < lots:
                # Positions net to zero in every market: a fresh ranking always covers the rest.
                assert not fresh, "opposite positions cannot cover a deleveraging"
                del self.adl_ranking[side]

    def settle_bad_debt(self, account: bytes) -> None:
        """An account left without positions and with a negative balance: the fund covers what
        its free collateral allows; the rest is recorded as bad debt."""
        state = self.state
        if clearing.get_positions(state, account):
            return
        balance = collateral.get_balance(state, account)
        if balance >= 0:
            return
        debt = -balance
        cover = 0 if account == FUND else min(debt, max(0, self.fund_free()))
        if cover:
            collateral.add_insurance_fund(state, -cover)
        recorded = debt - cover
        collateral.add_balance(state, account, debt)
        total = (
            liquidation.add_bad_debt(state, recorded)
            if recorded
            else liquidation.get_bad_debt(state)
        )
        self.events.append(BadDebtChanged(account, cover, recorded, total))

    def unwind_fund(self) -> None:
        """The fund sells what it holds to the book at the mark or better (reduce-only IOC)."""
        for position in clearing.get_positions(self.state, FUND):
            market_id = position.market_id
            if market_id in self.stale:
                continue
            mark = self.risk_params[market_id].mark_ticks
            size = position.size_lots
            self.take_from_book(FUND, market_id, size < 0, mark, abs(size))

    def repay_bad_debt(self) -> None:
        state = self.state
        debt = liquidation.get_bad_debt(state)
        if debt <= 0:
            return
        pay = min(debt, max(0, self.fund_free()))
        if pay:
            collateral.add_insurance_fund(state, -pay)
            total = liquidation.add_bad_debt(state, -pay)
            self.events.append(BadDebtChanged(FUND, pay, -pay, total))

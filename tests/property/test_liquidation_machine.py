"""A Hypothesis state machine that drives accounts into liquidation and checks the risk phase.

Accounts lever up close to the initial-margin limit (a market maker, ``mm``, takes the other
side), the oracle moves by several percent a block (the index moves at most 5%), the maker
quotes around the mark so that liquidations find a book, and the insurance fund is sometimes
capitalized. Two markets: LIQ (10% / 5%: book liquidations, partial slices) and HI (2% / 1%:
a 5% move bankrupts a fully levered account, so backstops and auto-deleveraging happen). After
every block (``seal``):

- builder and validator agree (``apply_block`` on a copy of the pre-state), and so do a state
  that follows the chain with market-sharded matching, both markets in worker processes, and
  one that builds it as a node with ``commit_process`` does (each block executed unsealed, its
  root computed by a commitment process while the next block executes; ``tests/helpers/
  pipelined.py``);
- conservation: ``sum(balances) + fee pool + funding in transit - bad debt == deposited -
  withdrawn``; bad debt >= 0;
- positions net to zero per market; open interest equals the sum of long positions; the holders
  registry equals the set of accounts with a position; reservations equal the resting orders';
- every ``AccountLiquidated`` account was below maintenance at the block's marks when the risk
  phase began (the block replayed with the risk phase switched off gives that state);
- every ``Deleveraged`` counterparty held an opposite position of at least the size it closed
  just before (an account with no position never shares a loss);
- liquidation fills never beyond the slice's limit price (and they add up to ``book_lots`` and
  ``book_value_quote``); the fund's unwinding fills at the mark or better;
- per slice: ``book + backstop + adl == slice <= wanted``, the slice fits the market's budget,
  the fund's loss fits its limit; a liquidated account left without position is not negative;
- withdrawals fail with ``WITHDRAWALS_GATED`` exactly while bad debt is recorded.

``test_liquidations_happen`` runs a fixed seed and asserts that liquidations, book fills,
backstops and deleveraging all occurred, so the checks cannot pass vacuously.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from strata.client.signing import wallet_from_seed
from strata.core.errors import ErrorCode
from strata.exec.commitment import CommitmentProcess
from strata.exec.parallel import ShardedMatching
from strata.modules import clearing, collateral, funding, liquidation, margin, oracle
from strata.modules.book import TimeInForce
from strata.modules.clearing.events import FillEvent, PositionChanged
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT as FUND
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    FundDeleveraged,
    PositionLiquidated,
)
from strata.modules.markets import Market
from strata.state.store import State
from strata.stf import transition
from strata.stf.block import Block, BlockOutput
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis
from strata.stf.params import ChainParams
from strata.stf.transactions import (
    Action,
    CancelAll,
    PlaceOrder,
    SystemInput,
    Transfer,
    Withdraw,
)
from strata.stf.transition import apply_block, copy_state, get_account_risk
from tests.helpers.chain import BLOCK_MS, CHAIN_ID, GENESIS_MS, Chain
from tests.helpers.interpreted import interpreted_copy
from tests.helpers.pipelined import PipelinedFollower, empty_tree
from tests.helpers.sharded import ShardedFollower, run_sharded
from tests.spec.generate_vectors import HI, LIQ

PPM = 1_000_000
TRADERS = ("t0", "t1", "t2", "t3")
MM = "mm"
TRADER_QUOTE = 300_000
MM_QUOTE = 10**12
HI2 = msgspec.structs.replace(HI, market_id=2, symbol="HI2-PERP")
MARKETS: tuple[Market, ...] = (LIQ, HI2)
TAKER_PPM = 400

STATS: Counter[str] = Counter()
"""What the runs exercised, summed over examples (read by ``test_liquidations_happen``)."""


def make_liquidation_chain(**overrides: object) -> Chain:
    names = (*TRADERS, MM)
    wallets = {name: wallet_from_seed(name) for name in names}
    oracle_wallet = wallet_from_seed("oracle")
    params = ChainParams(
        chain_id=CHAIN_ID,
        oracle_keys=(oracle_wallet.address,),
        funding_interval_ms=1_000,
        funding_interest_ppm=300,
        **overrides,  # type: ignore[arg-type]
    )
    allocations = [Allocation(wallets[n].address, TRADER_QUOTE) for n in TRADERS]
    allocations.append(Allocation(wallets[MM].address, MM_QUOTE))
    config = GenesisConfig(
        params=params,
        timestamp_ms=GENESIS_MS,
        markets=MARKETS,
        allocations=tuple(allocations),
        prices=tuple(InitialPrice(m.market_id, 10_000) for m in MARKETS),
    )
    state, _ = make_genesis(config)
    return Chain(state, params, wallets, oracle_wallet)


_TRANSITION = interpreted_copy(transition)
"""``stf/transition.py`` run interpreted, so that its risk phase can be switched off."""


@contextmanager
def risk_phase_off() -> Iterator[Callable[..., tuple[Block, BlockOutput]]]:
    """``build_block`` without the risk phase (the state the risk phase starts from)."""
    with mock.patch.object(_TRANSITION, "process_risk", lambda *args: []):
        yield _TRANSITION.build_block


def market_of(market_id: int) -> Market:
    return MARKETS[market_id - 1]


class LiquidationMachine(RuleBasedStateMachine):
    sharded: ShardedMatching | None = None
    """Set by the tests: the executor the follower state uses (shared by every example)."""
    pipelined: CommitmentProcess | None = None
    """Set by the tests: the commitment process a second follower seals its blocks with (shared
    by every example, reloaded with each example's genesis)."""

    def __init__(self) -> None:
        super().__init__()
        self.chain = make_liquidation_chain(
            liquidation_max_notional_per_block_quote=8_000_000,
            insurance_max_loss_per_account_quote=20_000,
        )
        self.follower = (
            None if self.sharded is None else ShardedFollower(self.sharded, self.chain.state)
        )
        self.pipelined_follower = (
            None if self.pipelined is None else PipelinedFollower(self.pipelined, self.chain.state)
        )
        self.pending: list[tuple[bytes, Action]] = []
        self.system: list[SystemInput] = []
        self.deposited = TRADER_QUOTE * len(TRADERS) + MM_QUOTE
        self.withdrawn = 0
        self.sealing = False

    # ------------------------------------------------------------------ helpers

    def _add(self, who: str, action: Action) -> None:
        self.pending.append((self.chain.tx(who, action), action))
        if len(self.pending) >= 8:
            self.seal()

    def _mark(self, market_id: int) -> int:
        mark = oracle.get_mark_price(self.chain.state, market_id)
        assert mark is not None
        return mark

    # ------------------------------------------------------------------ setup

    @initialize(fund=st.integers(0, 3))
    def setup(self, fund: int) -> None:
        """The fund is capitalized (1 in 4 runs without capital, so ADL happens)."""
        if fund:
            self._add(MM, Transfer(FUND, fund * 150_000))
        STATS["runs"] += 1
        STATS[f"fund capital {fund}"] += 1

    # ------------------------------------------------------------------ rules

    @rule(
        who=st.sampled_from(TRADERS),
        market_id=st.sampled_from((1, 2)),
        is_buy=st.booleans(),
        use_pct=st.integers(50, 99),
    )
    def lever_up(self, who: str, market_id: int, is_buy: bool, use_pct: int) -> None:
        """``who`` takes a position using ``use_pct``% of its free collateral; ``mm`` rests the
        other side at the mark just before."""
        state = self.chain.state
        mark = self._mark(market_id)
        market = market_of(market_id)
        free = get_account_risk(state, self.chain.addr(who)).free_collateral_quote
        per_lot = mark * market.quote_per_tick_lot * (market.initial_margin_ppm + TAKER_PPM)
        size = free * use_pct // 100 * PPM // per_lot
        if size <= 0:
            return
        self._add(MM, PlaceOrder(market_id, not is_buy, mark, size, TimeInForce.GTC))
        self._add(who, PlaceOrder(market_id, is_buy, mark, size, TimeInForce.IOC))

    @rule(
        market_id=st.sampled_from((1, 2)),
        bid_steps=st.integers(1, 40),
        ask_steps=st.integers(1, 40),
        size=st.integers(1, 400),
    )
    def mm_quotes(self, market_id: int, bid_steps: int, ask_steps: int, size: int) -> None:
        """The maker rests a bid and an ask ``steps`` ticks of 0.1% away from the mark."""
        mark = self._mark(market_id)
        step = max(1, mark // 1_000)
        self._add(MM, PlaceOrder(market_id, True, max(1, mark - bid_steps * step), size))
        self._add(MM, PlaceOrder(market_id, False, mark + ask_steps * step, size))

    @rule(who=st.sampled_from((*TRADERS, MM)))
    def cancel_all(self, who: str) -> None:
        self._add(who, CancelAll(None))

    @rule(
        who=st.sampled_from(TRADERS),
        market_id=st.sampled_from((1, 2)),
        reduce=st.booleans(),
        pct=st.integers(10, 100),
    )
    def close_some(self, who: str, market_id: int, reduce: bool, pct: int) -> None:
        """A reduce-only IOC at a wide price: closes against whatever the book has."""
        size = clearing.get_position_size(self.chain.state, self.chain.addr(who), market_id)
        lots = abs(size) * pct // 100
        if not lots:
            return
        mark = self._mark(market_id)
        price = mark * 9 // 10 if size > 0 else mark * 11 // 10
        self._add(who, PlaceOrder(market_id, size < 0, price, lots, TimeInForce.IOC, reduce))

    @rule(amount=st.integers(10_000, 300_000))
    def fund_insurance(self, amount: int) -> None:
        self._add(MM, Transfer(FUND, amount))

    @rule(who=st.sampled_from(TRADERS), amount=st.integers(1, 50_000))
    def withdraw(self, who: str, amount: int) -> None:
        self._add(who, Withdraw(amount, b"\x11" * 20))

    @rule(
        moves=st.lists(
            st.tuples(st.sampled_from((1, 2)), st.integers(-70, 70)), min_size=1, max_size=4
        )
    )
    def move_oracle(self, moves: list[tuple[int, int]]) -> None:
        """One block per move (with whatever is pending): prices move by up to 7% a block
        (the index follows by at most 5%)."""
        for market_id, per_mille in moves:
            self.system = [s for s in self.system if getattr(s, "market_id", None) != market_id]
            mark = self._mark(market_id)
            price = max(1, mark + mark * per_mille // 1000)
            self.system.append(self.chain.price(market_id, price))
            self.seal()

    # ------------------------------------------------------------------ sealing

    @rule()
    def seal(self) -> None:
        chain = self.chain
        self.sealing = True
        pre = copy_state(chain.state)
        txs = [data for data, _ in self.pending]
        before_risk = copy_state(pre)  # the state the risk phase starts from
        with risk_phase_off() as build_without_risk:
            _, before_risk_output = build_without_risk(
                before_risk, chain.now_ms + BLOCK_MS, self.system, txs, chain.params
            )
        output = chain.block(txs, self.system)
        block, _ = chain.blocks[-1]
        validated = apply_block(copy_state(pre), block, chain.params)
        assert validated.header == output.header
        assert validated.receipts == output.receipts
        assert validated.block_events == output.block_events
        assert before_risk_output.receipts == output.receipts
        if self.follower is not None:
            self.follower.follow(block, chain.params, output)
        if self.pipelined_follower is not None:
            self.pipelined_follower.follow(block, chain.params, output)

        self._check_withdrawals(pre, output)
        self._check_risk_events(before_risk, output)
        self.withdrawn += sum(w.amount_quote for w in output.withdrawals)
        self.pending = []
        self.system = []
        self.sealing = False

    def _check_withdrawals(self, pre: State, output: BlockOutput) -> None:
        gated = liquidation.get_bad_debt(pre) > 0
        assert len(output.receipts) == len(self.pending)  # every fresh transaction is included
        for (_, action), receipt in zip(self.pending, output.receipts, strict=True):
            if isinstance(action, Withdraw):
                if gated:
                    assert receipt.status == ErrorCode.WITHDRAWALS_GATED
                    event("withdrawal gated")
                else:
                    assert receipt.status != ErrorCode.WITHDRAWALS_GATED

    def _check_risk_events(self, before: State, output: BlockOutput) -> None:
        """The risk phase's events against the state it started from (see the module doc)."""
        state = self.chain.state
        risk_params = {
            m.market_id: liquidation.get_market_risk_params(before, m.market_id) for m in MARKETS
        }
        sizes: dict[tuple[bytes, int], int] = {}
        previous: dict[tuple[bytes, int], int] = {}

        def size(account: bytes, market_id: int) -> int:
            key = (account, market_id)
            if key not in sizes:
                sizes[key] = clearing.get_position_size(before, account, market_id)
            return sizes[key]

        fills: list[FillEvent] = []
        liquidated: list[bytes] = []
        fund_stop = False  # after a FundDeleveraged: the fund's slices are its stops, at the mark
        for e in output.block_events.risk:
            if isinstance(e, FundDeleveraged):
                fund_stop = True
                STATS["fund deleveraged"] += 1
                event("fund deleveraged")
            elif isinstance(e, AccountLiquidated) or (
                isinstance(e, PositionLiquidated) and e.account != FUND
            ):
                fund_stop = False
            if isinstance(e, AccountLiquidated):
                risk = margin.compute_account_risk(
                    collateral.get_balance(before, e.account),
                    0,
                    clearing.get_positions(before, e.account),
                    risk_params.__getitem__,
                )
                assert risk.equity_quote < risk.maintenance_quote, (e, risk)
                assert e.equity_quote < e.maintenance_quote
                liquidated.append(e.account)
                fills = []
                STATS["account liquidated"] += 1
                event("account liquidated")
                if e.account == FUND:
                    STATS["fund liquidated"] += 1
                    event("fund liquidated")
            elif isinstance(e, FillEvent):
                fills.append(e)
            elif isinstance(e, PositionChanged):
                key = (e.account, e.market_id)
                previous[key] = size(*key)
                sizes[key] = e.size_lots
            elif isinstance(e, Deleveraged):
                before_size = previous[(e.counterparty, e.market_id)]
                liquidated_before = previous[(e.account, e.market_id)]
                assert e.counterparty != e.account
                assert before_size != 0 and (before_size > 0) != (liquidated_before > 0), e
                assert abs(before_size) >= e.size_lots > 0
                STATS["deleveraged"] += 1
                event("deleveraged")
            elif isinstance(e, PositionLiquidated) and fund_stop:
                self._check_fund_stop(e)
            elif isinstance(e, PositionLiquidated):
                self._check_slice(e, [f for f in fills if f.taker == e.account])
                fills = []
            elif isinstance(e, BadDebtChanged):
                STATS["bad debt"] += 1
                event("bad debt changed")
        # The fund's unwinding comes last: its fills at the mark or better.
        for f in fills:
            if f.taker == FUND:
                mark = risk_params[f.market_id].mark_ticks
                assert f.price_ticks >= mark if not f.taker_is_buy else f.price_ticks <= mark
                STATS["fund unwind fill"] += 1
                event("fund unwinds")
        for account in liquidated:
            if not clearing.get_positions(state, account):
                assert collateral.get_balance(state, account) >= 0

    @staticmethod
    def _check_fund_stop(e: PositionLiquidated) -> None:
        """A stop of the fund: auto-deleveraged whole or in proportion at the mark, with no
        equity share given away and no book order; the per-block budget (which limits what
        liquidations put on the book) does not hold it back."""
        qptl = market_of(e.market_id).quote_per_tick_lot
        assert e.account == FUND
        assert 0 < e.slice_lots == e.wanted_lots == e.adl_lots <= abs(e.size_before_lots)
        assert e.book_lots == e.backstop_lots == e.fee_quote == e.limit_price_ticks == 0
        assert e.equity_share_quote == 0
        assert e.bankruptcy_value_quote == e.adl_value_quote == e.slice_lots * e.mark_ticks * qptl

    def _check_slice(self, e: PositionLiquidated, fills: list[FillEvent]) -> None:
        assert e.slice_lots <= e.wanted_lots
        assert e.book_lots + e.backstop_lots + e.adl_lots == e.slice_lots
        assert e.slice_lots * e.mark_ticks * market_of(e.market_id).quote_per_tick_lot <= (
            e.budget_quote
        )
        assert e.fund_loss_quote <= e.fund_loss_limit_quote
        assert sum(f.size_lots for f in fills if f.market_id == e.market_id) == e.book_lots
        qptl = market_of(e.market_id).quote_per_tick_lot
        value = sum(f.price_ticks * f.size_lots * qptl for f in fills)
        assert value == e.book_value_quote
        for f in fills:
            assert f.taker_fee_quote == 0
            if e.size_before_lots > 0:
                assert not f.taker_is_buy and f.price_ticks >= e.limit_price_ticks
            else:
                assert f.taker_is_buy and f.price_ticks <= e.limit_price_ticks
        if e.slice_lots < e.wanted_lots:
            STATS["slice held back by budget"] += 1
            event("budget limits slice")
        if e.book_lots:
            STATS["book liquidation"] += 1
            event("book liquidation")
        if e.backstop_lots:
            STATS["backstop"] += 1
            event("backstop")
        if e.adl_lots:
            event("adl")

    # ------------------------------------------------------------------ invariants

    @invariant()
    def conservation(self) -> None:
        state = self.chain.state
        ledger = collateral.get_ledger(state)
        debt = liquidation.get_bad_debt(state)
        assert debt >= 0 and clearing.get_fee_pool(state) >= 0
        assert ledger.deposited_quote == self.deposited
        assert ledger.withdrawn_quote == self.withdrawn
        assert collateral.sum_balances(state) + clearing.get_fee_pool(state) + (
            funding.sum_in_transit(state) - debt
        ) == (self.deposited - self.withdrawn)

    @invariant()
    def positions_open_interest_holders(self) -> None:
        state = self.chain.state
        net = dict.fromkeys((1, 2), 0)
        longs = dict.fromkeys((1, 2), 0)
        holders: set[bytes] = set()
        for account, positions in state.tables["positions"].data.items():
            if positions:
                holders.add(account)
            for p in positions:
                assert p.size_lots != 0
                net[p.market_id] += p.size_lots
                longs[p.market_id] += max(p.size_lots, 0)
        assert net == {1: 0, 2: 0}
        for market_id in (1, 2):
            assert clearing.get_open_interest(state, market_id) == longs[market_id]
        registry = clearing.get_holders(state)
        assert len(registry) == len(set(registry))
        assert set(registry) == holders

    @invariant()
    def reservations_match_orders(self) -> None:
        state = self.chain.state
        held: dict[bytes, int] = {}
        for book in state.books.values():
            for order in book.iter_orders():
                held[order.owner] = held.get(order.owner, 0) + order.reserved_quote
        assert {a: v for a, v in held.items() if v} == dict(state.tables["reserved"].data)

    def teardown(self) -> None:
        if not self.sealing and (self.pending or self.system):
            self.seal()
            self.conservation()
            self.positions_open_interest_holders()
            self.reservations_match_orders()
        if self.pipelined_follower is not None:
            self.pipelined_follower.finish()
            STATS["blocks sealed pipelined"] += self.pipelined_follower.sealed


FAST = settings(
    max_examples=100,
    stateful_step_count=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


PLACED = {1: 1, 2: 2}
"""Of three shards: markets 1 and 2 each in a worker process of its own."""


def test_liquidation_machine() -> None:
    """A fixed-seed run (``derandomize``) with every check; it must exercise every path the
    checks are about, so they cannot pass vacuously."""
    STATS.clear()
    LiquidationMachine.pipelined = CommitmentProcess(empty_tree())
    try:
        run_sharded(LiquidationMachine, FAST, 3, PLACED)
    finally:
        LiquidationMachine.pipelined.close()
        LiquidationMachine.pipelined = None
    print(dict(STATS))
    assert STATS["blocks sealed pipelined"] >= 100, STATS
    assert STATS["account liquidated"] >= 10, STATS
    assert STATS["book liquidation"] > 0, STATS
    assert STATS["backstop"] > 0, STATS
    assert STATS["deleveraged"] > 0, STATS


@pytest.mark.long
def test_liquidation_machine_long() -> None:
    run_sharded(
        LiquidationMachine,
        settings(
            max_examples=500,
            stateful_step_count=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
        3,
        PLACED,
    )

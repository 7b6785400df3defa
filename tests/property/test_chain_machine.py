"""A Hypothesis state machine over a real chain: signed transactions, sealed blocks, invariants.

Rules add transactions (orders of every time in force, cancels, modifies, bulk placements,
transfers, withdrawals, replays of included transactions) and system inputs (deposits, oracle
moves) to a pending block; ``seal`` builds the block with ``build_block`` (through the test
``Chain``) and then checks, on the real state and on the block's events:

- conservation: ``sum(balances) + fee pool == deposited - withdrawn`` (ledger and our own count);
- positions net to zero in every market, and the positions the fills imply equal the state's;
- books never crossed, no resting order of size <= 0 or price <= 0;
- reservations: ``margin.get_reserved(a)`` equals the reservations of ``a``'s resting orders;
- reduce-only: no fill of a reduce-only order raised its owner's ``|position|`` or flipped it;
- admission, replayed on an independent model of free collateral: every accepted order, transfer
  and withdrawal was covered, and every ``INSUFFICIENT_MARGIN`` / ``INSUFFICIENT_FREE_COLLATERAL``
  was justified (see ``_check_admission``);
- free collateral after the block is >= 0 for each account that placed a non-reduce-only order,
  withdrew or transferred in it, *and had no fill in it*. With a fill it cannot be asserted: a fill
  on the adverse side of the mark (a buy above it, a sell below it) realizes a mark-to-market loss
  that the reservation (initial margin + fee on ``max(limit, mark)``) does not cover, and a resting
  order reserved at an older mark fills at today's mark;
- nonces: a re-submitted included transaction is left out with ``NONCE_ALREADY_USED`` or
  ``NONCE_BELOW_WINDOW``, and every fresh transaction is included;
- builder and validator agree: ``apply_block`` on a ``copy_state`` of the pre-state reproduces the
  header, receipts and state root of the built block;
- market-sharded matching changes no byte: a second state follows the chain with its markets'
  matching split over two shards (market 1 in a worker process, market 2 here).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from strata.core.errors import ErrorCode
from strata.exec.parallel import ShardedMatching
from strata.modules import clearing, collateral, funding, liquidation, margin, markets, oracle
from strata.modules.book import OrderReason, TimeInForce
from strata.modules.clearing import FeeTier
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.state.store import State
from strata.stf.block import BlockOutput
from strata.stf.transactions import (
    Action,
    BulkPlace,
    CancelAll,
    CancelOrder,
    Deposit,
    ModifyOrder,
    PlaceOrder,
    SystemInput,
    Transfer,
    Withdraw,
    compute_transaction_hash,
)
from strata.stf.transition import apply_block, copy_state, get_account_risk
from tests.helpers.chain import Chain, make_chain
from tests.helpers.sharded import ShardedFollower, run_sharded

NAMES = ("a0", "a1", "a2", "a3", "a4")
BALANCE_QUOTE = 40_000_000
"""Small enough that margin runs out (a BTC lot reserves ~0.5M quote at the genesis mark)."""
FEE_TIERS = (FeeTier(0, 200, 500), FeeTier(300_000_000, -100, 400))
MAX_TAKER_PPM = max(t.taker_ppm for t in FEE_TIERS)
PPM = 1_000_000
TIFS = tuple(TimeInForce)
REPLAY_CODES = {ErrorCode.NONCE_ALREADY_USED, ErrorCode.NONCE_BELOW_WINDOW}

# Per market: (price step in ticks, size strategy); 30 steps either side of the mark is ~3 %.
PRICE_STEP = {1: 500, 2: 30}
SIZES = {1: st.integers(1, 80), 2: st.integers(10, 20_000)}

accounts = st.sampled_from(NAMES)
market_ids = st.sampled_from((1, 2))
offsets = st.integers(-30, 30)
picks = st.integers(0, 1 << 16)


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


@dataclass
class Pending:
    """One candidate transaction and what the test knows about it."""

    data: bytes
    account: bytes
    action: Action
    replay: bool = False


@dataclass
class Free:
    """Our own model of an account's free collateral during admission."""

    free: int
    profit: int


def model_free(
    state: State,
    account: bytes,
    balance_extra: int,
    marks: dict[int, int],
    indexes: dict[int, int],
) -> Free:
    """Free collateral and unrealized profit from the margin module's README definitions
    (``indexes``: each market's funding index after the block's prologue)."""
    equity = collateral.get_balance(state, account) + balance_extra
    initial = profit = 0
    for position in clearing.get_positions(state, account):
        market = markets.get_market(state, position.market_id)
        assert market is not None
        value = position.size_lots * marks[position.market_id] * market.quote_per_tick_lot
        owed = ceil_div(
            position.size_lots * (indexes[position.market_id] - position.funding_index_micro), PPM
        )
        equity += value - owed
        initial += ceil_div(abs(value) * market.initial_margin_ppm, PPM)
        profit += max(value - position.entry_cost_quote - owed, 0)
    return Free(equity - initial - margin.get_reserved(state, account), profit)


def model_reservation(state: State, order: PlaceOrder | ModifyOrder, mark: int) -> int:
    if order.reduce_only:
        return 0
    market = markets.get_market(state, order.market_id)
    assert market is not None
    price = max(order.price_ticks, mark)
    notional = price * order.size_lots * market.quote_per_tick_lot
    adverse = order.price_ticks - mark if order.is_buy else mark - order.price_ticks
    loss = max(adverse, 0) * order.size_lots * market.quote_per_tick_lot
    return ceil_div(notional * (market.initial_margin_ppm + MAX_TAKER_PPM), PPM) + loss


class ChainMachine(RuleBasedStateMachine):
    sharded: ShardedMatching | None = None
    """Set by the tests: the executor the follower state uses (shared by every example)."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: Chain = make_chain(
            NAMES,
            balance_quote=BALANCE_QUOTE,
            fee_tiers=FEE_TIERS,
            nonce_window=20,
            # A funding tick every 5 blocks (200 ms each), with rates large enough to matter.
            funding_interval_ms=1_000,
            funding_interest_ppm=300,
            funding_clamp_ppm=2_000,
            funding_cap_ppm=5_000,
        )
        self.follower = (
            None if self.sharded is None else ShardedFollower(self.sharded, self.chain.state)
        )
        self.pending: list[Pending] = []
        self.system: list[SystemInput] = []
        self.included: list[bytes] = []
        self.next_client_id = {name: 1 for name in NAMES}
        self.deposited = BALANCE_QUOTE * len(NAMES)
        self.withdrawn = 0
        self.blocks = 0
        self.block_size = 6
        self.sealing = False
        """A block is sealed when this many transactions are pending (or by ``seal``)."""

    # ------------------------------------------------------------------ helpers

    def _add(self, who: str, action: Action) -> None:
        self.pending.append(Pending(self.chain.tx(who, action), self.chain.addr(who), action))
        if len(self.pending) >= self.block_size:
            self.seal()

    def _client_id(self, who: str) -> int:
        self.next_client_id[who] += 1
        return self.next_client_id[who]

    def _mark(self, market_id: int) -> int:
        mark = oracle.get_mark_price(self.chain.state, market_id)
        assert mark is not None
        return mark

    def _order(
        self,
        who: str,
        market_id: int,
        is_buy: bool,
        offset: int,
        size: int,
        tif: int,
        reduce_only: bool,
        with_client_id: bool,
    ) -> PlaceOrder:
        price = max(1, self._mark(market_id) + offset * PRICE_STEP[market_id])
        client_id = self._client_id(who) if with_client_id else None
        return PlaceOrder(market_id, is_buy, price, size, tif, reduce_only, client_id)

    def _resting(self, who: str, market_id: int) -> list[tuple[int, int | None]]:
        owner = self.chain.addr(who)
        book = self.chain.state.books[market_id]
        return [(o.order_id, o.client_id) for o in book.iter_orders() if o.owner == owner]

    # ------------------------------------------------------------------ setup

    @initialize()
    def seed_positions(self) -> None:
        """Open positions so that reduce-only orders have something to reduce."""
        c = self.chain
        self._add("a0", PlaceOrder(1, False, 500_000, 20, 0))
        self._add("a1", PlaceOrder(1, True, 500_000, 12, 1))
        self._add("a2", PlaceOrder(2, True, 30_000, 2_000, 0))
        self._add("a3", PlaceOrder(2, False, 30_000, 1_500, 1))
        self.seal()
        assert clearing.get_position_size(c.state, c.addr("a1"), 1) == 12

    # ------------------------------------------------------------------ transactions

    @rule(
        who=accounts,
        market_id=market_ids,
        is_buy=st.booleans(),
        offset=offsets,
        data=st.data(),
        tif=st.sampled_from(TIFS),
        reduce_only=st.booleans(),
        with_client_id=st.booleans(),
    )
    def place(
        self,
        who: str,
        market_id: int,
        is_buy: bool,
        offset: int,
        data: st.DataObject,
        tif: int,
        reduce_only: bool,
        with_client_id: bool,
    ) -> None:
        size = data.draw(SIZES[market_id])
        order = self._order(who, market_id, is_buy, offset, size, tif, reduce_only, with_client_id)
        self._add(who, order)

    @rule(
        who=accounts,
        items=st.lists(
            st.tuples(market_ids, st.booleans(), offsets, st.sampled_from(TIFS), st.booleans()),
            min_size=1,
            max_size=5,
        ),
        sizes=st.lists(st.integers(0, 1 << 16), min_size=5, max_size=5),
    )
    def bulk_place(
        self,
        who: str,
        items: list[tuple[int, bool, int, int, bool]],
        sizes: list[int],
    ) -> None:
        orders = []
        for (market_id, is_buy, offset, tif, reduce_only), pick in zip(items, sizes, strict=False):
            size = (10 + pick % 10_000) if market_id == 2 else 1 + pick % 40
            # Every bulk order has a fresh client id: that is how the test finds its order id.
            orders.append(self._order(who, market_id, is_buy, offset, size, tif, reduce_only, True))
        self._add(who, BulkPlace(tuple(orders)))

    @rule(who=accounts, market_id=market_ids, pick=picks, by_client_id=st.booleans())
    def cancel(self, who: str, market_id: int, pick: int, by_client_id: bool) -> None:
        resting = self._resting(who, market_id)
        if by_client_id:
            with_cid = [cid for _, cid in resting if cid is not None]
            cid = with_cid[pick % len(with_cid)] if with_cid else 10_000 + pick
            self._add(who, CancelOrder(market_id, None, cid))
        else:
            oid = resting[pick % len(resting)][0] if resting else 1_000_000 + pick
            self._add(who, CancelOrder(market_id, oid, None))

    @rule(who=accounts, market_id=st.sampled_from((1, 2, None)))
    def cancel_all(self, who: str, market_id: int | None) -> None:
        self._add(who, CancelAll(market_id))

    @rule(
        who=accounts,
        market_id=market_ids,
        pick=picks,
        by_client_id=st.booleans(),
        is_buy=st.booleans(),
        offset=offsets,
        tif=st.sampled_from(TIFS),
        reduce_only=st.booleans(),
    )
    def modify(
        self,
        who: str,
        market_id: int,
        pick: int,
        by_client_id: bool,
        is_buy: bool,
        offset: int,
        tif: int,
        reduce_only: bool,
    ) -> None:
        resting = self._resting(who, market_id)
        oid: int | None = None
        cid: int | None = None
        if by_client_id:
            with_cid = [c for _, c in resting if c is not None]
            cid = with_cid[pick % len(with_cid)] if with_cid else 10_000 + pick
        else:
            oid = resting[pick % len(resting)][0] if resting else 1_000_000 + pick
        price = max(1, self._mark(market_id) + offset * PRICE_STEP[market_id])
        size = (10 + pick % 10_000) if market_id == 2 else 1 + pick % 40
        self._add(who, ModifyOrder(market_id, oid, cid, is_buy, price, size, tif, reduce_only))

    @rule(who=accounts, to=accounts, amount=st.integers(1, 50_000_000))
    def transfer(self, who: str, to: str, amount: int) -> None:
        if who != to:
            self._add(who, Transfer(self.chain.addr(to), amount))

    @rule(who=accounts, amount=st.integers(1, 60_000_000))
    def withdraw(self, who: str, amount: int) -> None:
        self._add(who, Withdraw(amount, b"\x11" * 20))

    @precondition(lambda self: bool(self.included))
    @rule(pick=picks)
    def replay_included(self, pick: int) -> None:
        data = self.included[pick % len(self.included)]
        if all(p.data != data for p in self.pending):
            self.pending.append(Pending(data, b"", CancelAll(None), replay=True))

    # ------------------------------------------------------------------ system inputs

    @rule(who=accounts, amount=st.integers(1, 50_000_000))
    def deposit(self, who: str, amount: int) -> None:
        index = collateral.get_ledger(self.chain.state).next_deposit_index
        index += sum(isinstance(s, Deposit) for s in self.system)
        self.system.append(Deposit(index, self.chain.addr(who), amount))

    @rule(market_id=market_ids, per_mille=st.integers(-50, 50))
    def move_oracle(self, market_id: int, per_mille: int) -> None:
        self.system = [s for s in self.system if isinstance(s, Deposit) or s.market_id != market_id]
        mark = self._mark(market_id)
        self.system.append(self.chain.price(market_id, max(1, mark + mark * per_mille // 1000)))

    # ------------------------------------------------------------------ sealing

    @rule()
    def seal(self) -> None:
        chain = self.chain
        self.sealing = True  # stays set if a check fails, so that teardown does not seal again
        pre = copy_state(chain.state)
        output = chain.block([p.data for p in self.pending], self.system)
        block, _ = chain.blocks[-1]
        self.blocks += 1

        # Builder and validator agree.
        validated = apply_block(copy_state(pre), block, chain.params)
        assert validated.header == output.header
        assert validated.receipts == output.receipts
        assert validated.block_events == output.block_events
        if self.follower is not None:
            self.follower.follow(block, chain.params, output)

        self._check_inclusion(output)
        self._note(output)
        by_hash = {compute_transaction_hash(p.data): p for p in self.pending if not p.replay}
        self._check_admission(pre, output, by_hash)
        self._check_fills(pre, output, by_hash)
        self._check_free_after(output, by_hash)
        for item in self.system:
            if isinstance(item, Deposit):
                self.deposited += item.amount_quote
        self.withdrawn += sum(w.amount_quote for w in output.withdrawals)
        self.included.extend(output.transactions)
        self.pending = []
        self.system = []
        self.sealing = False

    def _note(self, output: BlockOutput) -> None:
        """Label what the block exercised (``--hypothesis-show-statistics``)."""
        for receipt in output.receipts:
            if receipt.status:
                event(f"receipt status {ErrorCode(receipt.status).name}")
            for e in receipt.events:
                if isinstance(e, FillEvent):
                    event("fill")
                elif isinstance(e, OrderUpdate):
                    event(f"order {OrderReason(e.reason).name}")
        if output.rejected:
            event("replay rejected")

    def _check_inclusion(self, output: BlockOutput) -> None:
        fresh = [p.data for p in self.pending if not p.replay]
        replays = {compute_transaction_hash(p.data) for p in self.pending if p.replay}
        assert list(output.transactions) == fresh, "a fresh, valid transaction was left out"
        rejected = dict(output.rejected)
        assert set(rejected) == replays
        for tx_hash, code in rejected.items():
            assert code in REPLAY_CODES, (tx_hash.hex(), code)

    def _marks(self) -> dict[int, int]:
        return {m: self._mark(m) for m in (1, 2)}

    def _check_admission(
        self, pre: State, output: BlockOutput, by_hash: dict[bytes, Pending]
    ) -> None:
        """Replay admission on an independent model of free collateral (see module docstring)."""
        marks = self._marks()  # the block's marks: the prologue ran before admission
        indexes = {m: funding.get_funding_index(self.chain.state, m) for m in (1, 2)}
        extra: dict[bytes, int] = {}
        for item in self.system:
            if isinstance(item, Deposit):
                extra[item.account] = extra.get(item.account, 0) + item.amount_quote
        model: dict[bytes, Free] = {}
        for receipt in output.receipts:
            p = by_hash[receipt.tx_hash]
            acct = p.account
            if acct not in model:
                model[acct] = model_free(pre, acct, extra.get(acct, 0), marks, indexes)
            m = model[acct]
            action = p.action
            if isinstance(action, Withdraw | Transfer):
                covered = m.free - m.profit >= action.amount_quote
                if receipt.status == 0:
                    assert covered, f"{action} accepted beyond withdrawable {m}"
                    m.free -= action.amount_quote
                else:
                    assert receipt.status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
                    assert not covered, f"{action} refused although withdrawable {m}"
            elif isinstance(action, PlaceOrder | ModifyOrder) and action.reduce_only:
                # Reduce-only reserves nothing and is admitted whatever the free collateral.
                assert receipt.status in (0, ErrorCode.UNKNOWN_ORDER, ErrorCode.NOT_ORDER_OWNER)
            elif isinstance(action, PlaceOrder):
                need = model_reservation(pre, action, marks[action.market_id])
                if receipt.status == 0:
                    assert m.free >= need, f"{action} accepted: needs {need}, free {m.free}"
                    m.free -= need
                else:
                    assert receipt.status == ErrorCode.INSUFFICIENT_MARGIN
                    assert m.free < need, f"{action} refused: needs {need}, free {m.free}"
            elif isinstance(action, ModifyOrder):
                book = pre.books[action.market_id]
                old = (
                    book.get_order(action.order_id)
                    if action.order_id is not None
                    else book.get_order_by_client_id(acct, action.client_id)  # type: ignore[arg-type]
                )
                if old is None or old.owner != acct:
                    assert receipt.status in (ErrorCode.UNKNOWN_ORDER, ErrorCode.NOT_ORDER_OWNER)
                    continue
                credit = old.reserved_quote
                need = model_reservation(pre, action, marks[action.market_id])
                if receipt.status == 0:
                    assert m.free + credit >= need
                    m.free -= need
                else:
                    assert receipt.status == ErrorCode.INSUFFICIENT_MARGIN
                    assert m.free + credit < need
            elif isinstance(action, BulkPlace):
                assert receipt.status == 0
                refused = {
                    e.client_id
                    for e in receipt.events
                    if isinstance(e, OrderUpdate) and e.reason == OrderReason.INSUFFICIENT_MARGIN
                }
                for order in action.orders:
                    need = model_reservation(pre, order, marks[order.market_id])
                    if order.reduce_only:
                        assert order.client_id not in refused
                    elif order.client_id in refused:
                        assert m.free < need, f"bulk {order} refused: free {m.free}"
                    else:
                        assert m.free >= need, f"bulk {order} accepted: free {m.free}"
                        m.free -= need
            elif isinstance(action, CancelOrder):
                book = pre.books[action.market_id]
                if action.order_id is not None:
                    found = book.get_order(action.order_id)
                else:
                    found = book.get_order_by_client_id(acct, action.client_id)  # type: ignore[arg-type]
                expect = 0 if found is not None and found.owner == acct else receipt.status
                assert receipt.status == expect
                assert receipt.status in (0, ErrorCode.UNKNOWN_ORDER, ErrorCode.NOT_ORDER_OWNER)
            else:
                assert receipt.status == 0

    def _check_fills(self, pre: State, output: BlockOutput, by_hash: dict[bytes, Pending]) -> None:
        """Reduce-only never grows |position|; fills reproduce the state's positions."""
        reduce_only: set[tuple[int, int]] = {
            (m, o.order_id)
            for m, book in pre.books.items()
            for o in book.iter_orders()
            if o.reduce_only
        }
        for receipt in output.receipts:
            p = by_hash[receipt.tx_hash]
            action = p.action
            updates = [e for e in receipt.events if isinstance(e, OrderUpdate)]
            if isinstance(action, PlaceOrder | ModifyOrder) and updates:
                last = receipt.events[-1]
                if action.reduce_only and isinstance(last, OrderUpdate) and last.order_id:
                    assert last.owner == p.account
                    reduce_only.add((last.market_id, last.order_id))
            elif isinstance(action, BulkPlace):
                flags = {(o.market_id, o.client_id): o.reduce_only for o in action.orders}
                for u in updates:
                    if (
                        u.owner == p.account
                        and u.order_id
                        and flags.get((u.market_id, u.client_id))
                    ):
                        reduce_only.add((u.market_id, u.order_id))
        positions: dict[tuple[bytes, int], int] = {}

        def size(owner: bytes, market_id: int) -> int:
            key = (owner, market_id)
            if key not in positions:
                positions[key] = clearing.get_position_size(pre, owner, market_id)
            return positions[key]

        for receipt in output.receipts:
            for e in receipt.events:
                if not isinstance(e, FillEvent):
                    continue
                assert e.size_lots > 0 and e.maker != e.taker
                for owner, order_id, is_buy in (
                    (e.taker, e.taker_order_id, e.taker_is_buy),
                    (e.maker, e.maker_order_id, not e.taker_is_buy),
                ):
                    before = size(owner, e.market_id)
                    after = before + (e.size_lots if is_buy else -e.size_lots)
                    positions[(owner, e.market_id)] = after
                    if (e.market_id, order_id) in reduce_only:
                        assert abs(after) <= abs(before) and after * before >= 0, (
                            f"reduce-only order {order_id} moved {before} -> {after}"
                        )
        for (owner, market_id), expected in positions.items():
            assert clearing.get_position_size(self.chain.state, owner, market_id) == expected

    def _check_free_after(self, output: BlockOutput, by_hash: dict[bytes, Pending]) -> None:
        filled: set[bytes] = set()
        for receipt in output.receipts:
            for e in receipt.events:
                if isinstance(e, FillEvent):
                    filled.update((e.maker, e.taker))
        committed: set[bytes] = set()
        for receipt in output.receipts:
            p = by_hash[receipt.tx_hash]
            action = p.action
            if receipt.status != 0:
                continue
            if isinstance(action, Withdraw | Transfer) or (
                isinstance(action, PlaceOrder | ModifyOrder) and not action.reduce_only
            ):
                committed.add(p.account)
            elif isinstance(action, BulkPlace):
                refused = {
                    e.client_id
                    for e in receipt.events
                    if isinstance(e, OrderUpdate) and e.reason == OrderReason.INSUFFICIENT_MARGIN
                }
                if any(not o.reduce_only and o.client_id not in refused for o in action.orders):
                    committed.add(p.account)
        for account in sorted(committed - filled):
            risk = get_account_risk(self.chain.state, account)
            assert risk.free_collateral_quote >= 0, (account.hex(), risk)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def conservation(self) -> None:
        state = self.chain.state
        ledger = collateral.get_ledger(state)
        pool = clearing.get_fee_pool(state)
        assert pool >= 0
        assert ledger.deposited_quote == self.deposited
        assert ledger.withdrawn_quote == self.withdrawn
        # The insurance fund is an account (its cash is in the balances); recorded bad debt is
        # the quote that zeroing bankrupt balances added.
        debt = liquidation.get_bad_debt(state)
        assert debt >= 0
        assert collateral.sum_balances(state) + pool + funding.sum_in_transit(state) - debt == (
            self.deposited - self.withdrawn
        )

    @invariant()
    def positions_net_to_zero(self) -> None:
        net = {1: 0, 2: 0}
        for positions in self.chain.state.tables["positions"].data.values():
            for position in positions:
                assert position.size_lots != 0
                net[position.market_id] += position.size_lots
        assert net == {1: 0, 2: 0}

    @invariant()
    def books_sound(self) -> None:
        for book in self.chain.state.books.values():
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is None or ask is None or bid < ask, (bid, ask)
            for order in book.iter_orders():
                assert order.size_lots > 0 and order.price_ticks > 0
                assert order.reserved_quote >= 0
                if order.reduce_only:
                    assert order.reserved_quote == 0

    @invariant()
    def reservations_match_orders(self) -> None:
        state = self.chain.state
        held: dict[bytes, int] = {}
        for book in state.books.values():
            for order in book.iter_orders():
                held[order.owner] = held.get(order.owner, 0) + order.reserved_quote
        for name in NAMES:
            account = self.chain.addr(name)
            assert margin.get_reserved(state, account) == held.get(account, 0), name
        assert set(state.tables["reserved"].data) <= {a for a, v in held.items() if v}

    def teardown(self) -> None:
        if not self.sealing and (self.pending or self.system):
            self.seal()
            self.conservation()
            self.positions_net_to_zero()
            self.books_sound()
            self.reservations_match_orders()


FAST = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


PLACED = {1: 1, 2: 0}
"""Of two shards: market 1 in the worker process, market 2 here (gathered after the worker's,
in market order)."""


def test_chain_machine() -> None:
    run_sharded(ChainMachine, FAST, 2, PLACED)


@pytest.mark.long
def test_chain_machine_long() -> None:
    run_sharded(
        ChainMachine,
        settings(
            max_examples=2_000,
            stateful_step_count=80,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
        2,
        PLACED,
    )

"""The rules of the state transition, one scenario each, through signed transactions and blocks.

Numbers use the test chain of ``tests/helpers/chain.py``: BTC-PERP (market 1) marks at 500,000
ticks with 10 quote per tick-lot, 10 % initial margin; fees are 100 ppm maker, 400 ppm taker
unless a test says otherwise. One BTC lot at the mark is 5,000,000 quote of notional and an order
for it reserves ``5,000,000 * (100,000 + 400) / 1e6 = 502,000`` quote.
"""

from __future__ import annotations

import pytest

from strata.core.errors import ErrorCode, InvalidBlock
from strata.modules import clearing, collateral, margin
from strata.modules.book import OrderReason, OrderStatus, TimeInForce
from strata.modules.clearing import FeeTier
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.stf.block import BlockOutput, Receipt
from strata.stf.events import FeeCharged
from strata.stf.transactions import (
    BulkPlace,
    CancelAll,
    CancelOrder,
    ModifyOrder,
    PlaceOrder,
    RevokeAgent,
    Transfer,
    Withdraw,
    compute_transaction_hash,
)
from strata.stf.transition import get_account_risk
from tests.helpers.chain import BLOCK_MS, Chain, agent_from_seed, make_chain, sign

GTC, IOC, FOK, ALO = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY
MARK = 500_000
LOT_RESERVE = 502_000
DEST = b"\x11" * 20


def receipt(output: BlockOutput, tx: bytes) -> Receipt:
    tx_hash = compute_transaction_hash(tx)
    for r in output.receipts:
        if r.tx_hash == tx_hash:
            return r
    raise AssertionError("transaction not included")


def rejected_code(output: BlockOutput, tx: bytes) -> int:
    return dict(output.rejected)[compute_transaction_hash(tx)]


def updates(r: Receipt) -> list[OrderUpdate]:
    return [e for e in r.events if isinstance(e, OrderUpdate)]


def fills(r: Receipt) -> list[tuple[int, int]]:
    return [(e.price_ticks, e.size_lots) for e in r.events if isinstance(e, FillEvent)]


def last_update(r: Receipt) -> OrderUpdate:
    update = r.events[-1]
    assert isinstance(update, OrderUpdate)
    return update


def position_changed(output: BlockOutput, account: bytes) -> PositionChanged:
    (event,) = [
        e
        for e in output.block_events.settlement
        if isinstance(e, PositionChanged) and e.account == account
    ]
    return event


def buy(price: int, size: int, tif: int = GTC, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, True, price, size, tif, **kw)  # type: ignore[arg-type]


def sell(price: int, size: int, tif: int = GTC, **kw: object) -> PlaceOrder:
    return PlaceOrder(1, False, price, size, tif, **kw)  # type: ignore[arg-type]


def reserved(c: Chain, who: str) -> int:
    return margin.get_reserved(c.state, c.addr(who))


def size_of(c: Chain, who: str, market_id: int = 1) -> int:
    return clearing.get_position_size(c.state, c.addr(who), market_id)


def open_long(c: Chain, who: str, lots: int, price: int = MARK, maker: str = "bob") -> None:
    """``who`` buys ``lots`` from a resting sell of ``maker``."""
    out = c.block([c.tx(maker, sell(price, lots)), c.tx(who, buy(price, lots, IOC))])
    assert all(r.status == 0 for r in out.receipts)
    assert size_of(c, who) == lots


# ------------------------------------------------------------------------------------ margin


def test_single_order_beyond_free_collateral_fails_with_insufficient_margin() -> None:
    c = make_chain(balance_quote=10_000_000)  # covers 19 lots (19 * 502,000), not 20
    too_big, fits = c.tx("alice", buy(MARK, 20)), c.tx("alice", buy(MARK - 1_000, 19))
    out = c.block([too_big])
    assert receipt(out, too_big).status == ErrorCode.INSUFFICIENT_MARGIN
    assert receipt(out, too_big).events == ()
    assert reserved(c, "alice") == 0 and len(c.state.books[1]) == 0
    out = c.block([fits])
    assert receipt(out, fits).status == 0
    assert reserved(c, "alice") == 19 * LOT_RESERVE


def test_orders_of_one_block_see_each_others_reservations() -> None:
    # Admission keeps reservation totals apart until the block's admission ends
    # (transition._Block.accounts): each order still sees those of the earlier ones.
    c = make_chain(balance_quote=10_000_000)  # 19 lots
    first, second = c.tx("alice", buy(MARK - 1_000, 10)), c.tx("alice", buy(MARK - 2_000, 10))
    third = c.tx("alice", buy(MARK - 3_000, 9))
    out = c.block([first, second, third])
    assert [receipt(out, tx).status for tx in (first, second, third)] == [
        0,
        ErrorCode.INSUFFICIENT_MARGIN,
        0,
    ]
    assert reserved(c, "alice") == 19 * LOT_RESERVE
    assert reserved(c, "bob") == 0


def test_a_failed_transaction_rolls_back_its_reservations() -> None:
    # Nothing admitted today reserves and then fails, so the undo is exercised directly.
    from strata.stf.transition import _Block

    c = make_chain()
    alice, bob = c.addr("alice"), c.addr("bob")
    margin.add_reserved(c.state, bob, 7)
    block = _Block(c.state, c.params, c.now_ms + BLOCK_MS)
    block.add_reserved(alice, 100)
    mark = len(block.reserved_undo)
    block.add_reserved(alice, 50)
    block.add_reserved(bob, 3)
    assert (block.get_reserved(alice), block.get_reserved(bob)) == (150, 10)
    assert margin.get_reserved(c.state, alice) == 0  # not in the state before the flush
    block.rollback_reserved(mark)
    assert (block.get_reserved(alice), block.get_reserved(bob)) == (100, 7)
    assert len(block.reserved_undo) == mark
    block.flush_reserved()
    assert (margin.get_reserved(c.state, alice), margin.get_reserved(c.state, bob)) == (100, 7)
    assert block.accounts == {} and block.reserved_undo == []


def test_bulk_order_beyond_free_collateral_is_rejected_alone() -> None:
    c = make_chain(balance_quote=10_000_000)
    tx = c.tx(
        "alice",
        BulkPlace(
            (
                buy(MARK - 1_000, 10, client_id=1),
                buy(MARK - 2_000, 10, client_id=2),  # 10 more lots do not fit
                buy(MARK - 3_000, 9, client_id=3),  # 9 do
            )
        ),
    )
    r = receipt(c.block([tx]), tx)
    assert r.status == 0
    outcome = {(u.client_id, u.status, u.reason) for u in updates(r)}
    assert outcome == {
        (2, OrderStatus.REJECTED, OrderReason.INSUFFICIENT_MARGIN),
        (1, OrderStatus.OPEN, OrderReason.NONE),
        (3, OrderStatus.OPEN, OrderReason.NONE),
    }
    assert reserved(c, "alice") == 19 * LOT_RESERVE


def test_reservation_shrinks_with_fills_and_is_released_on_cancel() -> None:
    c = make_chain()
    c.block([c.tx("alice", buy(MARK, 10, client_id=5))])
    assert reserved(c, "alice") == 10 * LOT_RESERVE
    c.block([c.tx("bob", sell(MARK, 4, IOC))])
    assert reserved(c, "alice") == 6 * LOT_RESERVE  # ceil(5,020,000 * 6 / 10)
    c.block([c.tx("alice", CancelOrder(1, None, 5))])
    assert reserved(c, "alice") == 0
    c.block([c.tx("alice", buy(MARK, 3))])
    c.block([c.tx("bob", sell(MARK, 3, IOC))])
    assert reserved(c, "alice") == 0  # filled: released in full
    assert reserved(c, "bob") == 0  # a taker that does not rest keeps nothing


def test_unrealized_profit_is_not_withdrawable() -> None:
    # The clamp is widened so that the 10% move lands in one block.
    c = make_chain(balance_quote=100_000_000, oracle_max_move_ppm=100_000)
    open_long(c, "alice", 10)  # pays 50,000,000 and a 20,000 taker fee
    c.block(system=[c.price(1, 550_000)])
    risk = get_account_risk(c.state, c.addr("alice"))
    # equity 49,980,000 + 55,000,000; initial 5,500,000; profit 5,000,000
    assert (risk.equity_quote, risk.initial_quote) == (104_980_000, 5_500_000)
    assert risk.free_collateral_quote == 99_480_000
    assert risk.withdrawable_quote == 94_480_000

    profit_out = c.tx("alice", Withdraw(94_480_001, DEST))
    profit_moved = c.tx("alice", Transfer(c.addr("carol"), 94_480_001))
    out = c.block([profit_out, profit_moved])
    assert receipt(out, profit_out).status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    assert receipt(out, profit_moved).status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    assert out.withdrawals == ()

    exact = c.tx("alice", Withdraw(94_480_000, DEST))
    out = c.block([exact])
    assert receipt(out, exact).status == 0
    assert [w.amount_quote for w in out.withdrawals] == [94_480_000]


def test_transfer_is_debited_at_admission_and_credited_in_settlement() -> None:
    c = make_chain(balance_quote=10_000_000)
    first = c.tx("alice", Transfer(c.addr("bob"), 6_000_000))
    second = c.tx("alice", Transfer(c.addr("carol"), 6_000_000))  # only 4,000,000 left
    out = c.block([first, second])
    assert receipt(out, first).status == 0
    assert receipt(out, second).status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    balances = [collateral.get_balance(c.state, c.addr(n)) for n in ("alice", "bob", "carol")]
    assert balances == [4_000_000, 16_000_000, 10_000_000]


# ------------------------------------------------------------------------------ clearing


def test_realized_pnl_and_entry_cost_on_close_and_on_flip() -> None:
    c = make_chain()
    open_long(c, "alice", 10)
    out = c.block([c.tx("bob", buy(510_000, 4)), c.tx("alice", sell(510_000, 4, IOC))])
    # kept cost ceil(50,000,000 * 6 / 10); realized 510,000 * 4 * 10 - 20,000,000
    pc = position_changed(out, c.addr("alice"))
    assert (pc.size_lots, pc.entry_cost_quote, pc.realized_pnl_quote) == (6, 30_000_000, 400_000)
    assert pc.fees_quote == 8_160  # ceil(20,400,000 * 400 / 1e6)

    out = c.block([c.tx("bob", buy(490_000, 10)), c.tx("alice", sell(490_000, 10, IOC))])
    # closes 6 (490,000 * 6 * 10 - 30,000,000) and opens 4 short at 490,000
    pc = position_changed(out, c.addr("alice"))
    assert (pc.size_lots, pc.entry_cost_quote, pc.realized_pnl_quote) == (-4, -19_600_000, -600_000)
    assert size_of(c, "alice") == -4 and size_of(c, "bob") == 4


def test_maker_rebate_applies_from_the_next_block_once_volume_reaches_the_tier() -> None:
    tiers = (FeeTier(0, 100, 400), FeeTier(100_000_000, -50, 300))
    c = make_chain(fee_tiers=tiers)
    out = c.block([c.tx("bob", sell(MARK, 20)), c.tx("carol", buy(MARK, 20, IOC))])
    (fill,) = [e for r in out.receipts for e in r.events if isinstance(e, FillEvent)]
    assert (fill.maker_fee_quote, fill.taker_fee_quote) == (10_000, 40_000)  # 100,000,000 notional
    assert clearing.get_volume(c.state, c.addr("bob")) == 100_000_000

    pool = clearing.get_fee_pool(c.state)
    out = c.block([c.tx("bob", sell(MARK, 2)), c.tx("alice", buy(MARK, 2, IOC))])
    (fill,) = [e for r in out.receipts for e in r.events if isinstance(e, FillEvent)]
    assert fill.maker_fee_quote == -500  # rebate floor(10,000,000 * 50 / 1e6)
    assert fill.taker_fee_quote == 4_000  # alice is still in the first tier
    assert clearing.get_fee_pool(c.state) == pool + 3_500


# ------------------------------------------------------------------------------- orders


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    c = make_chain()
    c.block([c.tx("alice", sell(MARK, 5, client_id=1)), c.tx("bob", sell(MARK, 5))])
    taker = c.tx("alice", buy(MARK, 5, IOC))
    r = receipt(c.block([taker]), taker)
    canceled = [u for u in updates(r) if u.reason == OrderReason.SELF_TRADE]
    assert [(u.client_id, u.status) for u in canceled] == [(1, OrderStatus.CANCELED)]
    assert fills(r) == [(MARK, 5)]  # against bob, behind alice's own order
    assert size_of(c, "alice") == 5 and reserved(c, "alice") == 0


def test_post_only_that_would_take_is_rejected() -> None:
    c = make_chain()
    c.block([c.tx("bob", sell(MARK, 5))])
    tx = c.tx("alice", buy(MARK, 5, ALO))
    r = receipt(c.block([tx]), tx)
    assert (last_update(r).status, last_update(r).reason) == (
        OrderStatus.REJECTED,
        OrderReason.POST_ONLY_WOULD_TAKE,
    )
    assert fills(r) == [] and reserved(c, "alice") == 0


def test_fill_or_kill_that_cannot_fill_whole_does_nothing() -> None:
    c = make_chain()
    c.block([c.tx("bob", sell(MARK, 3))])
    too_big = c.tx("alice", buy(MARK, 5, FOK))
    r = receipt(c.block([too_big]), too_big)
    assert (last_update(r).status, last_update(r).reason) == (
        OrderStatus.REJECTED,
        OrderReason.FOK_NOT_FILLABLE,
    )
    assert fills(r) == [] and c.state.books[1].best_ask() == MARK
    whole = c.tx("alice", buy(MARK, 3, FOK))
    r = receipt(c.block([whole]), whole)
    assert fills(r) == [(MARK, 3)] and last_update(r).status == OrderStatus.FILLED


def test_reduce_only_is_cut_to_the_position_and_rejected_when_it_would_increase() -> None:
    c = make_chain()
    open_long(c, "alice", 5)
    c.block([c.tx("carol", buy(MARK, 10))])
    cut = c.tx("alice", sell(MARK, 8, IOC, reduce_only=True))
    r = receipt(c.block([cut]), cut)
    assert fills(r) == [(MARK, 5)] and last_update(r).status == OrderStatus.FILLED
    assert size_of(c, "alice") == 0
    assert reserved(c, "alice") == 0

    flat = c.tx("alice", sell(MARK, 1, IOC, reduce_only=True))
    r = receipt(c.block([flat]), flat)
    assert (last_update(r).status, last_update(r).reason) == (
        OrderStatus.REJECTED,
        OrderReason.REDUCE_ONLY,
    )
    c.block([c.tx("carol", CancelAll(None))])  # carol's 5 left would meet bob's sell below
    open_long(c, "alice", 2)
    grows = c.tx("alice", buy(MARK + 1_000, 1, GTC, reduce_only=True))
    r = receipt(c.block([grows]), grows)
    assert last_update(r).reason == OrderReason.REDUCE_ONLY and size_of(c, "alice") == 2


def test_modify_keeps_the_client_id_and_loses_priority() -> None:
    c = make_chain()
    c.block([c.tx("alice", buy(499_000, 5, client_id=7))])
    c.block([c.tx("bob", buy(499_000, 5))])
    modify = c.tx("alice", ModifyOrder(1, None, 7, True, 499_000, 5))
    r = receipt(c.block([modify]), modify)
    old, new = updates(r)
    assert (old.status, old.reason, old.client_id) == (
        OrderStatus.CANCELED,
        OrderReason.REPLACED,
        7,
    )
    assert (new.status, new.client_id) == (OrderStatus.OPEN, 7)
    assert new.order_id > old.order_id
    taker = c.tx("carol", sell(499_000, 5, IOC))
    r = receipt(c.block([taker]), taker)
    assert {e.maker for e in r.events if isinstance(e, FillEvent)} == {c.addr("bob")}
    assert c.state.books[1].get_order_by_client_id(c.addr("alice"), 7) is not None
    assert reserved(c, "alice") == 5 * LOT_RESERVE  # a buy below the mark reserves at the mark


def test_cancel_all_in_one_market_and_in_every_market() -> None:
    c = make_chain()
    c.block(
        [
            c.tx("alice", buy(490_000, 1)),
            c.tx("alice", sell(510_000, 1)),
            c.tx("alice", PlaceOrder(2, True, 29_000, 10)),
            c.tx("bob", buy(490_000, 1)),
        ]
    )
    one = c.tx("alice", CancelAll(1))
    r = receipt(c.block([one]), one)
    assert {(u.status, u.reason) for u in updates(r)} == {
        (OrderStatus.CANCELED, OrderReason.CANCELED_ALL)
    }
    assert len(updates(r)) == 2 and len(c.state.books[1]) == 1 and len(c.state.books[2]) == 1
    every = c.tx("alice", CancelAll(None))
    r = receipt(c.block([every]), every)
    assert len(updates(r)) == 1 and len(c.state.books[2]) == 0
    assert reserved(c, "alice") == 0 and reserved(c, "bob") > 0


def test_market_order_is_an_ioc_at_the_worst_price() -> None:
    c = make_chain()
    c.block(
        [
            c.tx("bob", sell(500_000, 2)),
            c.tx("bob", sell(501_000, 2)),
            c.tx("bob", sell(510_000, 5)),
        ]
    )
    market = c.tx("alice", buy(505_000, 5, IOC))
    r = receipt(c.block([market]), market)
    assert fills(r) == [(500_000, 2), (501_000, 2)]  # at the makers' prices
    assert (last_update(r).status, last_update(r).reason) == (
        OrderStatus.CANCELED,
        OrderReason.IOC_REMAINDER,
    )
    assert last_update(r).filled_lots == 4 and reserved(c, "alice") == 0


# ------------------------------------------------------------------------------- agents


def test_agent_approve_act_revoke_and_expire() -> None:
    c = make_chain()
    agent = agent_from_seed("alice-bot")
    alice = c.addr("alice")

    def by_agent(action: object) -> bytes:
        return c.tx("alice", action, agent=agent, account=alice)  # type: ignore[arg-type]

    early = by_agent(buy(490_000, 1))
    out = c.block([early])
    assert rejected_code(out, early) == ErrorCode.UNKNOWN_AGENT

    c.block(
        [
            c.tx(
                "alice",
                agent.approve_for(c.addr("alice"), c.now_ms + 10 * BLOCK_MS, c.params.chain_id),
            )
        ]
    )
    acts = by_agent(buy(490_000, 1))
    out = c.block([acts])
    assert receipt(out, acts).status == 0 and c.state.books[1].open_order_count(alice) == 1

    c.block([c.tx("alice", RevokeAgent(agent.public_key))])
    revoked = by_agent(buy(490_000, 1))
    assert rejected_code(c.block([revoked]), revoked) == ErrorCode.UNKNOWN_AGENT

    c.block(
        [
            c.tx(
                "alice",
                agent.approve_for(c.addr("alice"), c.now_ms + 3 * BLOCK_MS, c.params.chain_id),
            )
        ]
    )
    still = by_agent(CancelAll(None))
    assert receipt(c.block([still]), still).status == 0  # valid until after this block
    expired = by_agent(CancelAll(None))
    assert rejected_code(c.block([expired]), expired) == ErrorCode.UNKNOWN_AGENT


def test_agent_may_not_withdraw_transfer_or_manage_agents() -> None:
    c = make_chain()
    agent = agent_from_seed("alice-bot")
    alice = c.addr("alice")
    c.block([c.approve("alice", agent, c.now_ms + 10**6)])
    actions = (
        Withdraw(1, DEST),
        Transfer(c.addr("bob"), 1),
        agent_from_seed("other").approve_for(alice, c.now_ms + 10**6, c.params.chain_id),
        RevokeAgent(agent.public_key),
    )
    txs = [c.tx("alice", a, agent=agent, account=alice) for a in actions]
    out = c.block(txs)
    assert out.transactions == ()
    assert [rejected_code(out, t) for t in txs] == [ErrorCode.AGENT_IS_WALLET_ONLY] * 4


# ------------------------------------------------------------------------------- nonces


def test_a_nonce_is_used_once() -> None:
    c = make_chain()
    nonce = c.nonce()
    first = c.tx("alice", buy(490_000, 1), nonce=nonce)
    again = c.tx("alice", buy(480_000, 1), nonce=nonce)
    out = c.block([first, again])
    assert out.transactions == (first,)
    assert rejected_code(out, again) == ErrorCode.NONCE_ALREADY_USED
    out = c.block([first])
    assert rejected_code(out, first) == ErrorCode.NONCE_ALREADY_USED
    other = c.tx("bob", buy(480_000, 1), nonce=nonce)  # nonces are per account
    assert c.block([other]).transactions == (other,)


def test_a_nonce_below_a_full_window_is_refused() -> None:
    c = make_chain(nonce_window=3)
    low = c.nonce()
    c.block([c.tx("alice", CancelAll(None)) for _ in range(3)])
    below = c.tx("alice", CancelAll(None), nonce=low)  # never used, but below the floor
    assert rejected_code(c.block([below]), below) == ErrorCode.NONCE_BELOW_WINDOW
    bob_low = c.tx("bob", CancelAll(None), nonce=low)  # bob's window is not full
    assert c.block([bob_low]).transactions == (bob_low,)


def test_a_nonce_outside_the_time_bounds_is_refused() -> None:
    c = make_chain()
    ts = c.now_ms + BLOCK_MS
    past = c.tx("alice", CancelAll(None), nonce=ts - c.params.nonce_past_bound_ms)
    future = c.tx("alice", CancelAll(None), nonce=ts + c.params.nonce_future_bound_ms)
    edge = c.tx("alice", CancelAll(None), nonce=ts + c.params.nonce_future_bound_ms - 1)
    out = c.block([past, future, edge])
    assert rejected_code(out, past) == ErrorCode.NONCE_OUT_OF_TIME_BOUND
    assert rejected_code(out, future) == ErrorCode.NONCE_OUT_OF_TIME_BOUND
    assert out.transactions == (edge,)


# ------------------------------------------------------------------------ canonical order


def test_post_only_sent_after_a_taker_rests_before_the_taker_matches() -> None:
    c = make_chain()
    taker = c.tx("bob", buy(MARK, 3, IOC))
    maker = c.tx("alice", sell(MARK, 3, ALO))
    out = c.block([taker, maker])
    assert out.transactions == (taker, maker)  # the sequencer's order is what is committed
    assert [r.tx_hash for r in out.receipts] == [
        compute_transaction_hash(t) for t in (maker, taker)
    ]
    assert fills(receipt(out, taker)) == [(MARK, 3)]
    assert size_of(c, "alice") == -3


def test_cancel_sent_after_a_taker_runs_before_it() -> None:
    c = make_chain()
    c.block([c.tx("alice", sell(MARK, 3, client_id=9))])
    taker = c.tx("bob", buy(MARK, 3, IOC))
    cancel = c.tx("alice", CancelOrder(1, None, 9))
    out = c.block([taker, cancel])
    assert [(u.status, u.reason) for u in updates(receipt(out, cancel))] == [
        (OrderStatus.CANCELED, OrderReason.CANCELED_BY_USER)
    ]
    assert fills(receipt(out, taker)) == []
    assert last_update(receipt(out, taker)).reason == OrderReason.IOC_REMAINDER


# ---------------------------------------------------------------------------------- gas


def test_gas_is_base_plus_matching_work_and_only_base_gas_is_charged() -> None:
    c = make_chain(gas_price_quote=2)
    gas = c.params.gas
    c.block(
        [
            c.tx("bob", sell(500_000, 1)),
            c.tx("carol", sell(500_000, 1)),
            c.tx("bob", sell(501_000, 1)),
        ]
    )
    before = collateral.get_balance(c.state, c.addr("alice"))
    taker = c.tx("alice", buy(501_000, 3, IOC))
    cancel = c.tx("alice", CancelAll(None))
    withdraw = c.tx("alice", Withdraw(1_000, DEST))
    out = c.block([taker, cancel, withdraw])
    r = receipt(out, taker)
    assert len(fills(r)) == 3
    assert r.gas_used == gas.place + 3 * gas.per_fill + 2 * gas.per_level
    # A cancel-all of every market pays one cancel per market (two here); alice has no order.
    assert receipt(out, cancel).gas_used == 2 * gas.cancel
    assert receipt(out, withdraw).gas_used == gas.account_action
    assert out.header.gas_used == sum(x.gas_used for x in out.receipts)
    assert [e for e in r.events if isinstance(e, FeeCharged)] == [
        FeeCharged(c.addr("alice"), gas.place * 2)
    ]
    notional = (2 * 500_000 + 501_000) * 10
    taker_fee = sum(e.taker_fee_quote for e in r.events if isinstance(e, FillEvent))
    # Only base gas is charged: matching work (fills, levels) is metered, not charged.
    gas_fee = 2 * (gas.place + 2 * gas.cancel + gas.account_action)
    after = collateral.get_balance(c.state, c.addr("alice"))
    assert before - after == notional + taker_fee + gas_fee + 1_000


def test_a_block_over_its_gas_limit_is_refused() -> None:
    c = make_chain(block_gas_limit=2_500)
    with pytest.raises(InvalidBlock) as raised:
        c.block([c.tx("alice", buy(490_000, 1)) for _ in range(3)])
    assert raised.value.code == ErrorCode.BLOCK_GAS_LIMIT_EXCEEDED
    c2 = make_chain(block_gas_limit=2_500)
    assert len(c2.block([c2.tx("alice", buy(490_000, 1)) for _ in range(2)]).receipts) == 2


# --------------------------------------------------------------------------------- bugs


def test_an_order_reserves_its_immediate_loss_against_the_mark() -> None:
    """A buy above the mark (a sell below it) also reserves the loss it realizes at its limit, so
    an admitted order cannot take its account's equity below zero (found by the property tests:
    without this term one fill left alice at equity -10,016,000)."""
    c = make_chain(balance_quote=10_000_000)
    c.block([c.tx("bob", sell(2 * MARK, 4))])
    # 4,016,000 of margin and fee + (2 * MARK - MARK) * 4 lots * 10 = 20,000,000 of loss.
    taker = c.tx("alice", buy(2 * MARK, 4, IOC))
    out = c.block([taker])
    assert receipt(out, taker).status == ErrorCode.INSUFFICIENT_MARGIN
    assert fills(receipt(out, taker)) == []
    risk = get_account_risk(c.state, c.addr("alice"))
    assert risk.equity_quote == 10_000_000 and risk.reserved_quote == 0
    # The same size at the mark is admitted and fills against a seller at the mark.
    c.block([c.tx("bob", sell(MARK, 4))])
    at_mark = c.tx("alice", buy(MARK, 4, IOC))
    out = c.block([at_mark])
    assert receipt(out, at_mark).status == 0 and fills(receipt(out, at_mark)) == [(MARK, 4)]
    assert get_account_risk(c.state, c.addr("alice")).equity_quote >= 0


def test_agent_signed_transactions_use_the_account_nonce_window() -> None:
    c = make_chain()
    agent = agent_from_seed("alice-bot")
    alice = c.addr("alice")
    c.block([c.approve("alice", agent, c.now_ms + 10**6)])
    nonce = c.nonce()
    by_wallet = c.tx("alice", CancelAll(None), nonce=nonce)
    by_agent = sign(c.wallets["alice"], CancelAll(1), nonce, c.params, agent=agent, account=alice)
    out = c.block([by_wallet, by_agent])
    assert out.transactions == (by_wallet,)
    assert rejected_code(out, by_agent) == ErrorCode.NONCE_ALREADY_USED

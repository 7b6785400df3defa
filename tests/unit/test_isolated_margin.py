"""Isolated margin (rules: ``modules/collateral``, liquidation of an isolated position alone:
``modules/liquidation``), on small real chains."""

from __future__ import annotations

from strata.core.errors import ErrorCode
from strata.modules import clearing, collateral, funding, liquidation
from strata.modules.liquidation import AccountLiquidated
from strata.stf.events import IsolatedMarginMoved, MarginModeChanged
from strata.stf.transactions import (
    MoveIsolatedMargin,
    PlaceOrder,
    SetMarginMode,
    Transfer,
)
from strata.stf.transition import apply_block, get_account_risk, get_isolated_risk
from tests.helpers.chain import Chain, make_chain

IOC = 1
BALANCE = 100_000_000_000
BTC = 1
ETH = 2


def _conserved(c: Chain) -> None:
    ledger = collateral.get_ledger(c.state)
    total = (
        collateral.sum_balances(c.state)
        + clearing.get_fee_pool(c.state)
        + funding.sum_in_transit(c.state)
        - liquidation.get_bad_debt(c.state)
    )
    assert total == ledger.deposited_quote - ledger.withdrawn_quote


def _replays(c: Chain) -> None:
    fresh = make_chain(tuple(c.wallets), balance_quote=BALANCE)
    for block, output in c.blocks:
        assert apply_block(fresh.state, block, fresh.params).header == output.header


def _chain() -> Chain:
    return make_chain(("alice", "bob", "carol", "dave"), balance_quote=BALANCE)


def test_the_mode_changes_only_without_a_position() -> None:
    c = _chain()
    alice = c.addr("alice")
    out = c.block([c.tx("alice", SetMarginMode(BTC, True))])
    assert out.receipts[0].events == (MarginModeChanged(alice, BTC, True),)
    assert collateral.is_isolated(c.state, alice, BTC)
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, False, 500_000, 10)),
            c.tx("alice", PlaceOrder(BTC, True, 500_000, 10, IOC)),
        ]
    )
    out = c.block([c.tx("alice", SetMarginMode(BTC, False))])
    assert out.receipts[0].status == ErrorCode.POSITION_OPEN
    assert collateral.is_isolated(c.state, alice, BTC)


def test_a_fill_tops_the_isolated_position_up_to_its_initial_requirement() -> None:
    c = _chain()
    alice = c.addr("alice")
    c.block([c.tx("alice", SetMarginMode(BTC, True))])
    before = collateral.get_balance(c.state, alice)
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, False, 500_000, 1_000)),
            c.tx("alice", PlaceOrder(BTC, True, 500_000, 1_000, IOC)),
        ]
    )
    risk = get_isolated_risk(c.state, alice, BTC)
    assert risk is not None
    # notional 5e9 at 10% initial: the position holds exactly its initial requirement.
    assert risk.initial_quote == 500_000_000
    assert risk.equity_quote == risk.initial_quote
    cash = collateral.get_isolated_cash(c.state, alice, BTC)
    # The notional paid (5e9) and the taker fee (0.04%) were paid from the isolated cash, which
    # the balance then topped up: the balance paid equity + notional + fee in all.
    fee = 5_000_000_000 * 400 // 1_000_000
    assert before - collateral.get_balance(c.state, alice) == 500_000_000 + fee
    assert cash == 500_000_000 - 5_000_000_000
    # The cross account counts neither the isolated position nor its cash.
    cross = get_account_risk(c.state, alice)
    assert cross.equity_quote == collateral.get_balance(c.state, alice)
    assert cross.maintenance_quote == 0
    _conserved(c)


def test_an_isolated_position_is_liquidated_alone_and_loses_at_most_its_cash() -> None:
    c = _chain()
    alice = c.addr("alice")
    c.block([c.tx("dave", Transfer(collateral.INSURANCE_FUND_ACCOUNT, 10_000_000_000))])
    c.block([c.tx("alice", SetMarginMode(BTC, True))])
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, False, 500_000, 1_000)),
            c.tx("alice", PlaceOrder(BTC, True, 500_000, 1_000, IOC)),
            # A cross position in ETH beside it, and a bid under BTC for the liquidation.
            c.tx("bob", PlaceOrder(ETH, False, 30_000, 1_000)),
            c.tx("alice", PlaceOrder(ETH, True, 30_000, 1_000, IOC)),
            c.tx("carol", PlaceOrder(BTC, True, 470_000, 400)),
        ]
    )
    balance = collateral.get_balance(c.state, alice)
    cash = collateral.get_isolated_cash(c.state, alice, BTC)
    equity_in = get_isolated_risk(c.state, alice, BTC).equity_quote  # type: ignore[union-attr]
    liquidated = []
    price = 500_000
    for _ in range(8):
        price = price * 97 // 100
        out = c.block([], [c.price(BTC, price)])
        liquidated += [e for e in out.block_events.risk if isinstance(e, AccountLiquidated)]
        _conserved(c)
        if not clearing.get_position_size(c.state, alice, BTC):
            break
    assert liquidated and all(e.isolated_market_id == BTC for e in liquidated)
    assert all(e.account == alice for e in liquidated)
    # The ETH cross position is untouched and the balance lost nothing beyond what it had put
    # into the isolated position (the cash came back as what was left of its equity).
    assert clearing.get_position_size(c.state, alice, ETH) == 1_000
    assert clearing.get_position_size(c.state, alice, BTC) == 0
    assert collateral.get_isolated_cash(c.state, alice, BTC) == 0
    returned = collateral.get_balance(c.state, alice) - balance
    assert 0 <= returned <= equity_in
    assert cash < 0  # a long's cash is negative: it paid the notional
    _replays(c)


def test_moving_margin_in_and_out() -> None:
    c = _chain()
    alice = c.addr("alice")
    out = c.block([c.tx("alice", MoveIsolatedMargin(BTC, 1_000_000))])
    assert out.receipts[0].status == ErrorCode.NOT_ISOLATED
    c.block([c.tx("alice", SetMarginMode(BTC, True))])
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, False, 500_000, 1_000)),
            c.tx("alice", PlaceOrder(BTC, True, 500_000, 1_000, IOC)),
        ]
    )
    cash = collateral.get_isolated_cash(c.state, alice, BTC)
    out = c.block([c.tx("alice", MoveIsolatedMargin(BTC, 200_000_000))])
    assert out.receipts[0].events == (
        IsolatedMarginMoved(alice, BTC, 200_000_000, cash + 200_000_000),
    )
    # Out again: at most down to the initial requirement.
    out = c.block([c.tx("alice", MoveIsolatedMargin(BTC, -200_000_001))])
    assert out.receipts[0].status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
    out = c.block([c.tx("alice", MoveIsolatedMargin(BTC, -200_000_000))])
    assert out.receipts[0].status == 0
    assert collateral.get_isolated_cash(c.state, alice, BTC) == cash
    out = c.block([c.tx("alice", MoveIsolatedMargin(BTC, 0))])
    assert out.rejected and out.rejected[0][1] == ErrorCode.BAD_AMOUNT
    _conserved(c)


def test_closing_the_position_returns_its_cash() -> None:
    c = _chain()
    alice = c.addr("alice")
    c.block([c.tx("alice", SetMarginMode(BTC, True))])
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, False, 500_000, 10)),
            c.tx("alice", PlaceOrder(BTC, True, 500_000, 10, IOC)),
        ]
    )
    assert collateral.get_isolated_cash(c.state, alice, BTC) != 0
    c.block(
        [
            c.tx("bob", PlaceOrder(BTC, True, 500_000, 10)),
            c.tx("alice", PlaceOrder(BTC, False, 500_000, 10, IOC)),
        ]
    )
    assert clearing.get_position_size(c.state, alice, BTC) == 0
    assert collateral.get_isolated_cash(c.state, alice, BTC) == 0
    assert collateral.is_isolated(c.state, alice, BTC)  # the mode stays
    _conserved(c)
    _replays(c)

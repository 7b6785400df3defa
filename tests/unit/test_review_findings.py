"""Review findings on ring 0: each test is a minimal reproduction of a bug found in review. Fixed
bugs keep their test as a regression; one still open is marked ``xfail(strict)``
so that it starts failing loudly (XPASS) once the bug is fixed.

Numbers use the test chain of ``tests/helpers/chain.py``: BTC-PERP (market 1) marks at 500,000
ticks, 10 quote per tick-lot, 10 % initial margin; ETH-PERP (market 2) marks at 30,000 ticks,
1 quote per tick-lot, min size 10 lots, 5 % initial margin; fees 100 ppm maker, 400 ppm taker.
"""

from __future__ import annotations

import msgspec
import pytest

from strata.core.errors import ErrorCode
from strata.modules import collateral
from strata.modules.book import TimeInForce
from strata.stf.block import BlockOutput, Receipt
from strata.stf.transactions import (
    BulkPlace,
    CancelAll,
    Deposit,
    PlaceOrder,
    Transfer,
    compute_transaction_hash,
)
from strata.stf.transition import get_account_risk
from tests.helpers.chain import BTC, make_chain

GTC, IOC, FOK, ALO = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY


def receipt(output: BlockOutput, tx: bytes) -> Receipt:
    tx_hash = compute_transaction_hash(tx)
    for r in output.receipts:
        if r.tx_hash == tx_hash:
            return r
    raise AssertionError("transaction not included")


def is_included(output: BlockOutput, tx: bytes) -> bool:
    tx_hash = compute_transaction_hash(tx)
    return any(r.tx_hash == tx_hash for r in output.receipts)


# ----------------------------------------------------------------------------- replay protection


def test_raising_the_nonce_window_does_not_reopen_evicted_nonces() -> None:
    c = make_chain(nonce_window=2)
    bob = c.addr("bob")
    first = c.tx("alice", Transfer(bob, 1_000))
    c.block([first])
    c.block([c.tx("alice", Transfer(bob, 1_000))])
    c.block([c.tx("alice", Transfer(bob, 1_000))])  # window is now the last two; `first` evicted
    out = c.block([first])
    assert not is_included(out, first)  # NONCE_BELOW_WINDOW: correct so far
    # A scheduled upgrade raises the window (params are resolved by height).
    c.params = msgspec.structs.replace(c.params, nonce_window=10)
    balance_before = collateral.get_balance(c.state, bob)
    out = c.block([first])
    # The signed transfer, already executed once, must not execute again.
    assert not is_included(out, first)
    assert collateral.get_balance(c.state, bob) == balance_before


# ----------------------------------------------------------------------------------------- gas


def test_matching_work_gas_fee_cannot_push_a_taker_into_negative_equity() -> None:
    # ETH: 10 lots at the 30,000 mark is 300,000 notional and reserves
    # ceil(300,000 * (50,000 + 400) / 1e6) = 15,120; one fill costs 200 gas = 20,000 at price 100.
    gas_price = 100
    reserve_per_order = 15_120
    makers = 50  # the open-order cap of the test markets
    alice_balance = 1_000 * gas_price + makers * reserve_per_order  # base fee + reservation
    c = make_chain(("alice", "bob"), balance_quote=alice_balance, gas_price_quote=gas_price)
    bob = c.addr("bob")
    asks = BulkPlace(tuple(PlaceOrder(2, False, 30_000, 10, ALO) for _ in range(makers)))
    tx = c.tx("bob", asks)
    out = c.block([tx], [Deposit(0, bob, 10_000_000_000)])
    assert receipt(out, tx).status == 0 and len(c.state.books[2]) == makers
    take = c.tx("alice", PlaceOrder(2, True, 30_000, 10 * makers, IOC))  # at the mark: no loss
    out = c.block([take])
    assert receipt(out, take).status == 0  # admitted: its reservation was covered
    risk = get_account_risk(c.state, c.addr("alice"))
    # Reservation contract (margin.compute_order_reservation): an admitted order cannot take its
    # account's equity below its initial requirement at the marks of its block.
    assert risk.equity_quote >= risk.initial_quote, risk


def test_cancel_all_markets_pays_cancel_gas_per_market() -> None:
    c = make_chain()
    tx = c.tx("alice", CancelAll(None))
    out = c.block([tx])
    assert receipt(out, tx).status == 0
    markets = len(c.state.books)
    assert markets == 2
    assert receipt(out, tx).gas_used == markets * c.params.gas.cancel


# --------------------------------------------------------------------------- bare exceptions


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="bug: nothing bounds balances/entry costs to the int64 range msgpack can encode; "
    "margin-valid trading at the market's max price and size makes build_block raise a bare "
    "OverflowError in compute_state_root (the chain halts) instead of a coded rejection",
)
def test_large_margin_valid_trading_never_raises_a_bare_python_error() -> None:
    c = make_chain(balance_quote=2 * 10**18, prices=((1, BTC.max_price_ticks), (2, 30_000)))
    price, size = BTC.max_price_ticks, BTC.max_size_lots  # 1e18 quote of notional per order
    for _ in range(12):
        maker = c.tx("bob", PlaceOrder(1, False, price, size, ALO))
        taker = c.tx("alice", PlaceOrder(1, True, price, size, IOC))
        out = c.block([maker, taker])
        # Each order is covered (it reserves ~1e17 of a ~2e18 equity); either it trades or it
        # fails with a code, but the block must not raise.
        assert receipt(out, taker).status in (0, ErrorCode.INSUFFICIENT_MARGIN)


# ------------------------------------------------------------------------------------- margin


def test_position_in_a_market_without_a_mark_carries_a_requirement() -> None:
    """Fixed: a market opens with its first oracle price; orders before it are left out
    (MARKET_NOT_ACTIVE), so no position can exist without a mark to margin it."""
    c = make_chain(balance_quote=10_000_000, prices=((1, 500_000),))  # ETH has no price yet
    bid = c.tx("bob", PlaceOrder(2, True, 30_000, 300, ALO))
    ask = c.tx("alice", PlaceOrder(2, False, 30_000, 300, IOC))  # 9,000,000 of notional
    out = c.block([bid, ask])
    assert sorted(code for _, code in out.rejected) == [ErrorCode.MARKET_NOT_ACTIVE] * 2
    assert get_account_risk(c.state, c.addr("alice")).initial_quote == 0
    out = c.block([c.tx("bob", PlaceOrder(2, True, 30_000, 300, ALO))], [c.price(2, 30_000)])
    assert out.rejected == () and len(c.state.books[2]) == 1

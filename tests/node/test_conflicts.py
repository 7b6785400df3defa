"""The per-block conflict report (node/conflicts.py): book operations per market, the busiest
market's share, the parallel bound, and accounts that span markets."""

from __future__ import annotations

import pytest

from strata.node.conflicts import report_block
from strata.stf.transactions import (
    Action,
    BulkCancel,
    BulkPlace,
    CancelAll,
    CancelOrder,
    PlaceOrder,
    SignedTransaction,
    Transfer,
)

MARKETS = (1, 2, 3)
ALICE, BOB, CAROL = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20


def _tx(account: bytes, action: Action) -> SignedTransaction:
    return SignedTransaction(account, 1, action, None, b"\x00" * 65)


def _order(market_id: int) -> PlaceOrder:
    return PlaceOrder(market_id, True, 100, 1)


def test_an_empty_block_reports_nothing_to_share() -> None:
    report = report_block([], MARKETS)
    assert report.ops_by_market == {}
    assert report.total_ops == 0
    assert report.hot_market_share == 0.0
    assert report.parallel_bound == 1.0
    assert report.cross_market_accounts == 0


def test_counts_every_book_operation_by_market() -> None:
    txs = [
        _tx(ALICE, _order(1)),
        _tx(ALICE, BulkPlace((_order(1), _order(1), _order(2)))),
        _tx(BOB, CancelOrder(2, order_id=7)),
        _tx(BOB, BulkCancel((CancelOrder(2, order_id=8), CancelOrder(2, order_id=9)))),
        _tx(CAROL, CancelAll(None)),  # every market
        _tx(CAROL, Transfer(ALICE, 5)),  # no book operation
    ]
    report = report_block(txs, MARKETS)
    assert report.ops_by_market == {1: 4, 2: 5, 3: 1}
    assert report.hot_market_share == pytest.approx(5 / 10)
    assert report.parallel_bound == pytest.approx(2.0)
    # ALICE (markets 1 and 2) and CAROL (all three) span markets; BOB stays in market 2.
    assert report.cross_market_accounts == 2


def test_one_hot_market_serializes_the_block() -> None:
    txs = [_tx(account, _order(1)) for account in (ALICE, BOB, CAROL)]
    txs.append(_tx(ALICE, CancelAll(1)))
    report = report_block(txs, MARKETS)
    assert report.ops_by_market == {1: 4}
    assert report.hot_market_share == 1.0
    assert report.parallel_bound == 1.0
    assert report.cross_market_accounts == 0

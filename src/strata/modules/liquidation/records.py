"""``liquidation``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class AccountLiquidated(msgspec.Struct, frozen=True, array_like=True, tag=23):
    """An account went under maintenance and was liquidated in this block's risk phase.

    ``equity_quote < maintenance_quote`` is why; ``close_ppm`` is the fraction of each position
    the block closes (:func:`compute_close_ppm`); ``orders_canceled`` its open orders removed.
    ``isolated_market_id`` names the isolated position liquidated on its own (its equity and
    requirement are then that position's); ``None`` for the cross-margin account."""

    account: bytes
    equity_quote: int
    maintenance_quote: int
    close_ppm: int
    orders_canceled: int
    isolated_market_id: int | None = None


class PositionLiquidated(msgspec.Struct, frozen=True, array_like=True, tag=24):
    """One position's slice in a liquidation, with every input of its price.

    Fields
    ------
    mark_ticks, index_ticks:   the prices the block used
    size_before_lots:          the signed position before
    wanted_lots:               ``ceil(|size| * close_ppm / 1e6)``
    budget_quote:              the market's liquidation notional left in this block before it
    slice_lots:                what the block closes: ``wanted`` within the budget; a stop of
                               the insurance fund (after :class:`FundDeleveraged`) closes all
                               of ``wanted`` at the mark by auto-deleveraging, whatever the
                               budget (which limits what liquidations put on the book)
    equity_share_quote:        the slice's share of the account's equity (negative: bankrupt)
    bankruptcy_value_quote:    the quote the slice closes at to bring that share to zero
    limit_price_ticks:         the bankruptcy price, limit of the book order (0: no book order)
    book_lots, book_value_quote, fee_quote:          what the book absorbed, and the fee to the
                                                     insurance fund
    backstop_lots, backstop_value_quote, fund_loss_quote, fund_loss_limit_quote:
                               what the insurance fund took over, its loss, and the per-account
                               limit that was left
    adl_lots, adl_value_quote: what auto-deleveraging closed (see :class:`Deleveraged`)
    """

    account: bytes
    market_id: int
    mark_ticks: int
    index_ticks: int
    size_before_lots: int
    wanted_lots: int
    budget_quote: int
    slice_lots: int
    equity_share_quote: int
    bankruptcy_value_quote: int
    limit_price_ticks: int
    book_lots: int
    book_value_quote: int
    fee_quote: int
    backstop_lots: int
    backstop_value_quote: int
    fund_loss_quote: int
    fund_loss_limit_quote: int
    adl_lots: int
    adl_value_quote: int


class Deleveraged(msgspec.Struct, frozen=True, array_like=True, tag=25):
    """Auto-deleveraging: ``counterparty`` (ranked ``rank``, from 0, by ``rank_key``, see
    :func:`compute_adl_key`) closed ``size_lots`` of its position against the liquidated
    ``account`` at ``value_quote`` in all (the bankruptcy value)."""

    account: bytes
    counterparty: bytes
    market_id: int
    size_lots: int
    value_quote: int
    rank: int
    rank_key: int


class FundDeleveraged(msgspec.Struct, frozen=True, array_like=True, tag=32):
    """The insurance fund's own stops (``stf/risk.py``): with ``market_id``, its position there
    lost more than ``insurance_stop_loss_ppm`` of its equity and was auto-deleveraged whole at
    the mark; without, it held more than ``insurance_deleverage_leverage_ppm`` of its equity
    (``notional_quote`` against ``equity_quote``) and ``close_ppm`` of each of its positions was
    auto-deleveraged at the mark to bring its notional to ``target_quote``. The
    :class:`Deleveraged` and :class:`PositionLiquidated` events that follow show each close."""

    equity_quote: int
    notional_quote: int
    target_quote: int
    close_ppm: int
    market_id: int | None


class BadDebtChanged(msgspec.Struct, frozen=True, array_like=True, tag=26):
    """Bad debt of ``account`` (an account left with no position and a negative balance):
    ``covered_by_fund_quote`` paid by the insurance fund, ``recorded_quote`` added to the chain's
    recorded bad debt, ``total_quote`` the record after. A repayment by the fund has ``account``
    the fund's, ``covered_by_fund_quote`` what it repaid and a negative ``recorded_quote``."""

    account: bytes
    covered_by_fund_quote: int
    recorded_quote: int
    total_quote: int

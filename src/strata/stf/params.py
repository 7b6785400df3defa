"""Chain parameters, resolved by height so that a rule change is a scheduled, replayable upgrade."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import msgspec

from strata.core.errors import ErrorCode, InvalidBlock
from strata.modules.clearing import FeeTier


class GasSchedule(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """Deterministic gas: a base cost per transaction kind plus matching work.

    Gas bounds a block's execution time: the block may use at most ``ChainParams.block_gas_limit``.
    Only base gas is charged (``gas_price_quote`` per unit, at admission); matching work is
    metered but not charged.
    """

    account_action: int = 2_000
    """ApproveAgent, RevokeAgent, Transfer, Withdraw."""
    place: int = 1_000
    """Per order placed (a bulk pays it per order)."""
    cancel: int = 300
    """Per cancel (CancelAll: per market it covers, plus per order it removes as work)."""
    per_fill: int = 200
    per_level: int = 100
    """Per price level a taker crosses."""


class ChainParams(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """Everything ``apply_block`` reads besides the state and the block."""

    chain_id: int
    bridge_address: bytes = b"\x00" * 20
    """The settlement chain's bridge contract, bound into every signature (zero until it exists)."""
    oracle_keys: tuple[bytes, ...] = ()
    """Addresses whose signed prices the prologue accepts (the genesis oracle set)."""
    oracle_staleness_ms: int = 10_000
    """A submission counts towards the index while ``block time - its time <= this``."""
    oracle_max_move_ppm: int = 50_000
    """Per block, the index moves at most ``ceil(previous * this / 1e6)`` ticks (5%)."""
    mark_ema_alpha_ppm: int = 125_000
    """Smoothing of the EMA of ``book mid - index`` in the mark price (1/8 per block)."""
    fee_tiers: tuple[FeeTier, ...] = (FeeTier(0, 100, 400),)
    gas: GasSchedule = GasSchedule()
    gas_price_quote: int = 0
    """Quote per unit of gas; zero (free trading) by default."""
    block_gas_limit: int = 50_000_000
    max_transactions_per_block: int = 100_000
    nonce_window: int = 100
    nonce_past_bound_ms: int = 2 * 24 * 3600 * 1000
    nonce_future_bound_ms: int = 24 * 3600 * 1000
    max_agents_per_account: int = 8
    funding_interval_ms: int = 3_600_000
    """Funding ticks at the multiples of this (hourly); rates below are per interval."""
    funding_interest_ppm: int = 10
    """The interest component of the funding rate (0.001% per interval)."""
    funding_clamp_ppm: int = 500
    """Bound on ``interest - average premium`` in the rate (0.05%)."""
    funding_cap_ppm: int = 40_000
    """Bound on ``|rate|`` per interval (4%)."""
    liquidation_fee_ppm: int = 5_000
    """Fee to the insurance fund on what a liquidation sells into the book (0.5% of the notional),
    never more than the account's equity left after the fills."""
    liquidation_min_close_ppm: int = 200_000
    """A liquidation closes at least this fraction of each position (20%) per block."""
    liquidation_max_notional_per_block_quote: int = 10_000_000_000_000
    """Per market and block, at most this notional (at the mark) is liquidated (10M USDC)."""
    insurance_max_leverage_ppm: int = 1_000_000
    """The backstop keeps the insurance fund's notional (at the mark) within this multiple of its
    equity (1x): what would take it further is auto-deleveraged instead."""
    insurance_deleverage_leverage_ppm: int = 2_000_000
    """When the fund's notional passes this multiple of its equity (2x), it is auto-deleveraged
    at the mark back to ``insurance_max_leverage_ppm``."""
    insurance_stop_loss_ppm: int = 100_000
    """A position of the fund whose unrealized loss passes this fraction of the fund's equity
    (10%) is auto-deleveraged whole at the mark."""
    schedule_cancel_min_delay_ms: int = 5_000
    """A dead-man switch must be set at least this far after the block's timestamp."""
    insurance_max_loss_per_account_quote: int = 1_000_000_000_000
    """Per account and block, the backstop takes over positions whose loss to the insurance fund
    is at most this (1M USDC); beyond it, auto-deleveraging."""


def check_chain_params(params: ChainParams) -> None:
    """Refuse parameters that would break an invariant (checked at genesis and at upgrades).

    Raises
    ------
    InvalidBlock
        ``MALFORMED_BLOCK`` if fee tiers are empty or unsorted, a maker rebate exceeds the lowest
        taker fee (the fee pool could go negative), a bound is not positive, an oracle
        rate is not in ``(0, 1_000_000]``, the funding interval is not positive or a funding
        rate (interest, clamp, cap) is outside ``[-1e6, 1e6]`` (clamp and cap: ``[0, 1e6]``), or
        a liquidation parameter is out of range (fee ``[0, 1e6]``, minimum close ``(0, 1e6]``,
        per-block notional positive, fund loss per account non-negative).
    """
    tiers = params.fee_tiers
    ok = (
        len(tiers) > 0
        and tiers[0].min_volume_quote == 0
        and all(a.min_volume_quote < b.min_volume_quote for a, b in pairwise(tiers))
        and all(t.taker_ppm >= 0 for t in tiers)
        and -min(t.maker_ppm for t in tiers) <= min(t.taker_ppm for t in tiers)
        and params.nonce_window > 0
        and params.block_gas_limit > 0
        and params.gas_price_quote >= 0
        and len(params.bridge_address) == 20
        and params.oracle_staleness_ms > 0
        and 0 < params.oracle_max_move_ppm <= 1_000_000
        and 0 < params.mark_ema_alpha_ppm <= 1_000_000
        and params.funding_interval_ms > 0
        and -1_000_000 <= params.funding_interest_ppm <= 1_000_000
        and 0 <= params.funding_clamp_ppm <= 1_000_000
        and 0 <= params.funding_cap_ppm <= 1_000_000
        and 0 <= params.liquidation_fee_ppm <= 1_000_000
        and 0 < params.liquidation_min_close_ppm <= 1_000_000
        and params.liquidation_max_notional_per_block_quote > 0
        and params.insurance_max_loss_per_account_quote >= 0
        and params.schedule_cancel_min_delay_ms >= 0
        and 0 <= params.insurance_max_leverage_ppm <= params.insurance_deleverage_leverage_ppm
        and 0 <= params.insurance_stop_loss_ppm <= 1_000_000
    )
    if not ok:
        raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, "invalid chain parameters")


class ParamsSchedule:
    """Parameters by activation height: ``at(h)`` is the last entry activated at or before ``h``."""

    def __init__(self, entries: Sequence[tuple[int, ChainParams]]) -> None:
        ordered = sorted(entries, key=lambda e: e[0])
        if not ordered or ordered[0][0] != 0:
            raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, "the schedule must start at height 0")
        for _, params in ordered:
            check_chain_params(params)
        self._entries = tuple(ordered)

    def at(self, height: int) -> ChainParams:
        chosen = self._entries[0][1]
        for activation, params in self._entries:
            if activation <= height:
                chosen = params
        return chosen

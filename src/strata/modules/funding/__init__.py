"""Funding: premium sampling, the funding rate per interval, the cumulative funding index, and
the lazy, exactly conserved settlement of each position's funding (spec: ``README.md``).

=============  ======  ====================  ==================================================
table          prefix  key                   value
=============  ======  ====================  ==================================================
``funding``    0x80    market id (4 bytes)   :class:`FundingRecord`
=============  ======  ====================  ==================================================

Units
-----
- premium and rates: parts per million (ppm) of the mark notional, per funding interval;
- the cumulative funding index: **micro-quote per lot** (1e-6 quote unit, i.e. 1e-12 USDC, per
  lot). A tick at ``rate_ppm`` with mark ``mark_ticks`` advances it by exactly
  ``rate_ppm * mark_ticks * quote_per_tick_lot``: the funding of one lot is
  ``rate_ppm / 1e6 * mark_ticks * quote_per_tick_lot`` quote units, and the index holds it times
  1e6, so the index never rounds;
- payments: quote units, ``ceil(size_lots * index_delta / 1e6)`` (``margin.compute_funding_owed``),
  rounded against the account both ways. Positive index moves make longs pay and shorts receive.

Conservation
------------
A settlement that owes ``c = ceil(e / 1e6)`` quote for an exact ``e`` micro-quote moves ``c``
from the account's balance into the market's ``in_transit_quote`` and adds the rounding excess
``c * 1e6 - e`` (in ``[0, 1e6)``) to ``dust_micro``; each whole quote unit of dust leaves
``in_transit_quote`` for the insurance fund. Hence, per market, at every moment::

    in_transit_quote * 1e6 - dust_micro == sum of the exact amounts settled so far
                                        == -(exact funding still unsettled by open positions)

and when every position has settled at the current index, ``in_transit_quote == dust_micro == 0``:
what payers paid equals what receivers got plus what the insurance fund took, to the unit. No
quote is created: receipts round down, payments round up, the excess goes to the fund.
"""

from __future__ import annotations

from collections.abc import MutableMapping

import msgspec

from strata.core.units import PPM
from strata.modules import collateral, markets, oracle
from strata.modules.funding.records import FundingRecord as FundingRecord
from strata.modules.funding.records import FundingTick as FundingTick
from strata.modules.margin import Position, compute_funding_owed
from strata.modules.markets import MARKET_KEY
from strata.state.store import State, Table


def register_tables(state: State) -> None:
    state.add_table(Table("funding", 0x80, state.journal, MARKET_KEY, FundingRecord))


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


def get_funding(state: State, market_id: int) -> FundingRecord | None:
    record: FundingRecord | None = state.tables["funding"].data.get(market_id)
    return record


def get_funding_index(state: State, market_id: int) -> int:
    """The market's cumulative funding index in micro-quote per lot (0 before its first tick)."""
    record = get_funding(state, market_id)
    return 0 if record is None else record.index_micro


def sum_in_transit(state: State) -> int:
    """Sum over markets of ``in_transit_quote`` (for the conservation invariant)."""
    records: MutableMapping[int, FundingRecord] = state.tables["funding"].data
    return sum(records[m].in_transit_quote for m in sorted(records))


# --------------------------------------------------------------------------------------------
# Rules (pure)
# --------------------------------------------------------------------------------------------


def _div_trunc(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded toward zero (``denominator > 0``): symmetric, so
    neither side of the market gains from the rounding of a premium."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def compute_premium_ppm(mark_ticks: int, index_ticks: int) -> int:
    """``(mark - index) * 1e6 / index``, rounded toward zero. Example: mark 500_250, index
    500_000: 500 ppm; mark 599_999, index 600_000: ``-1.67`` gives -1 (floor would give -2)."""
    return _div_trunc((mark_ticks - index_ticks) * PPM, index_ticks)


def compute_average_premium_ppm(premium_sum_ppm: int, samples: int) -> int:
    """The interval's average premium, rounded toward zero; 0 with no sample."""
    return 0 if samples == 0 else _div_trunc(premium_sum_ppm, samples)


def compute_funding_rate_ppm(
    premium_ppm: int, interest_ppm: int, clamp_ppm: int, cap_ppm: int
) -> int:
    """``rate = premium + clamp(interest - premium, -clamp, +clamp)``, then capped to
    ``[-cap, +cap]`` (exact integers; no rounding).

    With the default interest 10 and clamp 500: a premium within ``[-490, 510]`` ppm gives the
    interest rate (10); a premium of 2_000 gives 1_500; of -2_000, -1_500. The cap (default
    40_000, 4% per interval) bounds the funding of a dislocated market.
    """
    spread = interest_ppm - premium_ppm
    spread = max(-clamp_ppm, min(clamp_ppm, spread))
    return max(-cap_ppm, min(cap_ppm, premium_ppm + spread))


def compute_index_step_micro(rate_ppm: int, mark_ticks: int, quote_per_tick_lot: int) -> int:
    """The index move of one tick, micro-quote per lot: ``rate_ppm * mark * qptl`` (exact)."""
    return rate_ppm * mark_ticks * quote_per_tick_lot


def compute_next_funding_ms(timestamp_ms: int, interval_ms: int) -> int:
    """The first interval boundary strictly after ``timestamp_ms`` (boundaries are the
    multiples of the interval since the epoch, so hourly funding ticks on the hour)."""
    return (timestamp_ms // interval_ms + 1) * interval_ms


# --------------------------------------------------------------------------------------------
# The prologue step
# --------------------------------------------------------------------------------------------


def apply_block_funding(
    state: State,
    market_id: int,
    timestamp_ms: int,
    interval_ms: int,
    interest_ppm: int,
    clamp_ppm: int,
    cap_ppm: int,
) -> FundingTick | None:
    """The market's funding step for the block at ``timestamp_ms``, after its index and mark.

    1. A market without a mark has no funding yet. Its first step creates its record with the
       index at 0 and the next tick at the first interval boundary after ``timestamp_ms``.
    2. **Tick.** If ``timestamp_ms >= next_funding_ms``: the rate comes from the average premium
       of the samples taken since the last tick (:func:`compute_funding_rate_ppm`; with no
       sample the rate is 0), the index advances by :func:`compute_index_step_micro` at this
       block's mark, the samples reset and the next tick is the first boundary after
       ``timestamp_ms``. A chain that skipped boundaries (no block for hours) pays one interval,
       not one per boundary. Returns the :class:`FundingTick`.
    3. **Sample.** Unless the market's index is stale, this block's premium
       (:func:`compute_premium_ppm` of the new mark and index) joins the current interval.
    """
    mark = oracle.get_mark_price(state, market_id)
    index = oracle.get_index_price(state, market_id)
    if mark is None or index is None:
        return None
    record = get_funding(state, market_id)
    if record is None:
        record = FundingRecord(0, compute_next_funding_ms(timestamp_ms, interval_ms))
    tick: FundingTick | None = None
    if timestamp_ms >= record.next_funding_ms:
        market = markets.get_market(state, market_id)
        assert market is not None
        average = compute_average_premium_ppm(record.premium_sum_ppm, record.premium_samples)
        rate = (
            compute_funding_rate_ppm(average, interest_ppm, clamp_ppm, cap_ppm)
            if record.premium_samples
            else 0
        )
        step = compute_index_step_micro(rate, mark, market.quote_per_tick_lot)
        tick = FundingTick(
            market_id,
            timestamp_ms,
            average,
            record.premium_samples,
            rate,
            mark,
            step,
            record.index_micro + step,
        )
        record = msgspec.structs.replace(
            record,
            index_micro=record.index_micro + step,
            next_funding_ms=compute_next_funding_ms(timestamp_ms, interval_ms),
            premium_sum_ppm=0,
            premium_samples=0,
            rate_ppm=rate,
        )
    if not oracle.is_stale(state, market_id):
        record = msgspec.structs.replace(
            record,
            premium_sum_ppm=record.premium_sum_ppm + compute_premium_ppm(mark, index),
            premium_samples=record.premium_samples + 1,
        )
    state.tables["funding"].put(market_id, record)
    return tick


# --------------------------------------------------------------------------------------------
# Lazy settlement
# --------------------------------------------------------------------------------------------


def settle_position_funding(
    state: State, account: bytes, position: Position
) -> tuple[Position, int]:
    """Settle ``position``'s funding up to the market's index now; return the position with its
    ``funding_index_micro`` brought to the index, and the quote the account paid (negative: it
    received). The caller stores the position.

    The payment ``c = margin.compute_funding_owed(size, index_now, index_then)`` (rounded up:
    against the account) leaves the balance for the market's ``in_transit_quote``; the rounding
    excess ``c * 1e6 - size * (index_now - index_then)`` joins ``dust_micro``, whose whole quote
    units go to the insurance fund (see the module docstring). A flat position (a new one) only
    takes the index. Settlements of different accounts add to the same market record, and
    additions commute (the dust's carry too: the fund receives ``floor(total dust / 1e6)``
    whatever the order), so the settlement phase stays partitionable by account.
    """
    record = get_funding(state, position.market_id)
    if record is None:
        return position, 0
    index = record.index_micro
    if position.funding_index_micro == index:
        return position, 0
    settled = msgspec.structs.replace(position, funding_index_micro=index)
    exact = position.size_lots * (index - position.funding_index_micro)
    if exact == 0:
        return settled, 0
    paid = compute_funding_owed(position.size_lots, index, position.funding_index_micro)
    dust = record.dust_micro + paid * PPM - exact
    to_fund = dust // PPM
    collateral.add_position_cash(state, account, position.market_id, -paid)
    if to_fund:
        collateral.add_insurance_fund(state, to_fund)
    state.tables["funding"].put(
        position.market_id,
        msgspec.structs.replace(
            record,
            in_transit_quote=record.in_transit_quote + paid - to_fund,
            dust_micro=dust - to_fund * PPM,
        ),
    )
    return settled, paid

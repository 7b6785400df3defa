"""Tiered margin requirements (``margin.compute_requirement``, ``markets.MarginTier``): worked
numbers, the flat case, tier boundaries, and continuity and monotonicity as properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.units import compute_ppm_ceil
from strata.modules import margin
from strata.modules.margin import MarketRiskParams
from strata.modules.markets import MarginTier

ONE_TIER = (MarginTier(1_000_000, 200_000, 100_000),)
TWO_TIERS = (MarginTier(1_000_000, 200_000, 100_000), MarginTier(5_000_000, 500_000, 250_000))


def test_docstring_example() -> None:
    """Base 5%, one tier from 1_000_000 at 10%: 3_000_000 needs 50_000 + 200_000."""
    assert margin.compute_requirement(3_000_000, 50_000, ONE_TIER, False) == 250_000


def test_initial_uses_the_tiers_initial_rates() -> None:
    # 1_000_000 * 10% + 2_000_000 * 20%
    assert margin.compute_requirement(3_000_000, 100_000, ONE_TIER, True) == 500_000


def test_no_tiers_is_the_flat_rate_rounded_up() -> None:
    for notional in (0, 1, 999_999, 1_234_567):
        assert margin.compute_requirement(notional, 50_000, (), False) == compute_ppm_ceil(
            notional, 50_000
        )
    assert margin.compute_requirement(1, 50_000, (), False) == 1  # 0.05 rounds up


def test_at_and_below_the_tier_start_only_the_base_rate() -> None:
    assert margin.compute_requirement(1_000_000, 50_000, ONE_TIER, False) == 50_000
    assert margin.compute_requirement(999_999, 50_000, ONE_TIER, False) == 50_000  # 49_999.95
    assert margin.compute_requirement(1_000_001, 50_000, ONE_TIER, False) == 50_001  # + 0.1


def test_two_tiers_worked() -> None:
    """6_000_000 of notional: 1M at 5%, 4M at 10%, 1M at 25% = 50_000 + 400_000 + 250_000."""
    assert margin.compute_requirement(6_000_000, 50_000, TWO_TIERS, False) == 700_000
    # initial: 1M at 10%, 4M at 20%, 1M at 50%
    assert margin.compute_requirement(6_000_000, 100_000, TWO_TIERS, True) == 1_400_000


def test_rounded_up_once_not_per_tier() -> None:
    """The slices' exact parts are summed before one ceiling: 2 units, the first at 50% and
    the second (a tier from 1) at 50%, need 0.5 + 0.5 = 1, not ceil(0.5) + ceil(0.5) = 2."""
    tiers = (MarginTier(1, 0, 500_000),)
    assert margin.compute_requirement(2, 500_000, tiers, False) == 1
    assert margin.compute_requirement(3, 500_000, tiers, False) == 2  # ceil(1.5)


def test_market_risk_params_use_tiers() -> None:
    params = MarketRiskParams(10_000, 1, 100_000, 50_000, 0, ONE_TIER)
    assert params.maintenance_requirement(3_000_000) == 250_000
    assert params.initial_requirement(3_000_000) == 500_000
    flat = MarketRiskParams(10_000, 1, 100_000, 50_000)
    assert flat.maintenance_requirement(3_000_000) == 150_000


@settings(max_examples=300, deadline=None)
@given(
    notional=st.integers(0, 10**13),
    step=st.integers(1, 10**9),
    base=st.integers(0, 500_000),
    extra=st.lists(st.integers(0, 300_000), min_size=0, max_size=3),
    starts=st.lists(st.integers(1, 10**12), min_size=3, max_size=3, unique=True),
)
def test_monotonic_and_between_flat_bounds(
    notional: int, step: int, base: int, extra: list[int], starts: list[int]
) -> None:
    """With rising rates, the requirement rises with the notional, and lies between the flat
    requirement at the base rate and at the highest rate."""
    rates = [base]
    for e in extra:
        rates.append(rates[-1] + e)
    tiers = tuple(
        MarginTier(start, rate * 2, rate)
        for start, rate in zip(sorted(starts), rates[1:], strict=False)
    )
    low = margin.compute_requirement(notional, base, tiers, False)
    high = margin.compute_requirement(notional + step, base, tiers, False)
    assert low <= high
    assert compute_ppm_ceil(notional, base) <= low <= compute_ppm_ceil(notional, rates[-1])


@settings(max_examples=200, deadline=None)
@given(start=st.integers(1, 10**12), base=st.integers(0, 500_000), rate=st.integers(0, 10**6))
def test_continuous_at_the_tier_start(start: int, base: int, rate: int) -> None:
    """One unit past a tier's start adds at most ``ceil(rate / 1e6)`` (no jump)."""
    tiers = (MarginTier(start, rate, rate),)
    at = margin.compute_requirement(start, base, tiers, False)
    after = margin.compute_requirement(start + 1, base, tiers, False)
    assert 0 <= after - at <= 1 + rate // 1_000_000

"""Markets in display units: exact decimal <-> tick/lot/quote conversions, OFF_GRID, listings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.client.errors import RpcCode, RpcError
from strata.client.markets import (
    MarketInfo,
    find_market,
    format_decimal,
    market_info_from_json,
    parse_decimal,
    quote_to_usdc,
    usdc_to_quote,
)
from tests.helpers.chain import BTC, ETH

BTC_INFO = MarketInfo.of(BTC, "0.1", "0.0001")
ETH_INFO = MarketInfo.of(ETH, "0.01", "0.0001")
MARKETS = {1: BTC_INFO, 2: ETH_INFO}


def test_price_and_size_convert_exactly() -> None:
    assert BTC_INFO.price_to_ticks("50010.5") == 500_105
    assert BTC_INFO.price_to_ticks("50010.50") == 500_105
    assert BTC_INFO.price_to_ticks("0.1") == 1
    assert BTC_INFO.size_to_lots("0.25") == 2_500
    assert BTC_INFO.size_to_lots("1") == 10_000
    assert ETH_INFO.price_to_ticks("3000.01") == 300_001
    assert ETH_INFO.size_to_lots("0.0001") == 1
    assert BTC_INFO.ticks_to_price(500_105) == "50010.5"
    assert BTC_INFO.ticks_to_price(500_100) == "50010"
    assert BTC_INFO.lots_to_size(2_500) == "0.25"
    assert ETH_INFO.lots_to_size(10_000) == "1"


def test_notional_matches_quote_per_tick_lot() -> None:
    # price_ticks * size_lots * quote_per_tick_lot is the notional in quote units (1e-6 USDC).
    price, size = "50010.5", "0.25"
    notional_quote = (
        BTC_INFO.price_to_ticks(price) * BTC_INFO.size_to_lots(size) * BTC.quote_per_tick_lot
    )
    assert Decimal(notional_quote) / 1_000_000 == Decimal(price) * Decimal(size)


@pytest.mark.parametrize(
    ("info", "price"), [(BTC_INFO, "50010.55"), (BTC_INFO, "0.05"), (ETH_INFO, "3000.001")]
)
def test_off_grid_price_is_refused_never_rounded(info: MarketInfo, price: str) -> None:
    with pytest.raises(RpcError) as exc:
        info.price_to_ticks(price)
    assert exc.value.code == RpcCode.OFF_GRID
    assert exc.value.name == "OFF_GRID"


@pytest.mark.parametrize("size", ["0.00001", "0.25005", "1.00000001"])
def test_off_grid_size(size: str) -> None:
    with pytest.raises(RpcError) as exc:
        BTC_INFO.size_to_lots(size)
    assert exc.value.code == RpcCode.OFF_GRID


def test_usdc_has_six_decimals() -> None:
    assert usdc_to_quote("1000.5") == 1_000_500_000
    assert usdc_to_quote("0.000001") == 1
    assert quote_to_usdc(1_000_500_000) == "1000.5"
    assert quote_to_usdc(-5) == "-0.000005"
    assert quote_to_usdc(0) == "0"
    with pytest.raises(RpcError) as exc:
        usdc_to_quote("0.0000001")
    assert exc.value.code == RpcCode.OFF_GRID


@pytest.mark.parametrize(
    "bad", [1.5, 1, "1e3", "1E3", "NaN", "inf", " 1", "1.", ".5", "+1", "01", ""]
)
def test_only_plain_decimal_strings_are_accepted(bad: object) -> None:
    with pytest.raises(RpcError) as exc:
        parse_decimal(bad, "price")
    assert exc.value.code == RpcCode.INVALID_PARAMS


@pytest.mark.parametrize("bad", ["0", "-0.1", "0.0"])
def test_non_positive_price_and_size(bad: str) -> None:
    for convert in (BTC_INFO.price_to_ticks, BTC_INFO.size_to_lots):
        with pytest.raises(RpcError) as exc:
            convert(bad)
        assert exc.value.code == RpcCode.INVALID_PARAMS


def test_check_ties_display_units_to_consensus_units() -> None:
    BTC_INFO.check()
    ETH_INFO.check()
    with pytest.raises(ValueError, match="quote_per_tick_lot"):
        MarketInfo.of(BTC, "0.01", "0.0001")  # 0.01 * 0.0001 * 1e6 = 1, not 10
    with pytest.raises(ValueError, match="quote_per_tick_lot"):
        MarketInfo.of(ETH, "1", "0.001")
    # Another pair with the same product is consistent too.
    MarketInfo.of(BTC, "1", "0.00001").check()


def test_find_market_by_symbol_or_id() -> None:
    assert find_market(MARKETS, "BTC-PERP") is BTC_INFO
    assert find_market(MARKETS, 2) is ETH_INFO
    for unknown in ("DOGE-PERP", 3, True, None, 1.0):
        with pytest.raises(RpcError) as exc:
            find_market(MARKETS, unknown)
        assert exc.value.code == RpcCode.UNKNOWN_MARKET


def test_market_info_from_api_listing() -> None:
    listing = {
        "market_id": 1,
        "symbol": "BTC-PERP",
        "tick_size": "0.1",
        "lot_size": "0.0001",
        "quote_per_tick_lot": 10,
        "min_size": "0.0001",
        "max_size": "1000",
        "initial_margin_ppm": 100_000,
        "maintenance_margin_ppm": 50_000,
        "status": "active",
        "mark_price": "50000",
    }
    info = market_info_from_json(listing)
    assert info.min_size_lots == 1
    assert info.max_size_lots == 10_000_000
    assert info.status == 0
    assert info.price_to_ticks("50010.5") == 500_105
    # MarketInfo.to_json() (with *_lots fields) is read back identically.
    assert market_info_from_json(BTC_INFO.to_json()) == BTC_INFO
    with pytest.raises(ValueError):
        market_info_from_json({**listing, "quote_per_tick_lot": 11})
    with pytest.raises(ValueError):
        market_info_from_json({k: v for k, v in listing.items() if k != "tick_size"})


@given(st.integers(min_value=1, max_value=10**15))
def test_ticks_round_trip(ticks: int) -> None:
    assert BTC_INFO.price_to_ticks(BTC_INFO.ticks_to_price(ticks)) == ticks
    assert ETH_INFO.size_to_lots(ETH_INFO.lots_to_size(ticks)) == ticks


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_quote_round_trip(amount_quote: int) -> None:
    text = quote_to_usdc(amount_quote)
    assert Decimal(text) * 1_000_000 == amount_quote
    if amount_quote > 0:
        assert usdc_to_quote(text) == amount_quote
    assert format_decimal(Decimal(text)) == text


@pytest.mark.parametrize(
    "text", ["1.00000000000000000000000000001", "12345678901234567890.123456789012345678901"]
)
def test_long_decimals_are_not_rounded_by_the_decimal_context(text: str) -> None:
    # Decimal's default 28-digit precision would make these look like whole numbers of ticks.
    with pytest.raises(RpcError) as exc:
        BTC_INFO.price_to_ticks(text)
    assert exc.value.code == RpcCode.OFF_GRID
    with pytest.raises(RpcError) as exc:
        usdc_to_quote(text + "1")
    assert exc.value.code == RpcCode.OFF_GRID
    assert BTC_INFO.price_to_ticks("9" * 40 + ".1") == int("9" * 40 + "1")

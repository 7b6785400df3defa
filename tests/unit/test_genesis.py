"""Genesis refuses listings and parameters that would break an invariant."""

from __future__ import annotations

import msgspec
import pytest

from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.modules.clearing import FeeTier
from strata.stf.genesis import GenesisConfig, make_genesis
from strata.stf.params import ChainParams
from tests.helpers.chain import BTC

PARAMS = ChainParams(chain_id=1)


@pytest.mark.parametrize(
    "change",
    [
        {"maintenance_margin_ppm": 200_000},  # above the initial fraction
        {"min_size_lots": 0},
        {"quote_per_tick_lot": 0},
        {"max_size_lots": 10**9},  # one order's notional above 2**60 quote
    ],
)
def test_invalid_listing_is_refused(change: dict[str, int]) -> None:
    market = msgspec.structs.replace(BTC, **change)
    with pytest.raises(InvalidTransaction) as raised:
        make_genesis(GenesisConfig(params=PARAMS, timestamp_ms=1, markets=(market,)))
    assert raised.value.code == ErrorCode.BAD_AMOUNT


def test_a_maker_rebate_above_the_lowest_taker_fee_is_refused() -> None:
    params = ChainParams(chain_id=1, fee_tiers=(FeeTier(0, -500, 400),))
    with pytest.raises(InvalidBlock) as raised:
        make_genesis(GenesisConfig(params=params, timestamp_ms=1, markets=(BTC,)))
    assert raised.value.code == ErrorCode.MALFORMED_BLOCK

"""Oracle: the latest index price per market, posted by the genesis oracle set.

=============  ======  =====================  ===========================================
table          prefix  key                    value
=============  ======  =====================  ===========================================
``oracle``     0x30    market id (4 bytes)    :class:`OracleRecord`
=============  ======  =====================  ===========================================

This is the minimal oracle of the trading core: one price per market, the newest accepted
submission. The risk engine replaces it with a median of fresh submissions, a staleness bound and
a per-block clamp. Until then the mark price *is* the latest oracle price.
"""

from __future__ import annotations

import msgspec

from strata.modules.markets import MARKET_KEY
from strata.state.store import State, Table


class OracleRecord(msgspec.Struct, frozen=True, array_like=True):
    """The latest oracle price of a market, in ticks, and the time it was observed."""

    price_ticks: int
    timestamp_ms: int


def register_tables(state: State) -> None:
    state.add_table(Table("oracle", 0x30, state.journal, MARKET_KEY, OracleRecord))


def get_oracle(state: State, market_id: int) -> OracleRecord | None:
    record: OracleRecord | None = state.tables["oracle"].data.get(market_id)
    return record


def get_mark_price(state: State, market_id: int) -> int | None:
    """The mark price in ticks (the latest oracle price), or ``None`` before the first price."""
    record: OracleRecord | None = state.tables["oracle"].data.get(market_id)
    return None if record is None else record.price_ticks


def is_newer_price(state: State, market_id: int, timestamp_ms: int) -> bool:
    """Whether a submission observed at ``timestamp_ms`` is newer than the stored one."""
    record = get_oracle(state, market_id)
    return record is None or timestamp_ms > record.timestamp_ms


def set_oracle_price(state: State, market_id: int, price_ticks: int, timestamp_ms: int) -> None:
    """Store an accepted price (the prologue checks signer, market, range and freshness)."""
    state.tables["oracle"].put(market_id, OracleRecord(price_ticks, timestamp_ms))

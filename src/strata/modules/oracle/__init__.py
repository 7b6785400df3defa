"""Oracle: the index and mark price of every market (the spec is ``README.md`` beside this file).

======================  ======  ==============================  ===============================
table                   prefix  key                             value
======================  ======  ==============================  ===============================
``oracle``              0x30    market id (4 bytes)             :class:`OracleRecord`
``oracle_submissions``  0x31    market id (4 B) ‖ signer (20 B) :class:`Submission`
``last_trade``          0x32    market id (4 bytes)             last fill price in ticks
======================  ======  ==============================  ===============================

Every block's prologue, after the system inputs, runs :func:`apply_block_prices` for each market
in ascending id order:

1. **Index.** The *fresh* submissions are the latest one of each oracle key whose
   ``timestamp_ms >= block_timestamp_ms - staleness_ms``. Their **lower median**
   (:func:`compute_median_low`: the element at index ``(n - 1) // 2`` of the sorted prices, so
   always a price that some key submitted, never a rounded mean) is **clamped** to within
   ``max_move_ppm`` of the previous index (:func:`compute_clamped_index`). The first index of a
   market (none before it) is the median as is. With no fresh submission the market is **stale**:
   its index stays where it was. A market still on its genesis price (no key of the oracle set
   has ever submitted for it) is never stale: staleness starts with the first submission.
2. **Mark.** ``mark = median(basis_component, book_component, index)``
   (:func:`compute_mark_price`) from the book as it stood at block start, with the EMA of the
   basis (book mid - index) updated first when the book has both sides (:func:`compute_basis_ema`).

Units: prices in ticks; the basis EMA in *micro-ticks* (millionths of a tick, so the EMA keeps
six decimals of precision in an integer); rates in parts per million.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata.core.units import PPM, div_ceil, div_floor
from strata.modules.markets import MARKET_KEY
from strata.modules.oracle.records import OracleFresh as OracleFresh
from strata.modules.oracle.records import OracleRecord as OracleRecord
from strata.modules.oracle.records import OracleStale as OracleStale
from strata.modules.oracle.records import Submission as Submission
from strata.state.store import KeyCodec, State, Table

MICRO: int = 1_000_000
"""Micro-ticks per tick (the unit of :attr:`OracleRecord.basis_ema_micro`)."""


def _encode_submission_key(key: tuple[int, bytes]) -> bytes:
    return key[0].to_bytes(4, "big") + key[1]


def _decode_submission_key(data: bytes) -> tuple[int, bytes]:
    if len(data) != 24:
        raise ValueError(f"a 24-byte key, got {len(data)} bytes")
    return int.from_bytes(data[:4], "big"), data[4:]


SUBMISSION_KEY = KeyCodec(_encode_submission_key, _decode_submission_key)
"""``(market_id, signer)`` as 4 big-endian bytes ‖ the 20-byte signer address."""


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("oracle", 0x30, j, MARKET_KEY, OracleRecord))
    state.add_table(Table("oracle_submissions", 0x31, j, SUBMISSION_KEY, Submission))
    state.add_table(Table("last_trade", 0x32, j, MARKET_KEY, int))


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


def get_oracle(state: State, market_id: int) -> OracleRecord | None:
    record: OracleRecord | None = state.tables["oracle"].get(market_id)
    return record


def get_index_price(state: State, market_id: int) -> int | None:
    """The index price in ticks, or ``None`` before the market's first price."""
    record = get_oracle(state, market_id)
    return None if record is None else record.index_ticks


def get_mark_price(state: State, market_id: int) -> int | None:
    """The mark price in ticks, or ``None`` before the market's first price."""
    record = get_oracle(state, market_id)
    return None if record is None else record.mark_ticks


def is_stale(state: State, market_id: int) -> bool:
    """Whether the market's index is stale (no fresh submission at the latest block)."""
    record = get_oracle(state, market_id)
    return record is not None and record.stale_since_ms is not None


def get_submission(state: State, market_id: int, signer: bytes) -> Submission | None:
    submission: Submission | None = state.tables["oracle_submissions"].get((market_id, signer))
    return submission


def get_last_trade_price(state: State, market_id: int) -> int | None:
    """The price in ticks of the market's latest fill, or ``None`` before its first fill."""
    price: int | None = state.tables["last_trade"].get(market_id)
    return price


def is_newer_price(state: State, market_id: int, signer: bytes, timestamp_ms: int) -> bool:
    """Whether a submission observed at ``timestamp_ms`` is newer than ``signer``'s stored one."""
    submission = get_submission(state, market_id, signer)
    return submission is None or timestamp_ms > submission.timestamp_ms


# --------------------------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------------------------


def set_genesis_price(state: State, market_id: int, price_ticks: int) -> None:
    """The market's first index and mark, set at genesis (no submission stands behind it)."""
    state.tables["oracle"].put(market_id, OracleRecord(price_ticks, price_ticks))


def record_submission(
    state: State, market_id: int, signer: bytes, price_ticks: int, timestamp_ms: int
) -> None:
    """Store an accepted submission (the prologue checks signer, market, range and freshness).
    It counts towards the index from the end of the prologue of this block."""
    state.tables["oracle_submissions"].put(
        (market_id, signer), Submission(price_ticks, timestamp_ms)
    )


def record_trade_price(state: State, market_id: int, price_ticks: int) -> None:
    """Remember the market's latest fill price (called by matching, once per market per block)."""
    state.tables["last_trade"].put(market_id, price_ticks)


# --------------------------------------------------------------------------------------------
# Rules (pure)
# --------------------------------------------------------------------------------------------


def compute_median_low(values: Sequence[int]) -> int:
    """The lower median: ``sorted(values)[(n - 1) // 2]``.

    For an odd count it is the median; for an even count the lower of the two middle values
    (so ``[100, 110]`` gives 100). Always one of the values: no rounding, and no single value can
    drag it beyond its neighbours. Raises ``ValueError`` for no values.
    """
    if not values:
        raise ValueError("the median of nothing")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def compute_max_index_move(previous_ticks: int, max_move_ppm: int) -> int:
    """The largest move of the index in one block: ``ceil(previous * max_move_ppm / 1e6)`` ticks.

    Rounded up, so a positive bound always allows at least one tick (a low-priced market can
    still move); e.g. previous 10 ticks at 50_000 ppm: ``ceil(0.5) = 1``.
    """
    return div_ceil(previous_ticks * max_move_ppm, PPM)


def compute_clamped_index(median_ticks: int, previous_ticks: int | None, max_move_ppm: int) -> int:
    """The new index: ``median`` clamped to ``previous ± compute_max_index_move(previous)``,
    never below 1 tick; the first index (``previous is None``) is the median as is.

    Example: previous 1_000, median 1_200, 50_000 ppm: the move is at most
    ``ceil(1_000 * 50_000 / 1e6) = 50``, so the index is 1_050.
    """
    if previous_ticks is None:
        return median_ticks
    step = compute_max_index_move(previous_ticks, max_move_ppm)
    return max(1, previous_ticks - step, min(previous_ticks + step, median_ticks))


def compute_basis_ema(
    ema_micro: int, best_bid_ticks: int, best_ask_ticks: int, index_ticks: int, alpha_ppm: int
) -> int:
    """One EMA step of the basis ``mid - index``, in micro-ticks.

    ``sample = (bid + ask) * MICRO / 2 - index * MICRO`` (exact: ``MICRO`` is even), then
    ``ema' = ema + floor((sample - ema) * alpha_ppm / 1e6)``. Floor rounding biases the EMA by
    less than one micro-tick per block, downwards (the conservative side for a long's mark).

    Example: ema 0, bid 1_000, ask 1_010, index 1_000, alpha 125_000 (1/8): sample is
    5_000_000 micro-ticks (5 ticks), so ema' = 625_000 (0.625 tick).
    """
    sample = (best_bid_ticks + best_ask_ticks) * (MICRO // 2) - index_ticks * MICRO
    return ema_micro + div_floor((sample - ema_micro) * alpha_ppm, PPM)


def compute_book_price(
    best_bid_ticks: int | None,
    best_ask_ticks: int | None,
    last_trade_ticks: int | None,
    index_ticks: int,
) -> int:
    """The median of (best bid, best ask, last trade), each missing one replaced by the index.

    Example: bid 990, ask 1_020, last 1_500: 1_020 (a single stale or manipulated trade cannot
    move it outside the spread).
    """
    return compute_median_low(
        [
            index_ticks if best_bid_ticks is None else best_bid_ticks,
            index_ticks if best_ask_ticks is None else best_ask_ticks,
            index_ticks if last_trade_ticks is None else last_trade_ticks,
        ]
    )


def compute_mark_components(
    index_ticks: int,
    basis_ema_micro: int,
    best_bid_ticks: int | None,
    best_ask_ticks: int | None,
    last_trade_ticks: int | None,
) -> tuple[int, int, int]:
    """The three inputs of the mark: ``(index + floor(ema / MICRO), book price, index)``."""
    return (
        index_ticks + div_floor(basis_ema_micro, MICRO),
        compute_book_price(best_bid_ticks, best_ask_ticks, last_trade_ticks, index_ticks),
        index_ticks,
    )


def compute_mark_price(components: tuple[int, int, int]) -> int:
    """The median of the three components (so the mark always lies between their min and max,
    and one manipulated input alone cannot move it)."""
    return compute_median_low(components)


# --------------------------------------------------------------------------------------------
# The prologue step
# --------------------------------------------------------------------------------------------

OracleEvent = OracleStale | OracleFresh


def get_fresh_prices(
    state: State,
    market_id: int,
    oracle_keys: Sequence[bytes],
    timestamp_ms: int,
    staleness_ms: int,
) -> list[int]:
    """The prices of the keys' latest submissions with ``timestamp_ms >= block - staleness``, in
    the order of ``oracle_keys`` (the median does not depend on it)."""
    oldest = timestamp_ms - staleness_ms
    prices: list[int] = []
    for signer in oracle_keys:
        submission = get_submission(state, market_id, signer)
        if submission is not None and submission.timestamp_ms >= oldest:
            prices.append(submission.price_ticks)
    return prices


def apply_block_prices(
    state: State,
    market_id: int,
    oracle_keys: Sequence[bytes],
    timestamp_ms: int,
    staleness_ms: int,
    max_move_ppm: int,
    ema_alpha_ppm: int,
    best_bid_ticks: int | None,
    best_ask_ticks: int | None,
) -> list[OracleEvent]:
    """Update the market's index and mark for the block at ``timestamp_ms`` (see the module
    docstring) and return the staleness events. ``best_bid_ticks``/``best_ask_ticks`` are the
    book's at block start. A market that never had a price keeps none (it is not yet open); a
    market on its genesis price keeps it until the first submission."""
    previous = get_oracle(state, market_id)
    fresh = get_fresh_prices(state, market_id, oracle_keys, timestamp_ms, staleness_ms)
    events: list[OracleEvent] = []
    if not fresh:
        if previous is None or not any(
            get_submission(state, market_id, signer) is not None for signer in oracle_keys
        ):
            # Not open yet, or still on its genesis price: staleness starts with the feed.
            return events
        index = previous.index_ticks
        stale_since = previous.stale_since_ms
        if stale_since is None:
            stale_since = timestamp_ms
            events.append(OracleStale(market_id, stale_since, index))
    else:
        median = compute_median_low(fresh)
        index = compute_clamped_index(
            median, None if previous is None else previous.index_ticks, max_move_ppm
        )
        stale_since = None
        if previous is not None and previous.stale_since_ms is not None:
            events.append(OracleFresh(market_id, previous.stale_since_ms, index))
    ema = 0 if previous is None else previous.basis_ema_micro
    if best_bid_ticks is not None and best_ask_ticks is not None:
        ema = compute_basis_ema(ema, best_bid_ticks, best_ask_ticks, index, ema_alpha_ppm)
    components = compute_mark_components(
        index, ema, best_bid_ticks, best_ask_ticks, get_last_trade_price(state, market_id)
    )
    record = OracleRecord(index, compute_mark_price(components), ema, stale_since)
    if record != previous:
        state.tables["oracle"].put(market_id, record)
    return events

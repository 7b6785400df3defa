"""The matching phase of one market: cancels, then placements, in canonical order.

This runs once per market per block and touches nothing outside that market's partition: its
book, its order sequence, and a per-block working copy of the positions held in it (for
reduce-only). What it produces for accounts (fills, fees and reservation releases) goes into
:class:`AccountDelta` records that the settlement phase applies account by account, so that a
parallel executor can run markets side by side and then accounts side by side.

Reads that cross partitions are of block-start state that no phase before settlement writes:
positions (for reduce-only), traded volume (for fee tiers) and marks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, NamedTuple, Protocol, TypeVar

from strata.modules.book import Book, Order, OrderReason, OrderStatus
from strata.modules.clearing import (
    FeeTier,
    compute_maker_fee,
    compute_taker_fee,
    get_position_size,
    get_volume,
    select_fee_tier,
)
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.modules.margin import compute_remaining_reservation
from strata.modules.markets import Market, get_next_order_id, set_next_order_id
from strata.modules.oracle import record_trade_price
from strata.state.store import State

# Compiled, a ``Final`` name is a C variable, not a lookup in the module's globals at each use.
# Statuses and reasons as plain ints (the members' values, as ``book.book`` binds them): an enum
# member is an object, read by an attribute lookup at each use, compared through a generic call,
# and encoded by msgspec through another lookup (of its ``value``) in every event that holds it.
_OPEN: Final = int(OrderStatus.OPEN)
_FILLED: Final = int(OrderStatus.FILLED)
_CANCELED: Final = int(OrderStatus.CANCELED)
_REJECTED: Final = int(OrderStatus.REJECTED)
_R_NONE: Final = int(OrderReason.NONE)
_R_FILLED: Final = int(OrderReason.FILLED)
_R_CANCELED_BY_USER: Final = int(OrderReason.CANCELED_BY_USER)
_R_CANCELED_ALL: Final = int(OrderReason.CANCELED_ALL)
_R_REPLACED: Final = int(OrderReason.REPLACED)
_R_REDUCE_ONLY: Final = int(OrderReason.REDUCE_ONLY)
_R_UNKNOWN_ORDER: Final = int(OrderReason.UNKNOWN_ORDER)
_ORDER_UPDATE: Final = OrderUpdate
_FILL_EVENT: Final = FillEvent
_T_co = TypeVar("_T_co", covariant=True)


EventSink = list[Any]
"""Where a transaction's events go: its list of events (of the chain's wider event union, of
which matching appends ``OrderUpdate`` and ``FillEvent``). A list, not a protocol with an
``append`` method: compiled, an append to a list is a direct call, a protocol's method a lookup
by name (about 230 instructions, twice per order operation)."""


class Slots(Protocol[_T_co]):
    """Per-transaction slots indexed by the transaction's position in the block (a list is one;
    a parallel executor gathers one market's results in a map that fills on demand)."""

    def __getitem__(self, index: int, /) -> _T_co: ...


class PlaceOp:
    """A placement admitted for matching (one order of a PlaceOrder, bulk or modify)."""

    __slots__ = (
        "client_id",
        "expires_at_ms",
        "is_buy",
        "market_id",
        "owner",
        "price_ticks",
        "reduce_only",
        "replace_client_id",
        "replace_order_id",
        "replaced",
        "reserved_quote",
        "size_lots",
        "tif",
        "tx_index",
    )

    def __init__(
        self,
        tx_index: int,
        owner: bytes,
        market_id: int,
        is_buy: bool,
        price_ticks: int,
        size_lots: int,
        tif: int,
        reduce_only: bool,
        client_id: int | None,
        reserved_quote: int,
        replace_order_id: int | None = None,
        replace_client_id: int | None = None,
        expires_at_ms: int | None = None,
    ) -> None:
        self.tx_index = tx_index
        self.owner = owner
        self.market_id = market_id
        self.is_buy = is_buy
        self.price_ticks = price_ticks
        self.size_lots = size_lots
        self.tif = tif
        self.reduce_only = reduce_only
        self.client_id = client_id
        self.reserved_quote = reserved_quote
        self.replace_order_id = replace_order_id
        self.replace_client_id = replace_client_id
        self.expires_at_ms = expires_at_ms
        self.replaced: bool | None = None
        """For a modify: set by the cancel step to whether the old order was found and
        canceled (its client id and expiry then pass to the replacement)."""


class CancelOp:
    """A cancel admitted for matching: by order id, by client id, or all of an owner's orders."""

    __slots__ = ("cancel_all", "client_id", "market_id", "modify", "order_id", "owner", "tx_index")

    def __init__(
        self,
        tx_index: int,
        owner: bytes,
        market_id: int,
        order_id: int | None = None,
        client_id: int | None = None,
        cancel_all: bool = False,
        modify: PlaceOp | None = None,
    ) -> None:
        self.tx_index = tx_index
        self.owner = owner
        self.market_id = market_id
        self.order_id = order_id
        self.client_id = client_id
        self.cancel_all = cancel_all
        self.modify = modify


class AccountDelta:
    """What one account receives from the matching phase, applied in settlement.

    ``fills`` holds ``(market_id, is_buy, price_ticks, size_lots, fee_quote)`` in market order,
    then in the order they happened. ``release_quote`` is reservation to give back.
    """

    __slots__ = ("fills", "release_quote")

    def __init__(self) -> None:
        self.fills: list[tuple[int, bool, int, int, int]] = []
        self.release_quote = 0


class MarketWork:
    """Per transaction: matching work done (fills, price levels crossed, orders removed by a
    cancel-all), for gas."""

    __slots__ = ("cancels", "fills", "levels")

    def __init__(self) -> None:
        self.fills = 0
        self.levels = 0
        self.cancels = 0


class AdmittedTx(MarketWork):
    """An admitted transaction from admission to its receipt (``stf.transition``): its place in
    the block, its bytes, status (0 or the execution failure's code), base gas and events, and (as a
    :class:`MarketWork`) the matching work its gas meters. One object per transaction, where a
    tuple, a work record and the integers boxed into the tuple were three. (Defined beside its
    base: an interpreted copy of the transition, as tests make, cannot subclass a compiled
    class.)"""

    __slots__ = ("base_gas", "data", "events", "index", "status")

    def __init__(
        self, index: int, data: bytes, status: int, base_gas: int, events: EventSink
    ) -> None:
        super().__init__()
        self.index = index
        self.data = data
        self.status = status
        self.base_gas = base_gas
        self.events = events


def _delta(deltas: dict[bytes, AccountDelta], owner: bytes) -> AccountDelta:
    delta = deltas.get(owner)
    if delta is None:
        delta = deltas[owner] = AccountDelta()
    return delta


def _position_of(state: State, positions: dict[bytes, int], owner: bytes, market_id: int) -> int:
    """``owner``'s position size in the market as this block's matching has moved it so far
    (read from the state at first use). A module function, not a closure: compiled, a call to a
    closure goes through a generic call (about 250 instructions), one to a function is direct."""
    size = positions.get(owner)
    if size is None:
        size = positions[owner] = get_position_size(state, owner, market_id)
    return size


def _fees_of(
    state: State, fees: dict[bytes, tuple[int, int]], fee_tiers: Sequence[FeeTier], owner: bytes
) -> tuple[int, int]:
    """``(maker_ppm, taker_ppm)`` of ``owner``'s fee tier for the block (by its traded volume at
    block start; read once). Two ints, not the tier: compiled, reading a field of a record is a
    generic attribute lookup (about 110 instructions), and a fill reads two."""
    ppm = fees.get(owner)
    if ppm is None:
        tier = select_fee_tier(fee_tiers, get_volume(state, owner))
        ppm = fees[owner] = (tier.maker_ppm, tier.taker_ppm)
    return ppm


def _order_update(
    market_id: int, order: Order, status: int, reason: int, filled: int
) -> OrderUpdate:
    return _ORDER_UPDATE(
        market_id,
        order.order_id,
        order.owner,
        status,
        reason,
        order.size_lots,
        filled,
        order.client_id,
    )


def process_market_matching(
    state: State,
    market: Market,
    book: Book,
    cancels: Sequence[CancelOp],
    places: Sequence[PlaceOp],
    fee_tiers: Sequence[FeeTier],
    events: Slots[EventSink],
    deltas: dict[bytes, AccountDelta],
    work: Slots[MarketWork],
) -> None:
    """Run one market's matching: every cancel, then every placement, in the given order.

    Appends each transaction's events to ``events[tx_index]``, each account's fills and releases
    to ``deltas`` and the matching work to ``work[tx_index]``. Never raises on user input: every
    outcome of an order is a status with a reason.
    """
    market_id = market.market_id
    qptl = market.quote_per_tick_lot
    dirty = book.dirty  # every order this phase changes, for an incremental state root

    # --- cancels ---
    for cancel in cancels:
        out = events[cancel.tx_index]
        if cancel.cancel_all:
            mine = book.orders_of(cancel.owner)
            work[cancel.tx_index].cancels += len(mine)
            for order in mine:
                book.cancel(order.order_id)
                dirty.add(order.order_id)
                _delta(deltas, order.owner).release_quote += order.reserved_quote
                out.append(_order_update(market_id, order, _CANCELED, _R_CANCELED_ALL, 0))
            continue
        found: Order | None
        if cancel.order_id is not None:
            found = book.get_order(cancel.order_id)
        else:
            assert cancel.client_id is not None
            found = book.get_order_by_client_id(cancel.owner, cancel.client_id)
        if found is None or found.owner != cancel.owner:
            if cancel.modify is not None:
                cancel.modify.replaced = False
            out.append(
                _ORDER_UPDATE(
                    market_id,
                    cancel.order_id or 0,
                    cancel.owner,
                    _REJECTED,
                    _R_UNKNOWN_ORDER,
                    0,
                    0,
                    cancel.client_id,
                )
            )
            continue
        book.cancel(found.order_id)
        dirty.add(found.order_id)
        _delta(deltas, found.owner).release_quote += found.reserved_quote
        reason = _R_CANCELED_BY_USER
        if cancel.modify is not None:
            cancel.modify.replaced = True
            cancel.modify.client_id = found.client_id
            cancel.modify.expires_at_ms = found.expires_at_ms
            reason = _R_REPLACED
        out.append(_order_update(market_id, found, _CANCELED, reason, 0))

    # --- placements ---
    positions: dict[bytes, int] = {}
    fees: dict[bytes, tuple[int, int]] = {}
    last_trade_ticks: int | None = None

    def reduce_only_cap(owner: bytes, is_buy: bool) -> int:
        size = _position_of(state, positions, owner, market_id)
        if is_buy:
            return -size if size < 0 else 0
        return size if size > 0 else 0

    # Ids are the market's sequence, assigned in order from a local counter and written back
    # once, at the end.
    first_order_id = next_order_id = get_next_order_id(state, market_id)
    for op in places:
        out = events[op.tx_index]
        owner = op.owner
        if op.replaced is False:
            _delta(deltas, owner).release_quote += op.reserved_quote
            out.append(
                _ORDER_UPDATE(
                    market_id,
                    0,
                    owner,
                    _REJECTED,
                    _R_UNKNOWN_ORDER,
                    0,
                    0,
                    op.client_id,
                )
            )
            continue
        # Boxed once (``Any``): compiled, an ``int`` passed to a set or an event is boxed into a
        # new object at each use.
        order_id: Any = next_order_id
        next_order_id += 1
        size = op.size_lots
        if op.reduce_only:
            cap = reduce_only_cap(owner, op.is_buy)
            if cap < size:
                size = cap
            if size <= 0:
                _delta(deltas, owner).release_quote += op.reserved_quote
                out.append(
                    _ORDER_UPDATE(
                        market_id,
                        order_id,
                        owner,
                        _REJECTED,
                        _R_REDUCE_ONLY,
                        0,
                        0,
                        op.client_id,
                    )
                )
                continue
        order = Order(
            order_id,
            owner,
            op.is_buy,
            op.price_ticks,
            size,
            op.client_id,
            op.reduce_only,
            op.reserved_quote,
            op.expires_at_ms,
        )
        result = book.place(order, op.tif, reduce_only_cap)
        dirty.add(order_id)

        fills = result.fills
        # Makers removed during this placement (self-trade, reduce-only) report once, after
        # their fills, as canceled with what they filled here.
        removed = {o.order_id for o, _ in result.canceled} if result.canceled else None
        filled_here: dict[int, int] | None = {} if removed is not None else None
        if fills:
            taker_ppm = _fees_of(state, fees, fee_tiers, owner)[1]
            taker_delta = _delta(deltas, owner)
            taker_is_buy = op.is_buy
            maker_is_buy = not taker_is_buy
            signed = size_sign = 1 if taker_is_buy else -1
            last_price = -1
            levels = 0
            for fill in fills:
                maker = fill.maker
                maker_id: Any = maker.order_id  # (boxed once)
                dirty.add(maker_id)
                price = fill.price_ticks
                qty = fill.size_lots
                if price != last_price:
                    levels += 1
                    last_price = price
                notional = price * qty * qptl
                taker_fee = compute_taker_fee(notional, taker_ppm)
                maker_fee = compute_maker_fee(
                    notional, _fees_of(state, fees, fee_tiers, maker.owner)[0]
                )
                taker_delta.fills.append((market_id, taker_is_buy, price, qty, taker_fee))
                maker_delta = _delta(deltas, maker.owner)
                maker_delta.fills.append((market_id, maker_is_buy, price, qty, maker_fee))
                signed = size_sign * qty
                positions[owner] = _position_of(state, positions, owner, market_id) + signed
                maker_size = _position_of(state, positions, maker.owner, market_id)
                positions[maker.owner] = maker_size - signed
                # The maker's reservation shrinks with its size (it was size + qty before).
                remaining = maker.size_lots
                keep = compute_remaining_reservation(
                    maker.reserved_quote, remaining + qty, remaining
                )
                maker_delta.release_quote += maker.reserved_quote - keep
                maker.reserved_quote = keep
                out.append(
                    _FILL_EVENT(
                        market_id,
                        maker_id,
                        order_id,
                        maker.owner,
                        owner,
                        taker_is_buy,
                        price,
                        qty,
                        maker_fee,
                        taker_fee,
                    )
                )
                if removed is not None and maker.order_id in removed:
                    assert filled_here is not None
                    filled_here[maker.order_id] = filled_here.get(maker.order_id, 0) + qty
                elif remaining == 0:
                    out.append(_order_update(market_id, maker, _FILLED, _R_FILLED, qty))
                else:
                    out.append(_order_update(market_id, maker, _OPEN, _R_NONE, qty))
            last_trade_ticks = last_price
            w = work[op.tx_index]
            w.fills += len(fills)
            w.levels += levels

        if removed is not None:  # (else none was removed: no loop over an empty sequence)
            assert filled_here is not None  # (made with ``removed``)
            for canceled, reason in result.canceled:
                dirty.add(canceled.order_id)
                _delta(deltas, canceled.owner).release_quote += canceled.reserved_quote
                canceled.reserved_quote = 0
                out.append(
                    _order_update(
                        market_id,
                        canceled,
                        _CANCELED,
                        reason,
                        filled_here.get(canceled.order_id, 0),
                    )
                )

        # The taker keeps a reservation only for what rests.
        if result.status == _OPEN:
            keep = compute_remaining_reservation(op.reserved_quote, op.size_lots, order.size_lots)
            order.reserved_quote = keep
            release = op.reserved_quote - keep
        else:
            order.reserved_quote = 0
            release = op.reserved_quote
        if release:
            _delta(deltas, owner).release_quote += release
        out.append(
            _ORDER_UPDATE(
                market_id,
                order_id,
                owner,
                result.status,
                result.reason,
                order.size_lots,
                result.filled_lots,
                order.client_id,
            )
        )
    if next_order_id != first_order_id:
        set_next_order_id(state, market_id, next_order_id)
    if last_trade_ticks is not None:
        # The mark of the next block reads the market's last trade price.
        record_trade_price(state, market_id, last_trade_ticks)


class MarketJob(NamedTuple):
    """One market's share of a block's matching phase: its book and its admitted operations."""

    market: Market
    book: Book
    cancels: list[CancelOp]
    places: list[PlaceOp]


def match_markets(
    state: State,
    jobs: Sequence[MarketJob],
    fee_tiers: Sequence[FeeTier],
    events: Slots[EventSink],
    deltas: dict[bytes, AccountDelta],
    work: Slots[MarketWork],
) -> None:
    """The matching phase, market after market in the order of ``jobs`` (ascending market id).

    This is the reference. A market touches only its own partition, so an executor may run the
    markets side by side (``exec/parallel.py``) if it then gathers each market's events, deltas
    and work in this same order: a transaction's events from two markets follow market order, and
    so do an account's fills.
    """
    for market, book, cancels, places in jobs:
        process_market_matching(
            state, market, book, cancels, places, fee_tiers, events, deltas, work
        )


class MatchingPhase(Protocol):
    """Something that runs the matching phase as :func:`match_markets` does (same results).

    ``end_block`` is called once the block's risk phase is done and before its state root: what
    the block changed outside matching is then still marked dirty, for an executor that keeps
    copies of books or positions elsewhere to catch up on.
    """

    def match(
        self,
        state: State,
        jobs: Sequence[MarketJob],
        fee_tiers: Sequence[FeeTier],
        events: Slots[EventSink],
        deltas: dict[bytes, AccountDelta],
        work: Slots[MarketWork],
    ) -> None: ...

    def end_block(self, state: State) -> None: ...

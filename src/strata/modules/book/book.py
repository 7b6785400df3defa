"""The order book of one market: price-time priority matching, fast.

The book holds resting limit orders of one market and matches incoming orders against them. It
moves no funds and knows nothing of margin: it reports fills and removed orders, and ``clearing``
applies them. ``tests/differential/model_book.py`` is a slow, obviously correct model of the same
rules; the differential tests prove the two equal on random streams.

Layout
------
- ``_orders``: ``order_id -> Order`` for every resting order.
- Per side, ``_levels[side]``: ``key -> level`` where a level is a ``dict`` ``order_id -> Order``
  kept in arrival order (CPython dicts keep insertion order; deleting from the middle is O(1)),
  so a level is a FIFO queue with O(1) cancel. The key of a price is ``price_ticks`` for asks and
  ``-price_ticks`` for bids, so on both sides the *smallest* key is the best price and one code
  path serves both sides.
- Per side, ``_heaps[side]``: a binary min-heap of the keys of that side's level dicts. Every key
  of ``_levels[side]`` is in the heap exactly once. A level that becomes empty is kept (empty)
  until its key reaches the top of the heap, where it is popped and its dict entry deleted (lazy
  deletion); an order placed at that price meanwhile reuses the empty level. When the number of
  level dicts outgrows twice the number seen at the last compaction, empty levels are dropped and
  the heap is rebuilt (amortized O(1)).
- ``_by_owner``: ``owner -> {order_id: Order}`` of its resting orders (counts them for the
  open-order cap and lists them for cancel-all); ``_by_client``: ``(owner, client_id)
  -> Order`` for resting orders that carry a client id.

Ordering invariant
------------------
Best price first, then arrival order within a price (the order in which ``place`` rested the
order or ``insert_resting`` inserted it). Order ids are supplied by the caller and are *not*
assumed monotonic: in the chain they are the per-market sequence (so arrival order equals id
order), in a replay they are external ids. ``reduce`` keeps an order's place in its queue. No
set is ever iterated; ``iter_orders`` yields orders sorted by ``order_id`` (the canonical order
for the state root), ``depth`` sorts prices.

After every public call: the book is not crossed (best bid < best ask), every resting order has
``size_lots > 0``, and ``_orders``, the levels, ``_by_owner`` and ``_by_client`` agree.

Complexity
----------
With ``L`` price levels on a side: resting a new order O(1) at an existing price, O(log L) at a
new price; ``cancel`` and ``reduce`` O(1); a match O(levels crossed * log L + makers touched).
Popping stale empty levels is amortized against their creation. ``depth`` is O(L log L),
``iter_orders`` O(n log n); both are off the hot path. FOK placements and reduce-only makers take
a slower path that only runs when they are present (an FOK first scans the crossing levels in
price order, O(L log L), to decide fillability).

Known limitations
-----------------
- Not thread safe; one book per market, driven by one thread (matching is partitioned by
  market).
- ``best_bid``/``best_ask``/``depth`` may drop stale empty levels (an internal mutation that is
  invisible through the API).
- The open-order limit and the client-id check are made up front, before matching: a GTC order
  from an owner at the limit is rejected even if it would have filled completely (use IOC).
- Rebuilding a book from state with ``insert_resting`` must insert orders in time priority
  order (in the chain: ascending ``order_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from heapq import heapify, heappop, heappush
from typing import Any, Final

from strata.core.errors import ErrorCode, InvariantViolation
from strata.modules.book.types import Order, OrderReason, OrderStatus, TimeInForce

__all__ = ["Book", "Fill", "PlaceResult", "ReduceOnlyCap"]

ReduceOnlyCap = Callable[[bytes, bool], int]
"""``cap(owner, is_buy) -> lots``: the most lots ``owner``'s reduce-only makers on side
``is_buy`` may still trade, as of the start of the ``place`` call (normally the size of the
position that such trades would reduce)."""


class Fill:
    """One match between the incoming order and a resting maker.

    ``maker`` is the resting order with its ``size_lots`` already decremented (removed from the
    book when it reaches 0); ``price_ticks`` is always the maker's price; ``size_lots > 0``.

    A plain class, not a named tuple (as :class:`PlaceResult`): compiled, constructing one is a
    direct call and reading a field a load, where a named tuple's construction goes through
    ``tuple.__new__`` (about 400 instructions) and its fields through attribute lookups.
    """

    __slots__ = ("maker", "price_ticks", "size_lots")

    def __init__(self, maker: Order, price_ticks: int, size_lots: int) -> None:
        self.maker = maker
        self.price_ticks = price_ticks
        self.size_lots = size_lots

    def __repr__(self) -> str:
        return (
            f"Fill(maker={self.maker.order_id}, price_ticks={self.price_ticks}, "
            f"size_lots={self.size_lots})"
        )


class PlaceResult:
    """Outcome of ``Book.place``.

    fills:        matches in execution order (a list; an empty tuple if none)
    canceled:     resting orders removed during this placement, with the reason (``SELF_TRADE``
                  or ``REDUCE_ONLY``), in the order they were removed (a list; an empty tuple
                  if none)
    status:       the incoming order's status: ``OPEN`` (rests), ``FILLED``, ``CANCELED``
                  (IOC/FOK remainder) or ``REJECTED`` (no effect at all)
    reason:       ``NONE`` with ``OPEN``, ``FILLED`` with ``FILLED``, ``IOC_REMAINDER`` with
                  ``CANCELED``; with ``REJECTED``: ``DUPLICATE_CLIENT_ID``,
                  ``TOO_MANY_OPEN_ORDERS``, ``POST_ONLY_WOULD_TAKE`` or ``FOK_NOT_FILLABLE``
    filled_lots:  total lots filled (sum of ``fills`` sizes)

    Statuses and reasons are the plain ``int`` values of ``OrderStatus`` and ``OrderReason``
    (equal to the members; see the bindings below for why not the members themselves).
    """

    __slots__ = ("canceled", "filled_lots", "fills", "reason", "status")

    def __init__(
        self,
        fills: Sequence[Fill],
        canceled: Sequence[tuple[Order, int]],
        status: int,
        reason: int,
        filled_lots: int,
    ) -> None:
        # Final: a result may be shared (the outcomes without fills are constants below).
        self.fills: Final = fills
        self.canceled: Final = canceled
        self.status: Final = status
        self.reason: Final = reason
        self.filled_lots: Final = filled_lots

    def __repr__(self) -> str:
        return (
            f"PlaceResult(fills={self.fills!r}, canceled={self.canceled!r}, "
            f"status={self.status!r}, reason={self.reason!r}, filled_lots={self.filled_lots})"
        )


def _order_id_of(order: Order) -> int:
    return order.order_id


# Module-level bindings for the hot paths, as plain ints. ``Final`` names are constants to the
# compiled build (mypyc keeps them in C variables: no lookup at all), and an ``int`` is compared
# natively; an enum member is an object, compared through a generic call, and when it reaches an
# event msgspec encodes it by reading its ``value`` attribute. Run interpreted, a global lookup
# is still cheaper than an enum attribute lookup or an import's.
_GTC: Final = int(TimeInForce.GTC)
_IOC: Final = int(TimeInForce.IOC)
_FOK: Final = int(TimeInForce.FOK)
_POST_ONLY: Final = int(TimeInForce.POST_ONLY)
_OPEN: Final = int(OrderStatus.OPEN)
_FILLED_S: Final = int(OrderStatus.FILLED)
_CANCELED: Final = int(OrderStatus.CANCELED)
_REJECTED: Final = int(OrderStatus.REJECTED)
_R_NONE: Final = int(OrderReason.NONE)
_R_FILLED: Final = int(OrderReason.FILLED)
_R_SELF: Final = int(OrderReason.SELF_TRADE)
_R_POST: Final = int(OrderReason.POST_ONLY_WOULD_TAKE)
_R_IOC: Final = int(OrderReason.IOC_REMAINDER)
_R_FOK: Final = int(OrderReason.FOK_NOT_FILLABLE)
_R_RO: Final = int(OrderReason.REDUCE_ONLY)
_R_DUP: Final = int(OrderReason.DUPLICATE_CLIENT_ID)
_R_MANY: Final = int(OrderReason.TOO_MANY_OPEN_ORDERS)

# The outcomes of a placement that touched no maker, shared: the commonest, an order that rests,
# then allocates no result and no lists.
_RESTS: Final = PlaceResult((), (), _OPEN, _R_NONE, 0)
_NOTHING_TO_TAKE: Final = PlaceResult((), (), _CANCELED, _R_IOC, 0)
_DUPLICATE: Final = PlaceResult((), (), _REJECTED, _R_DUP, 0)
_TOO_MANY: Final = PlaceResult((), (), _REJECTED, _R_MANY, 0)
_POST_ONLY_TAKES: Final = PlaceResult((), (), _REJECTED, _R_POST, 0)
_NOT_FILLABLE: Final = PlaceResult((), (), _REJECTED, _R_FOK, 0)
_heappush: Final = heappush
_heappop: Final = heappop

_Level = dict[int, Order]

_GC_MIN: Final = 256
"""Level dicts a side may hold before the first compaction of empty levels."""


class Book:
    """The resting orders of one market and the matching rules (see the module docstring).

    Sides are indexed ``0`` for bids and ``1`` for asks internally.
    """

    __slots__ = (
        "_by_client",
        "_by_owner",
        "_expiries",
        "_gc_at",
        "_heaps",
        "_levels",
        "_orders",
        "dirty",
        "market_id",
        "max_open_orders_per_owner",
    )

    def __init__(self, market_id: int, max_open_orders_per_owner: int = 1000) -> None:
        self.market_id = market_id
        self.max_open_orders_per_owner = max_open_orders_per_owner
        self._orders: dict[int, Order] = {}
        # Lists of the two sides, not tuples: compiled, a tuple attribute is kept unboxed and
        # indexing it by a variable side builds a tuple object first; a list is indexed in place.
        self._levels: list[dict[int, _Level]] = [{}, {}]
        self._heaps: list[list[int]] = [[], []]
        self._gc_at = [_GC_MIN, _GC_MIN]
        self._by_owner: dict[bytes, dict[int, Order]] = {}
        self._by_client: dict[tuple[bytes, int], Order] = {}
        self._expiries: list[tuple[int, int]] = []
        """A heap of ``(expires_at_ms, order_id)`` of good-til-time orders (entries of orders
        gone are dropped when they reach the top)."""
        self.dirty: set[int] = set()
        """Ids of orders the chain changed since the commitment last consumed them (marked by
        ``clearing.matching``; an incremental state root rehashes only these)."""

    # ------------------------------------------------------------------ reads

    def get_order(self, order_id: int) -> Order | None:
        """The resting order with this id, or ``None``."""
        return self._orders.get(order_id)

    def get_order_by_client_id(self, owner: bytes, client_id: int) -> Order | None:
        """The resting order of ``owner`` with this client id, or ``None``."""
        return self._by_client.get((owner, client_id))

    def _best_key(self, side: int) -> int | None:
        """Smallest key of a non-empty level of ``side``, dropping stale empty levels on top."""
        heap = self._heaps[side]
        levels = self._levels[side]
        while heap:
            key = heap[0]
            if levels[key]:
                return key
            _heappop(heap)
            del levels[key]
        return None

    def best_bid(self) -> int | None:
        """Highest bid price in ticks, or ``None`` if there is no bid."""
        key = self._best_key(0)
        return None if key is None else -key

    def best_ask(self) -> int | None:
        """Lowest ask price in ticks, or ``None`` if there is no ask."""
        return self._best_key(1)

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The top ``levels`` price levels of each side: ``(bids, asks)``, each best first, each
        entry ``(price_ticks, total size_lots at that price)``."""
        out: list[list[tuple[int, int]]] = []
        for side in (0, 1):
            side_levels = self._levels[side]
            keys = sorted(k for k, lv in side_levels.items() if lv)[:levels]
            sign = -1 if side == 0 else 1
            out.append(
                [(k * sign, sum(o.size_lots for o in side_levels[k].values())) for k in keys]
            )
        return out[0], out[1]

    def open_order_count(self, owner: bytes) -> int:
        """Number of resting orders of ``owner`` in this book."""
        mine = self._by_owner.get(owner)
        return 0 if mine is None else len(mine)

    def orders_of(self, owner: bytes) -> list[Order]:
        """The resting orders of ``owner``, sorted by ``order_id`` (canonical order)."""
        mine = self._by_owner.get(owner)
        if not mine:
            return []
        return [mine[order_id] for order_id in sorted(mine)]

    def iter_orders(self) -> Iterator[Order]:
        """Every resting order, sorted by ``order_id`` ascending (canonical order)."""
        orders = self._orders
        for order_id in sorted(orders):
            yield orders[order_id]

    def unordered_orders(self) -> list[Order]:
        """Every resting order, in no particular order (for what does not depend on it: the
        state root sorts its leaves by path)."""
        return list(self._orders.values())

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    # ----------------------------------------------------------------- writes

    def insert_resting(self, order: Order) -> None:
        """Put ``order`` at the back of its price level without matching.

        Used to rebuild a book from state (insert in time priority order) or from a snapshot.
        The caller guarantees it does not cross the opposite side and that ``size_lots > 0``.
        Raises ``InvariantViolation`` if the order id is already resting or the client id is
        live for the owner.
        """
        if order.order_id in self._orders:
            raise InvariantViolation(
                ErrorCode.INVARIANT_VIOLATION, f"order id {order.order_id} already resting"
            )
        cid = order.client_id
        if cid is not None and (order.owner, cid) in self._by_client:
            raise InvariantViolation(
                ErrorCode.INVARIANT_VIOLATION, f"client id {cid} already live for owner"
            )
        self._rest(order, 0 if order.is_buy else 1)

    def _rest(self, order: Order, side: int) -> None:
        """Append ``order`` to its level on ``side`` and index it (no checks)."""
        key = -order.price_ticks if side == 0 else order.price_ticks
        order_id: Any = order.order_id  # (boxed once: see place)
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            levels[key] = {order_id: order}
            _heappush(self._heaps[side], key)
            if len(levels) > self._gc_at[side]:
                self._compact(side)
        else:
            level[order_id] = order
        self._orders[order_id] = order
        owner = order.owner
        mine = self._by_owner.get(owner)
        if mine is None:
            self._by_owner[owner] = {order_id: order}
        else:
            mine[order_id] = order
        if order.client_id is not None:
            self._by_client[(owner, order.client_id)] = order
        if order.expires_at_ms is not None:
            _heappush(self._expiries, (order.expires_at_ms, order_id))

    def pop_expired(self, timestamp_ms: int) -> list[Order]:
        """Remove every resting order whose ``expires_at_ms <= timestamp_ms``; return them
        ascending by order id."""
        heap = self._expiries
        orders = self._orders
        expired: list[Order] = []
        while heap and heap[0][0] <= timestamp_ms:
            _, order_id = _heappop(heap)
            order = orders.get(order_id)
            if order is not None and order.expires_at_ms is not None:
                expired.append(order)
        expired.sort(key=_order_id_of)
        for order in expired:
            self.cancel(order.order_id)
        return expired

    def _compact(self, side: int) -> None:
        """Drop empty levels of ``side`` and rebuild its heap (amortized O(1) per level)."""
        levels = self._levels[side]
        for key in [k for k, lv in levels.items() if not lv]:
            del levels[key]
        heap = list(levels)
        heapify(heap)
        self._heaps[side][:] = heap
        self._gc_at[side] = max(_GC_MIN, 2 * len(levels))

    def _unindex(self, order: Order) -> None:
        """Remove ``order`` from the owner count and the client-id index."""
        owner = order.owner
        mine = self._by_owner[owner]
        del mine[order.order_id]
        if not mine:
            del self._by_owner[owner]
        if order.client_id is not None:
            del self._by_client[(owner, order.client_id)]

    def cancel(self, order_id: int) -> Order | None:
        """Remove the resting order ``order_id`` and return it (unchanged), or ``None`` if no
        such order rests."""
        key: Any = order_id  # (boxed once: see place)
        order = self._orders.pop(key, None)
        if order is None:
            return None
        if order.is_buy:
            del self._levels[0][-order.price_ticks][key]
        else:
            del self._levels[1][order.price_ticks][key]
        self._unindex(order)
        return order

    def reduce(self, order_id: int, size_lots: int) -> Order | None:
        """Partial cancel: decrease the remaining size of ``order_id`` by ``size_lots`` (> 0).

        The order keeps its time priority. If its size reaches ``<= 0`` it is removed from the
        book and returned with ``size_lots == 0``. Returns the order, or ``None`` if no such
        order rests. Raises ``InvariantViolation`` if ``size_lots <= 0``.
        """
        if size_lots <= 0:
            raise InvariantViolation(
                ErrorCode.INVARIANT_VIOLATION, f"reduce by non-positive size {size_lots}"
            )
        order = self._orders.get(order_id)
        if order is None:
            return None
        left = order.size_lots - size_lots
        if left > 0:
            order.size_lots = left
            return order
        self.cancel(order_id)
        order.size_lots = 0
        return order

    def place(
        self,
        order: Order,
        tif: int,
        reduce_only_cap: ReduceOnlyCap | None = None,
    ) -> PlaceResult:
        """Match ``order`` against the book, then rest, cancel or reject its remainder.

        Checks, in this order, before anything changes (a failed check returns ``REJECTED``
        with no effect at all):

        1. ``client_id`` live for the same owner -> ``DUPLICATE_CLIENT_ID`` (any time in force);
        2. GTC/POST_ONLY while the owner already has ``max_open_orders_per_owner`` resting
           orders -> ``TOO_MANY_OPEN_ORDERS`` (even if the order would fill completely);
        3. POST_ONLY whose price reaches the best opposite price -> ``POST_ONLY_WOULD_TAKE``
           (also when that opposite order is the owner's own);
        4. FOK that cannot fill completely -> ``FOK_NOT_FILLABLE``; availability skips the
           owner's own makers and applies reduce-only caps, exactly as matching would.

        Matching: while the order has size left and the best opposite price is at or better
        than its limit, take the oldest maker at that price. A maker of the same owner is
        canceled (``SELF_TRADE``) and matching continues. With ``reduce_only_cap``, a maker
        with ``reduce_only`` fills at most ``reduce_only_cap(maker.owner, maker.is_buy)`` minus
        what that owner's makers already filled in this call; it is canceled (``REDUCE_ONLY``)
        if that allowance is ``<= 0`` or if after its fill it has more lots left than its
        remaining allowance. Without ``reduce_only_cap``, reduce-only makers are ordinary makers.
        Fills are at the maker's price. ``order.size_lots`` is decremented as it fills; a GTC or
        POST_ONLY remainder rests (this same object), an IOC/FOK remainder is canceled
        (``IOC_REMAINDER``, also when nothing filled).

        The caller guarantees ``order.size_lots > 0`` and ``order.price_ticks > 0``; a market
        order is an IOC at the worst acceptable price. Raises ``InvariantViolation`` if
        ``order.order_id`` is already resting.
        """
        owner = order.owner
        cid = order.client_id
        if cid is not None and (owner, cid) in self._by_client:
            return _DUPLICATE
        mine = self._by_owner.get(owner)  # (read once: resting below uses it too)
        held = 0 if mine is None else len(mine)
        may_rest = tif in (_GTC, _POST_ONLY)  # (compiled: two int comparisons)
        if may_rest and held >= self.max_open_orders_per_owner:
            return _TOO_MANY
        # Boxed once (``Any``): compiled, an ``int`` variable used as a dict key is boxed into a
        # new object at each use.
        order_id: Any = order.order_id
        orders = self._orders
        if order_id in orders:
            raise InvariantViolation(
                ErrorCode.INVARIANT_VIOLATION, f"order id {order_id} already resting"
            )
        # Incoming buys take asks (side 1, key = price); sells take bids (side 0, key = -price).
        if order.is_buy:
            opp = 1
            limit_key = order.price_ticks
        else:
            opp = 0
            limit_key = -order.price_ticks
        heap = self._heaps[opp]
        levels = self._levels[opp]
        # Best non-empty opposite level (inline _best_key).
        crosses = False
        while heap:
            key = heap[0]
            if levels[key]:
                crosses = key <= limit_key
                break
            _heappop(heap)
            del levels[key]
        if not crosses:
            if may_rest:
                # Rest (inline _rest): the order's own side is the other one.
                own = 1 - opp
                own_levels = self._levels[own]
                key = -limit_key
                level = own_levels.get(key)
                if level is None:
                    own_levels[key] = {order_id: order}
                    _heappush(self._heaps[own], key)
                    if len(own_levels) > self._gc_at[own]:
                        self._compact(own)
                else:
                    level[order_id] = order
                orders[order_id] = order
                if mine is None:  # (nothing changed since it was read: no match ran)
                    self._by_owner[owner] = {order_id: order}
                else:
                    mine[order_id] = order
                if cid is not None:
                    self._by_client[(owner, cid)] = order
                if order.expires_at_ms is not None:
                    _heappush(self._expiries, (order.expires_at_ms, order_id))
                return _RESTS
            if tif == _FOK:
                return _NOT_FILLABLE
            return _NOTHING_TO_TAKE
        if tif == _POST_ONLY:
            return _POST_ONLY_TAKES
        if tif == _FOK and not self._is_fillable(order, limit_key, levels, reduce_only_cap):
            return _NOT_FILLABLE
        fills, canceled = self._take(order, limit_key, opp, reduce_only_cap)
        filled = 0
        for fill in fills:
            filled += fill.size_lots
        if not order.size_lots:
            return PlaceResult(fills, canceled, _FILLED_S, _R_FILLED, filled)
        if tif == _GTC:
            self._rest(order, 1 - opp)
            return PlaceResult(fills, canceled, _OPEN, _R_NONE, filled)
        return PlaceResult(fills, canceled, _CANCELED, _R_IOC, filled)

    def _take(
        self,
        order: Order,
        limit_key: int,
        opp: int,
        cap_fn: ReduceOnlyCap | None,
    ) -> tuple[list[Fill], list[tuple[Order, int]]]:
        """Match ``order`` against side ``opp`` down to ``limit_key`` (see ``place``).

        Decrements ``order.size_lots`` and the makers' sizes; removes consumed and canceled
        makers. Returns ``(fills, canceled)``.
        """
        heap = self._heaps[opp]
        levels = self._levels[opp]
        orders = self._orders
        by_owner = self._by_owner
        by_client = self._by_client
        owner = order.owner
        remaining = order.size_lots
        fills: list[Fill] = []
        canceled: list[tuple[Order, int]] = []
        # Reduce-only bookkeeping, only with a cap function: start-of-call caps and lots filled
        # so far by each maker owner in this call.
        caps: dict[bytes, int] = {}
        used: dict[bytes, int] = {}
        while remaining:
            while heap:
                key = heap[0]
                level = levels[key]
                if level:
                    break
                _heappop(heap)
                del levels[key]
            else:
                break
            if key > limit_key:
                break
            removed: list[Order] = []
            for maker in level.values():
                maker_owner = maker.owner
                if maker_owner == owner:
                    removed.append(maker)
                    canceled.append((maker, _R_SELF))
                    continue
                maker_size = maker.size_lots
                if cap_fn is None:
                    qty = remaining if remaining < maker_size else maker_size
                    maker.size_lots = maker_size - qty
                    remaining -= qty
                    fills.append(Fill(maker, maker.price_ticks, qty))
                    if qty == maker_size:
                        removed.append(maker)
                    if not remaining:
                        break
                    continue
                # Slow path: a cap function is present.
                used_before = used.get(maker_owner, 0)
                if maker.reduce_only:
                    cap = caps.get(maker_owner)
                    if cap is None:
                        cap = cap_fn(maker_owner, maker.is_buy)
                        caps[maker_owner] = cap
                    allowed = cap - used_before
                    if allowed <= 0:
                        removed.append(maker)
                        canceled.append((maker, _R_RO))
                        continue
                    qty = remaining if remaining < maker_size else maker_size
                    if allowed < qty:
                        qty = allowed
                else:
                    allowed = -1
                    qty = remaining if remaining < maker_size else maker_size
                maker.size_lots = maker_size - qty
                remaining -= qty
                used[maker_owner] = used_before + qty
                fills.append(Fill(maker, maker.price_ticks, qty))
                if qty == maker_size:
                    removed.append(maker)
                elif allowed >= 0 and maker_size - qty > allowed - qty:
                    removed.append(maker)
                    canceled.append((maker, _R_RO))
                if not remaining:
                    break
            for maker in removed:
                maker_id: Any = maker.order_id  # (boxed once: see place)
                del level[maker_id]
                del orders[maker_id]
                maker_owner = maker.owner
                mine = by_owner[maker_owner]
                del mine[maker_id]
                if not mine:
                    del by_owner[maker_owner]
                if maker.client_id is not None:
                    del by_client[(maker_owner, maker.client_id)]
        order.size_lots = remaining
        return fills, canceled

    def _is_fillable(
        self,
        order: Order,
        limit_key: int,
        levels: dict[int, _Level],
        cap_fn: ReduceOnlyCap | None,
    ) -> bool:
        """Whether matching ``order`` would fill it completely (a dry run of ``_take``)."""
        owner = order.owner
        need = order.size_lots
        caps: dict[bytes, int] = {}
        used: dict[bytes, int] = {}
        for key in sorted(k for k in levels if k <= limit_key):
            for maker in levels[key].values():
                maker_owner = maker.owner
                if maker_owner == owner:
                    continue
                qty = need if need < maker.size_lots else maker.size_lots
                if cap_fn is not None:
                    used_before = used.get(maker_owner, 0)
                    if maker.reduce_only:
                        cap = caps.get(maker_owner)
                        if cap is None:
                            cap = cap_fn(maker_owner, maker.is_buy)
                            caps[maker_owner] = cap
                        allowed = cap - used_before
                        if allowed <= 0:
                            continue
                        if allowed < qty:
                            qty = allowed
                    used[maker_owner] = used_before + qty
                need -= qty
                if not need:
                    return True
        return False

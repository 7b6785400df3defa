"""A deliberately naive model of ``strata.modules.book.Book``: the rules, obviously.

One flat list of resting orders in arrival order, scanned linearly for every question. The best
maker is found by scanning the whole list each time. No indexes, no caches, no laziness. It is
slow on purpose; the differential tests and the benchmark compare the fast book against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from strata.modules.book.book import Fill, PlaceResult
from strata.modules.book.types import Order, OrderReason, OrderStatus, TimeInForce


class ModelBook:
    """Same API and semantics as ``Book``; O(n) per question."""

    def __init__(self, market_id: int, max_open_orders_per_owner: int = 1000) -> None:
        self.market_id = market_id
        self.max_open_orders_per_owner = max_open_orders_per_owner
        self.resting: list[Order] = []  # arrival order

    # reads
    def get_order(self, order_id: int) -> Order | None:
        for o in self.resting:
            if o.order_id == order_id:
                return o
        return None

    def get_order_by_client_id(self, owner: bytes, client_id: int) -> Order | None:
        for o in self.resting:
            if o.owner == owner and o.client_id == client_id:
                return o
        return None

    def best_bid(self) -> int | None:
        prices = [o.price_ticks for o in self.resting if o.is_buy]
        return max(prices) if prices else None

    def best_ask(self) -> int | None:
        prices = [o.price_ticks for o in self.resting if not o.is_buy]
        return min(prices) if prices else None

    def depth(self, levels: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        result = []
        for is_buy in (True, False):
            totals: dict[int, int] = {}
            for o in self.resting:
                if o.is_buy == is_buy:
                    totals[o.price_ticks] = totals.get(o.price_ticks, 0) + o.size_lots
            prices = sorted(totals, reverse=is_buy)[:levels]
            result.append([(p, totals[p]) for p in prices])
        return result[0], result[1]

    def open_order_count(self, owner: bytes) -> int:
        return sum(1 for o in self.resting if o.owner == owner)

    def iter_orders(self) -> Iterator[Order]:
        return iter(sorted(self.resting, key=lambda o: o.order_id))

    def orders_of(self, owner: bytes) -> list[Order]:
        return [o for o in self.iter_orders() if o.owner == owner]

    def __len__(self) -> int:
        return len(self.resting)

    # writes
    def insert_resting(self, order: Order) -> None:
        self.resting.append(order)

    def cancel(self, order_id: int) -> Order | None:
        for i, o in enumerate(self.resting):
            if o.order_id == order_id:
                del self.resting[i]
                return o
        return None

    def reduce(self, order_id: int, size_lots: int) -> Order | None:
        o = self.get_order(order_id)
        if o is None:
            return None
        o.size_lots -= size_lots
        if o.size_lots <= 0:
            o.size_lots = 0
            self.resting.remove(o)
        return o

    def _crosses(self, incoming: Order, maker: Order) -> bool:
        if incoming.is_buy:
            return not maker.is_buy and maker.price_ticks <= incoming.price_ticks
        return maker.is_buy and maker.price_ticks >= incoming.price_ticks

    def _next_maker(self, incoming: Order, skip: list[Order]) -> Order | None:
        """Best-priced crossing maker, earliest arrival among equals (not in ``skip``)."""
        best: Order | None = None
        for o in self.resting:
            if any(o is s for s in skip) or not self._crosses(incoming, o):
                continue
            if (
                best is None
                or (incoming.is_buy and o.price_ticks < best.price_ticks)
                or (not incoming.is_buy and o.price_ticks > best.price_ticks)
            ):
                best = o
        return best

    def _fill_amount(
        self,
        maker: Order,
        want: int,
        cap_fn: Callable[[bytes, bool], int] | None,
        used: dict[bytes, int],
    ) -> tuple[int, bool]:
        """(lots this maker fills, whether it is canceled as reduce-only after/instead)."""
        if cap_fn is not None and maker.reduce_only:
            allowed = cap_fn(maker.owner, maker.is_buy) - used.get(maker.owner, 0)
            if allowed <= 0:
                return 0, True
            qty = min(want, maker.size_lots, allowed)
            left = maker.size_lots - qty
            return qty, left > 0 and left > allowed - qty
        return min(want, maker.size_lots), False

    def place(
        self,
        order: Order,
        tif: TimeInForce,
        reduce_only_cap: Callable[[bytes, bool], int] | None = None,
    ) -> PlaceResult:
        rejected = OrderStatus.REJECTED
        if order.client_id is not None and any(
            o.owner == order.owner and o.client_id == order.client_id for o in self.resting
        ):
            return PlaceResult([], [], rejected, OrderReason.DUPLICATE_CLIENT_ID, 0)
        if tif in (TimeInForce.GTC, TimeInForce.POST_ONLY) and (
            self.open_order_count(order.owner) >= self.max_open_orders_per_owner
        ):
            return PlaceResult([], [], rejected, OrderReason.TOO_MANY_OPEN_ORDERS, 0)
        if tif == TimeInForce.POST_ONLY and any(self._crosses(order, o) for o in self.resting):
            return PlaceResult([], [], rejected, OrderReason.POST_ONLY_WOULD_TAKE, 0)
        if tif == TimeInForce.FOK:
            # Dry run: walk makers in priority order without touching anything.
            want = order.size_lots
            used: dict[bytes, int] = {}
            seen: list[Order] = []
            while want > 0:
                maker = self._next_maker(order, seen)
                if maker is None:
                    break
                seen.append(maker)
                if maker.owner == order.owner:
                    continue
                qty, _ = self._fill_amount(maker, want, reduce_only_cap, used)
                used[maker.owner] = used.get(maker.owner, 0) + qty
                want -= qty
            if want > 0:
                return PlaceResult([], [], rejected, OrderReason.FOK_NOT_FILLABLE, 0)

        fills: list[Fill] = []
        canceled: list[tuple[Order, OrderReason]] = []
        used = {}
        while order.size_lots > 0:
            maker = self._next_maker(order, [])
            if maker is None:
                break
            if maker.owner == order.owner:
                self.resting.remove(maker)
                canceled.append((maker, OrderReason.SELF_TRADE))
                continue
            qty, cancel_after = self._fill_amount(maker, order.size_lots, reduce_only_cap, used)
            if qty > 0:
                maker.size_lots -= qty
                order.size_lots -= qty
                used[maker.owner] = used.get(maker.owner, 0) + qty
                fills.append(Fill(maker, maker.price_ticks, qty))
                if maker.size_lots == 0:
                    self.resting.remove(maker)
                    continue
            if cancel_after:
                self.resting.remove(maker)
                canceled.append((maker, OrderReason.REDUCE_ONLY))
        filled = sum(f.size_lots for f in fills)
        if order.size_lots == 0:
            return PlaceResult(fills, canceled, OrderStatus.FILLED, OrderReason.FILLED, filled)
        if tif in (TimeInForce.GTC, TimeInForce.POST_ONLY):
            self.resting.append(order)
            return PlaceResult(fills, canceled, OrderStatus.OPEN, OrderReason.NONE, filled)
        return PlaceResult(fills, canceled, OrderStatus.CANCELED, OrderReason.IOC_REMAINDER, filled)

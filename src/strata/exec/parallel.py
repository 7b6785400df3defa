"""Market-sharded matching: the matching phase of a block split across processes by market.

The matching phase is partitioned by market (``modules/clearing/matching.py``): a market's
cancels and placements read its own book, its order sequence and block-start positions and
traded volumes, and write only its book, its sequence and its last trade price. What they yield
for accounts (fills, fees, released reservations) is gathered per account and applied in the
settlement phase. So the markets of a block can match side by side, and the results gathered in
market order are the serial loop's (:func:`~strata.modules.clearing.matching.match_markets`).

:class:`ShardedMatching` is such an executor, one of the chain's parallel modes (a setting,
never a different chain: the differential tests compare every ``BlockOutput`` byte):

- **Shards.** ``shards`` shards; market ``m`` belongs to shard ``(m - 1) % shards`` for the life
  of the executor (markets are numbered from 1, so the first market listed, usually the busiest,
  stays with the coordinator, and each later listing goes to the next shard), unless
  ``placed`` pins it to another. Shard 0 is the
  coordinator (the process that executes the block); every other shard is a worker process
  (``spawn``) that owns a copy of its markets' books.
- **What a worker keeps.** Its markets' books, and a copy of the two tables matching reads
  across partitions: positions (for reduce-only) and traded volume (for fee tiers). The
  coordinator keeps the authoritative state, books included: the prologue (expiries), the risk
  phase (liquidations) and the state root read and write them there.
- **One block.** The coordinator sends each worker what changed since the last block outside
  its matching (entries of those tables, and orders of its books changed by the coordinator),
  then its markets' operations as plain tuples, and runs its own markets meanwhile. Each worker
  runs the same ``process_market_matching`` on its copy and answers per market: each
  transaction's events, each account's fills and releases, each transaction's matching work,
  every order it changed (the new fields, or gone), the market's next order id and last trade
  price. The coordinator gathers the answers in market order and applies the orders to its own
  books, marking them dirty as matching would.
- **Catching up.** ``end_block`` (after the risk phase, before the state root) notes the keys
  and orders the block changed; they go to the workers with the next block. A state the
  executor has not followed (the first block, a state reloaded after a failed block, a copy)
  is sent whole first (:meth:`ShardedMatching.sync`).
- **A worker that dies** raises :class:`MatchingWorkerDied` in the block being executed: the
  block is not finished, so nothing of it is committed; the executor stays broken.

Measured in ``docs/node.md`` ("Market-sharded matching"): on this two-core machine the hand-over
costs about what matching a market saves, so the setting is off by default.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import msgspec

from strata.modules.book import Book, Order
from strata.modules.clearing import FeeTier
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.modules.clearing.matching import (
    AccountDelta,
    CancelOp,
    EventSink,
    MarketJob,
    MarketWork,
    PlaceOp,
    Slots,
    match_markets,
    process_market_matching,
)
from strata.modules.markets import Market, get_next_order_id, set_next_order_id
from strata.state.store import State
from strata.stf.genesis import new_empty_state

_MIRRORED = ("positions", "volume")
"""The tables a worker keeps a copy of: what matching reads outside its market's partition."""

OrderFields = tuple[int, bytes, bool, int, int, int | None, bool, int, int | None]
"""``Order.as_tuple()``: id, owner, is_buy, price, size, client id, reduce-only, reservation,
expiry."""
PlaceFields = tuple[
    int, bytes, int, bool, int, int, int, bool, int | None, int, int | None, int | None, int | None
]
CancelFields = tuple[int, bytes, int, int | None, int | None, bool, int | None]
"""A cancel, its ``modify`` given as the index of its placement in the market's list."""
Job = tuple[Market, int, int, list[CancelFields], list[PlaceFields]]
"""A market's operations for a worker: the market, its books' open-order cap, its next order
id, cancels, placements."""
Answer = tuple[
    list[tuple[int, list[OrderUpdate | FillEvent]]],
    list[tuple[bytes, list[tuple[int, bool, int, int, int]], int]],
    list[tuple[int, int, int, int]],
    list[tuple[int, OrderFields | None]],
    int,
    int | None,
]
"""A market's results: events per transaction, fills and release per account, work per
transaction, changed orders, next order id, last trade price (``None``: no trade)."""

_ANSWERS = msgspec.msgpack.Decoder(list[Answer])
"""Answers travel as msgpack: measured 0.13 us to encode and 0.39 us to decode an event, against
1.4 and 1.0 us with pickle."""
_ENCODE = msgspec.msgpack.Encoder().encode
_FAILED = b"E"
"""The first byte of a worker's last message when matching raised (then its traceback): no
msgpack list starts with it."""


class MatchingWorkerDied(RuntimeError):
    """A matching worker process died (or its pipe broke): the block cannot be finished."""


class _OnDemand(dict[int, Any]):
    """Per-transaction slots of one market, created on first use (``Slots`` of a worker)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        super().__init__()
        self._factory = factory

    def __missing__(self, index: int) -> Any:
        slot = self[index] = self._factory()
        return slot


# ------------------------------------------------------------------ the hand-over, both ways


def _place_fields(op: PlaceOp) -> PlaceFields:
    return (
        op.tx_index,
        op.owner,
        op.market_id,
        op.is_buy,
        op.price_ticks,
        op.size_lots,
        op.tif,
        op.reduce_only,
        op.client_id,
        op.reserved_quote,
        op.replace_order_id,
        op.replace_client_id,
        op.expires_at_ms,
    )


def _cancel_fields(op: CancelOp, place_index: dict[int, int]) -> CancelFields:
    modify = None if op.modify is None else place_index[id(op.modify)]
    return (op.tx_index, op.owner, op.market_id, op.order_id, op.client_id, op.cancel_all, modify)


def _ops(
    cancels: Sequence[CancelFields], places: Sequence[PlaceFields]
) -> tuple[list[CancelOp], list[PlaceOp]]:
    place_ops = [PlaceOp(*fields) for fields in places]
    cancel_ops = [
        CancelOp(t, owner, m, oid, cid, every, None if k is None else place_ops[k])
        for t, owner, m, oid, cid, every, k in cancels
    ]
    return cancel_ops, place_ops


def apply_order_changes(book: Book, changes: Iterable[tuple[int, OrderFields | None]]) -> list[int]:
    """Make ``book`` hold these orders (ascending id; ``None``: gone) and return their ids.

    New orders go to the back of their level in id order, which is the order they were placed
    in, so time priority is the book's that produced the changes. A resting order that changed
    can only have lost size or reservation (a fill); the rest of an order never changes.
    """
    ids: list[int] = []
    for order_id, fields in changes:
        ids.append(order_id)
        current = book.get_order(order_id)
        if fields is None:
            if current is not None:
                book.cancel(order_id)
        elif current is None:
            book.insert_resting(Order(*fields))
        else:
            current.size_lots = fields[4]
            current.reserved_quote = fields[7]
    return ids


def _order_changes(book: Book, order_ids: Iterable[int]) -> list[tuple[int, OrderFields | None]]:
    out: list[tuple[int, OrderFields | None]] = []
    for order_id in sorted(order_ids):
        order = book.get_order(order_id)
        out.append((order_id, None if order is None else order.as_tuple()))
    return out


# ------------------------------------------------------------------------------ the worker


class _Shard:
    """A worker's side: its books and its copy of the mirrored tables."""

    def __init__(self) -> None:
        self.state = new_empty_state()
        self.fee_tiers: Sequence[FeeTier] = ()

    def sync(
        self,
        tables: dict[str, dict[Any, Any]],
        books: dict[int, tuple[int, list[OrderFields]]],
        fee_tiers: Sequence[FeeTier],
    ) -> None:
        self.state = new_empty_state()
        for name, data in tables.items():
            self.state.tables[name].data.update(data)
        for market_id, (max_open, orders) in books.items():
            book = self.state.books[market_id] = Book(market_id, max_open)
            for fields in orders:
                book.insert_resting(Order(*fields))
        self.fee_tiers = fee_tiers

    def catch_up(
        self,
        tables: dict[str, dict[Any, Any]],
        orders: dict[int, list[tuple[int, OrderFields | None]]],
        fee_tiers: Sequence[FeeTier] | None,
    ) -> None:
        for name, changed in tables.items():
            data = self.state.tables[name].data
            for key, value in changed.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
        books = self.state.books
        for market_id, changes in orders.items():
            book = books.get(market_id)
            if book is None:  # a market listed since the last sync (its cap comes with a job)
                book = books[market_id] = Book(market_id)
            apply_order_changes(book, changes)
        if fee_tiers is not None:
            self.fee_tiers = fee_tiers

    def match(self, job: Job) -> Answer:
        market, max_open, next_order_id, cancel_fields, place_fields = job
        state = self.state
        market_id = market.market_id
        book = state.books.get(market_id)
        if book is None:
            book = state.books[market_id] = Book(market_id, max_open)
        book.max_open_orders_per_owner = max_open
        state.tables["market_seq"].data[market_id] = next_order_id
        cancels, places = _ops(cancel_fields, place_fields)
        tx_events, account_deltas, tx_work, _, _, _ = _match_apart(
            state, market, book, cancels, places, self.fee_tiers
        )
        changed = _order_changes(book, book.dirty)
        book.dirty.clear()
        last_trade = state.tables["last_trade"].data.pop(market_id, None)
        for table in state.tables.values():
            table.dirty.clear()
        return (
            tx_events,
            account_deltas,
            tx_work,
            changed,
            get_next_order_id(state, market_id),
            last_trade,
        )


def _serve(conn: Connection, initializer: Callable[[int], object] | None, initarg: int) -> None:
    """A worker process: answer the coordinator until it says stop or goes away."""
    if initializer is not None:
        initializer(initarg)
    shard = _Shard()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind not in ("sync", "block"):
            return
        try:
            if kind == "sync":
                shard.sync(*message[1:])
                continue
            _, tables, orders, fee_tiers, jobs = message
            shard.catch_up(tables, orders, fee_tiers)
            if not jobs:
                continue
            answer = _ENCODE([shard.match(job) for job in jobs])
        except Exception:  # a bug, never user input: the coordinator's next read says what
            conn.send_bytes(_FAILED + traceback.format_exc().encode())
            return
        conn.send_bytes(answer)


# ------------------------------------------------------------------------- the coordinator


class _Worker:
    def __init__(self, shard: int, process: Any, conn: Connection) -> None:
        self.shard = shard
        self.process = process
        self.conn = conn


class ShardedMatching:
    """The matching phase split across ``shards`` shards by market (see the module docstring).

    ``shards=1`` runs every market in the calling process (the serial loop, through the same
    code path). ``placed`` puts markets on other shards than ``(m - 1) % shards`` (market id ->
    shard; a hot market alone on a worker). ``initializer(initarg)`` runs first in each worker
    process (the node's: end with the node).
    """

    def __init__(
        self,
        shards: int,
        initializer: Callable[[int], object] | None = None,
        initarg: int = 0,
        placed: Mapping[int, int] | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, not {shards}")
        if placed and not all(0 <= shard < shards for shard in placed.values()):
            raise ValueError(f"a market placed on a shard outside 0..{shards - 1}: {placed}")
        self.shards = shards
        self._placed = dict(placed or {})
        context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        for shard in range(1, shards):
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(child, initializer, initarg),
                name=f"strata-matching-{shard}",
                daemon=True,
            )
            process.start()
            child.close()
            self._workers.append(_Worker(shard, process, parent))
        self._state: State | None = None
        self._in_block = False
        self._tiers: Sequence[FeeTier] | None = None
        self._keys: dict[str, set[Any]] = {name: set() for name in _MIRRORED}
        """Keys of the mirrored tables changed by blocks since the workers last heard."""
        self._orders: dict[int, set[int]] = {}
        """Per market of a worker: orders the coordinator changed since the worker last heard."""
        self._answered: dict[int, dict[int, OrderFields | None]] = {}
        """Per market of a worker: the orders its answer in this block changed, as it left them."""
        self.broken: str | None = None
        self.seconds = {"own": 0.0, "waiting": 0.0, "handover": 0.0}
        """The calling thread's time in the matching phase so far, by part: matching its own
        markets, waiting for (and reading) the workers' answers, and the rest of the hand-over
        (catching the workers up, sending, gathering, noting a block's changes). A node
        exports it as ``strata_matching_seconds_total{part}``: what the phase costs, and how
        much of it is waiting on the slowest shard."""

    def shard_of(self, market_id: int) -> int:
        """The shard that matches ``market_id`` (0: the coordinator)."""
        shard = self._placed.get(market_id)
        return (market_id - 1) % self.shards if shard is None else shard

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the workers (tests kill them)."""
        return [w.process.pid for w in self._workers]

    # ------------------------------------------------------------------ sending and receiving

    def _send(self, worker: _Worker, message: object) -> None:
        try:
            worker.conn.send(message)
        except (OSError, ValueError) as error:
            self._died(worker, error)

    def _receive(self, worker: _Worker) -> list[Answer]:
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError) as error:
            self._died(worker, error)
        if data.startswith(_FAILED):
            self.broken = f"matching worker {worker.shard} failed: {data[1:].decode()}"
            raise MatchingWorkerDied(self.broken)
        return _ANSWERS.decode(data)

    def _died(self, worker: _Worker, error: BaseException) -> NoReturn:
        self.broken = (
            f"matching worker {worker.shard} (pid {worker.process.pid}) died: "
            f"{type(error).__name__}"
        )
        raise MatchingWorkerDied(self.broken) from error

    # --------------------------------------------------------------------------------- sync

    def sync(self, state: State, fee_tiers: Sequence[FeeTier]) -> None:
        """Send each worker ``state``'s books of its markets and the mirrored tables whole."""
        if self.broken is not None:
            raise MatchingWorkerDied(self.broken)
        tables = {name: dict(state.tables[name].data) for name in _MIRRORED}
        for worker in self._workers:
            books = {
                market_id: (
                    book.max_open_orders_per_owner,
                    [order.as_tuple() for order in book.iter_orders()],
                )
                for market_id, book in state.books.items()
                if self.shard_of(market_id) == worker.shard
            }
            self._send(worker, ("sync", tables, books, tuple(fee_tiers)))
        self._state = state
        self._tiers = fee_tiers
        for keys in self._keys.values():
            keys.clear()
        self._orders.clear()
        self._answered.clear()

    def _catch_up(self, state: State, fee_tiers: Sequence[FeeTier]) -> tuple[Any, ...]:
        """What every worker must hear before this block's matching (see ``end_block``)."""
        tables: dict[str, dict[Any, Any]] = {}
        for name in _MIRRORED:
            table = state.tables[name]
            keys = self._keys[name]
            keys.update(table.dirty)  # this block's prologue and admission
            data = table.data
            tables[name] = {key: data.get(key) for key in keys}
            keys.clear()
        tiers = None
        if fee_tiers is not self._tiers:
            tiers = self._tiers = fee_tiers
        return tables, tiers

    def _orders_for(self, state: State, shard: int) -> dict[int, list[tuple[int, Any]]]:
        out: dict[int, list[tuple[int, Any]]] = {}
        for market_id, book in state.books.items():
            if self.shard_of(market_id) != shard:
                continue
            ids = self._orders.pop(market_id, set())
            ids.update(book.dirty)  # this block's prologue (expiries)
            if ids:
                out[market_id] = _order_changes(book, ids)
        return out

    # ------------------------------------------------------------------------- one block

    def match(
        self,
        state: State,
        jobs: Sequence[MarketJob],
        fee_tiers: Sequence[FeeTier],
        events: Slots[EventSink],
        deltas: dict[bytes, AccountDelta],
        work: Slots[MarketWork],
    ) -> None:
        """Run ``jobs`` as ``match_markets`` would, the workers' markets in their processes."""
        if self.broken is not None:
            raise MatchingWorkerDied(self.broken)
        started = time.perf_counter()
        seconds = self.seconds
        if state is not self._state or self._in_block:
            self.sync(state, fee_tiers)
        self._in_block = True
        if not self._workers:
            match_markets(state, jobs, fee_tiers, events, deltas, work)
            seconds["own"] += time.perf_counter() - started
            return
        tables, tiers = self._catch_up(state, fee_tiers)
        remote: dict[int, list[Job]] = {w.shard: [] for w in self._workers}
        for market, book, cancels, places in jobs:
            shard = self.shard_of(market.market_id)
            if shard:
                place_index = {id(op): k for k, op in enumerate(places)}
                remote[shard].append(
                    (
                        market,
                        book.max_open_orders_per_owner,
                        get_next_order_id(state, market.market_id),
                        [_cancel_fields(op, place_index) for op in cancels],
                        [_place_fields(op) for op in places],
                    )
                )
        for worker in self._workers:
            orders = self._orders_for(state, worker.shard)
            self._send(worker, ("block", tables, orders, tiers, remote[worker.shard]))
        sent = time.perf_counter()
        seconds["handover"] += sent - started

        # The coordinator's markets meanwhile: straight into the block's slots until a worker's
        # market comes first in market order, then aside, to be gathered in order.
        later: dict[int, Answer] = {}
        direct = True
        for market, book, cancels, places in jobs:
            if self.shard_of(market.market_id):
                direct = False
            elif direct:
                process_market_matching(
                    state, market, book, cancels, places, fee_tiers, events, deltas, work
                )
            else:
                later[market.market_id] = _match_apart(
                    state, market, book, cancels, places, fee_tiers
                )

        matched = time.perf_counter()
        seconds["own"] += matched - sent
        answers: dict[int, Answer] = {}
        for worker in self._workers:
            if remote[worker.shard]:
                for job, answer in zip(remote[worker.shard], self._receive(worker), strict=True):
                    answers[job[0].market_id] = answer
        received = time.perf_counter()
        seconds["waiting"] += received - matched
        if direct:
            return
        answered = self._answered
        for market, book, _, _ in jobs:
            market_id = market.market_id
            if market_id in later:
                _gather(state, book, market_id, later[market_id], events, deltas, work)
            elif market_id in answers:
                answer = answers[market_id]
                ids = _gather(state, book, market_id, answer, events, deltas, work)
                book.dirty.update(ids)
                answered[market_id] = dict(answer[3])
        seconds["handover"] += time.perf_counter() - received

    def end_block(self, state: State) -> None:
        """Note what the block changed, for the workers to hear with the next block."""
        self._in_block = False
        if not self._workers:
            return
        started = time.perf_counter()
        for name in _MIRRORED:
            self._keys[name].update(state.tables[name].dirty)
        for market_id, book in state.books.items():
            if not self.shard_of(market_id) or not book.dirty:
                continue
            answered = self._answered.pop(market_id, {})
            changed = self._orders.setdefault(market_id, set())
            for order_id in book.dirty:
                if order_id in answered:
                    fields = answered[order_id]
                    order = book.get_order(order_id)
                    if fields is None:
                        if order is None:
                            continue
                    elif (
                        order is not None
                        and order.size_lots == fields[4]
                        and order.reserved_quote == fields[7]
                    ):
                        continue
                changed.add(order_id)
        self._answered.clear()
        self.seconds["handover"] += time.perf_counter() - started

    def close(self) -> None:
        """Stop the workers (each finishes what it is doing first)."""
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
            worker.conn.close()
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._workers = []


def _match_apart(
    state: State,
    market: Market,
    book: Book,
    cancels: list[CancelOp],
    places: list[PlaceOp],
    fee_tiers: Sequence[FeeTier],
) -> Answer:
    """Match one market into slots of its own, as an answer: a worker's market, or a
    coordinator's that is gathered after a worker's market coming before it. The answer carries
    no order hand-over (no changed orders, next order id ``-1``: the book matched is the one
    that keeps them); a worker fills those in."""
    events = _OnDemand(list)
    work = _OnDemand(MarketWork)
    deltas: dict[bytes, AccountDelta] = {}
    process_market_matching(state, market, book, cancels, places, fee_tiers, events, deltas, work)
    return (
        list(events.items()),
        [(owner, d.fills, d.release_quote) for owner, d in deltas.items()],
        [(index, w.fills, w.levels, w.cancels) for index, w in work.items()],
        [],
        -1,
        None,
    )


def _gather(
    state: State,
    book: Book,
    market_id: int,
    answer: Answer,
    events: Slots[EventSink],
    deltas: dict[bytes, AccountDelta],
    work: Slots[MarketWork],
) -> list[int]:
    """Add one market's results to the block's, as if it had matched here; return the ids of
    the orders it changed (now applied to ``book``)."""
    tx_events, account_deltas, tx_work, changed, next_order_id, last_trade = answer
    for index, market_events in tx_events:
        sink = events[index]
        for event in market_events:
            sink.append(event)
    for owner, fills, release in account_deltas:
        delta = deltas.get(owner)
        if delta is None:
            delta = deltas[owner] = AccountDelta()
        delta.fills.extend(fills)
        delta.release_quote += release
    for index, fills_count, levels, cancels in tx_work:
        w = work[index]
        w.fills += fills_count
        w.levels += levels
        w.cancels += cancels
    if next_order_id < 0:
        return []
    if get_next_order_id(state, market_id) != next_order_id:
        set_next_order_id(state, market_id, next_order_id)
    if last_trade is not None:
        state.tables["last_trade"].put(market_id, last_trade)
    return apply_order_changes(book, changed)


__all__ = ["MatchingWorkerDied", "ShardedMatching", "apply_order_changes"]

"""Live feeds, built from committed blocks only (docs/api.md, "Subscriptions").

After each durable commit the node calls :meth:`Feeds.publish`. Every message's ``seq`` is the
height of the block it comes from, so numbering survives restarts and every node numbers alike:

- ``blocks``: one message per block;
- ``trades`` and ``book``, per market: one message per block, even when empty (no trades, no
  level changed), so ``seq`` grows by exactly 1 and a gap is always visible;
- ``account``: a message only for blocks with events of the account, carrying ``prev_seq``, the
  height of the account's previous message (``null`` if this node has not seen one since it
  started): a client that holds ``prev_seq`` has missed nothing.

Recent messages are kept, serialized, in bounded rings so a client can resume after
``since_seq``; when what it missed is no longer kept, it gets a fresh snapshot (``book``) or a
``{"type": "reset"}`` message telling it to re-read state by query (``trades``, ``account``). On
start the node rebuilds the trade and account rings from the events of its last blocks.

On a node with an index process, the account messages of subscribed accounts are rendered there,
beside the index, instead of on the node's main thread (:meth:`Feeds.publish`,
:meth:`Feeds.rendered`); they reach subscribers a few milliseconds later, in the same order and
with the same text, and a subscriber that resumed in between is not sent a message twice.

Every event of a block counts, the receipts' and the block's own lists (``node/events.py``):
the fills of fired triggers, of liquidations and of the insurance fund's unwinding are trades;
orders canceled by expiry, a dead-man switch or a liquidation are order updates of their owner
and changes of the book. An account message carries the account's ``fills``, ``orders`` and
``events``: its position changes, triggers, dead-man switch, margin modes, isolated margin moved
and liquidations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import orjson

from strata.client.feeds import book_checksum
from strata.client.markets import MarketInfo
from strata.client.wire import event_to_json
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    PositionLiquidated,
)
from strata.modules.triggers import ScheduledCancelFired, TriggerUpdate
from strata.node.events import block_segments
from strata.node.index_worker import RenderRequests
from strata.state.store import State
from strata.stf.block import BlockOutput, compute_header_hash
from strata.stf.events import CancelScheduled, Event, IsolatedMarginMoved, MarginModeChanged

BOOK_DEPTH = 50
"""Levels per side of the L2 book feed (snapshot, deltas and checksum)."""
RING = 256
"""Messages kept per feed for resumption (at most): about 50 s of blocks at 200 ms."""
RING_BYTES = 2 * 1024 * 1024
"""Bytes of messages kept per feed for resumption (at most); the account feed's one shared ring
holds four times this."""
TRADES_KEPT = 1000
"""Recent trades kept per market (``strata_getTrades``)."""
REBUILD_BLOCKS = 256
"""Blocks whose events rebuild the trade and account rings on start."""

Levels = list[list[str]]
BookViews = dict[int, tuple[Levels, Levels]]
"""Each market's bids and asks as the feeds show them (:meth:`Feeds.capture_books`)."""


def dumps(message: dict[str, Any]) -> str:
    """Compact JSON text (orjson: the feeds serialize every message of every subscribed feed)."""
    return orjson.dumps(message).decode()


class Subscriber:
    """A subscription: what it follows (``kind``, ``key``) and where its messages go."""

    def __init__(self, sub_id: str, kind: str, key: Any) -> None:
        self.sub_id = sub_id
        self.kind = kind
        self.key = key
        self.seq = -1
        """The height of the last message delivered (``account``: a message rendered in the
        index process may arrive after the subscriber caught up by resuming; it is not sent
        twice)."""

    def push(self, text: str) -> None:
        """Deliver one message, already serialized as JSON (it is serialized once per feed
        message, however many subscribers it has)."""
        raise NotImplementedError


class Lazy:
    """A message rendered to JSON text when first needed (most messages of a busy node are
    never read: nobody follows that account, nobody resumes)."""

    __slots__ = ("_render", "_text", "size")

    def __init__(self, render: Callable[[], dict[str, Any]], size: int) -> None:
        self._render: Callable[[], dict[str, Any]] | None = render
        self._text = ""
        self.size = size

    @classmethod
    def of(cls, message: dict[str, Any]) -> Lazy:
        lazy = cls(lambda: message, 0)
        lazy.size = len(lazy.text())
        return lazy

    def text(self) -> str:
        if self._render is not None:
            self._text = dumps(self._render())
            self._render = None
        return self._text

    def fill(self, text: str) -> None:
        """The text, rendered elsewhere (the same message: see :func:`render_account_messages`)."""
        if self._render is not None:
            self._text = text
            self._render = None


class Ring:
    """Recent messages of a feed as ``(seq, key, text)``, bounded in count and bytes.

    ``covered_from`` is the lowest height from which every message is still held: a resume
    after ``since_seq`` is possible when ``since_seq + 1 >= covered_from``.
    """

    __slots__ = ("bytes", "covered_from", "entries", "max_bytes", "max_entries")

    def __init__(self, covered_from: int, max_entries: int, max_bytes: int) -> None:
        self.entries: deque[tuple[int, Any, Lazy]] = deque()
        self.bytes = 0
        self.covered_from = covered_from
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def add(self, seq: int, key: Any, message: Lazy) -> None:
        entries = self.entries
        entries.append((seq, key, message))
        self.bytes += message.size
        while len(entries) > self.max_entries or (self.bytes > self.max_bytes and len(entries) > 1):
            old_seq, _, old = entries.popleft()
            self.bytes -= old.size
            self.covered_from = old_seq + 1

    def since(self, seq: int, key: Any = None) -> list[str] | None:
        """Messages (of ``key``) after ``seq``, or ``None`` if some may be missing."""
        if seq + 1 < self.covered_from:
            return None
        return [m.text() for s, k, m in self.entries if s > seq and (key is None or k == key)]


class Feeds:
    def __init__(self, markets: dict[int, MarketInfo]) -> None:
        self.markets = markets
        self._books: dict[int, tuple[Levels, Levels]] = {m: ([], []) for m in markets}
        self._book_rings = {m: Ring(1, RING, RING_BYTES) for m in markets}
        self._trade_rings = {m: Ring(1, RING, RING_BYTES) for m in markets}
        self._account_ring = Ring(1, 16 * RING, 4 * RING_BYTES)
        self._account_last: dict[bytes, int] = {}
        self._trades: dict[int, deque[tuple[int, FillEvent]]] = {
            m: deque(maxlen=TRADES_KEPT) for m in markets
        }
        self._subscribers: dict[tuple[str, Any], dict[int, Subscriber]] = {}
        self.height = 0
        self.remote = False
        """Whether subscribed accounts' messages are rendered in the index process
        (:meth:`publish` returns what to render, :meth:`rendered` delivers it)."""
        self._awaiting: dict[int, dict[bytes, Lazy]] = {}

    # ------------------------------------------------------------ subscribers

    def add_subscriber(self, sub: Subscriber) -> None:
        """Live messages from the next block on (what came before: :meth:`resume`)."""
        sub.seq = self.height
        self._subscribers.setdefault((sub.kind, sub.key), {})[id(sub)] = sub

    def remove_subscriber(self, sub: Subscriber) -> None:
        subs = self._subscribers.get((sub.kind, sub.key))
        if subs is not None:
            subs.pop(id(sub), None)
            if not subs:
                del self._subscribers[(sub.kind, sub.key)]

    def _send(self, kind: str, key: Any, message: Lazy) -> None:
        subs = self._subscribers.get((kind, key))
        if subs:
            text = message.text()
            for sub in list(subs.values()):
                sub.push(text)

    def _send_account(self, account: bytes, height: int, message: Lazy) -> None:
        """An account's message of block ``height`` to each subscriber that lacks it."""
        subs = self._subscribers.get(("account", account))
        if subs:
            text = message.text()
            for sub in list(subs.values()):
                if sub.seq < height:
                    sub.seq = height
                    sub.push(text)

    # ------------------------------------------------------------ views

    def book_view(self, state: State, market_id: int, depth: int) -> tuple[Levels, Levels]:
        info = self.markets[market_id]
        bids, asks = state.books[market_id].depth(depth)
        show_p, show_s = info.ticks_to_price, info.lots_to_size
        return (
            [[show_p(p), show_s(s)] for p, s in bids],
            [[show_p(p), show_s(s)] for p, s in asks],
        )

    def book_snapshot(self, market_id: int) -> dict[str, Any]:
        bids, asks = self._books[market_id]
        return {
            "type": "snapshot",
            "market": self.markets[market_id].symbol,
            "seq": self.height,
            "height": self.height,
            "checksum": book_checksum(bids, asks),
            "bids": bids,
            "asks": asks,
        }

    def recent_trades(self, market_id: int, limit: int) -> list[dict[str, Any]]:
        """The market's last ``limit`` trades, newest first."""
        trades = self._trades[market_id]
        return [self._trade_json(*trades[i]) for i in range(min(limit, len(trades)))]

    def _trade_json(self, height: int, fill: FillEvent) -> dict[str, Any]:
        info = self.markets[fill.market_id]
        return {
            "height": height,
            "price": info.ticks_to_price(fill.price_ticks),
            "size": info.lots_to_size(fill.size_lots),
            "side": "buy" if fill.taker_is_buy else "sell",
            "maker": "0x" + fill.maker.hex(),
            "taker": "0x" + fill.taker.hex(),
            "maker_order_id": fill.maker_order_id,
            "taker_order_id": fill.taker_order_id,
        }

    def reset_message(self, kind: str) -> dict[str, Any]:
        """What a subscriber gets when the messages it missed are no longer kept."""
        return {"type": "reset", "kind": kind, "seq": self.height, "height": self.height}

    def resume(self, kind: str, key: Any, since_seq: int) -> list[str] | None:
        """Messages of a feed after ``since_seq`` (``None``: not all of them are kept)."""
        if since_seq > self.height:
            return None  # a number from another chain or a future height: start over
        if kind == "book":
            return self._book_rings[key].since(since_seq)
        if kind == "trades":
            return self._trade_rings[key].since(since_seq)
        if kind == "account":
            return self._account_ring.since(since_seq, key)
        return None

    # ------------------------------------------------------------ publishing

    def load(self, state: State, height: int, recent: Iterable[BlockOutput]) -> None:
        """Start from the committed state at ``height``: the books as they stand, and the trade
        and account rings rebuilt from the events of ``recent`` (the last blocks, in order:
        receipts and block events alike)."""
        self.height = height
        for market_id in self.markets:
            self._books[market_id] = self.book_view(state, market_id, BOOK_DEPTH)
            self._book_rings[market_id].covered_from = height + 1
        first = height + 1
        for output in recent:
            first = min(first, output.header.height)
            self._publish_events(output, None)
        for ring in (*self._trade_rings.values(), self._account_ring):
            ring.covered_from = max(ring.covered_from, first)  # eviction may have raised it

    def capture_books(self, state: State, market_ids: Iterable[int]) -> BookViews:
        """The books of ``market_ids`` (those the block changed) as the feeds show them, from
        ``state`` now (a node whose commitment is pipelined publishes a block after the next one
        has executed: it captures the block's books while the state is still its post-state).
        :meth:`publish` takes a market left out as unchanged."""
        return {m: self.book_view(state, m, BOOK_DEPTH) for m in market_ids}

    def publish(self, output: BlockOutput, state: State | BookViews) -> RenderRequests:
        """Turn a committed block into feed messages and hand them to subscribers (``state``:
        the block's post-state, or its books as :meth:`capture_books` took them).

        With :attr:`remote`, the messages of subscribed accounts are not rendered here: the
        result lists them, as ``(account, prev_seq)``, for the index process, and
        :meth:`rendered` delivers them when they come back. (Measured under bulk load, rendering
        the account feeds was a quarter of the node's main thread.)"""
        header = output.header
        height = header.height
        self.height = height
        if self._subscribers.get(("blocks", None)):
            block_message = {
                "seq": height,
                "height": height,
                "hash": "0x" + compute_header_hash(header).hex(),
                "timestamp_ms": header.timestamp_ms,
                "tx_count": len(output.transactions),
                "gas_used": header.gas_used,
                "state_root": "0x" + header.state_root.hex(),
            }
            self._send("blocks", None, Lazy.of(block_message))
        requests: RenderRequests = []
        touched = self._publish_events(output, requests if self.remote else None)
        for market_id in self.markets:
            self._publish_book(state, market_id, market_id in touched)
        return requests

    def rendered(self, height: int, messages: list[tuple[bytes, str]]) -> None:
        """The account messages of block ``height`` that the index process rendered (see
        :meth:`publish`): delivered to the subscribers that do not have them yet."""
        awaiting = self._awaiting.pop(height, {})
        for account, text in messages:
            message = awaiting.pop(account, None)
            if message is not None:
                message.fill(text)
                self._send_account(account, height, message)
        for account, message in awaiting.items():  # none, unless the two disagree: render here
            self._send_account(account, height, message)

    def _publish_events(self, output: BlockOutput, requests: RenderRequests | None) -> set[int]:
        """Trade and account messages of a block (rendered only when someone reads them);
        returns the markets whose book may have changed. With ``requests``, subscribed
        accounts' messages are listed there to be rendered elsewhere instead of sent.

        Every event counts, the receipts' and the block's own (``node/events.py``, in the order
        they happened): fills of fired triggers, liquidations and the insurance fund's
        unwinding are trades like any; orders canceled by expiry, a dead-man switch or a
        liquidation change the book."""
        height = output.header.height
        fills, per_account, touched = group_events(output, self.markets)
        for market_id, market_fills in fills.items():
            self._trades[market_id].extendleft((height, f) for f in market_fills)
            trades = Lazy(
                partial(self._trades_json, market_id, height, market_fills),
                96 + 200 * len(market_fills),
            )
            self._trade_rings[market_id].add(height, None, trades)
            self._send("trades", market_id, trades)
        last = self._account_last
        subscribers = self._subscribers
        fill_json: dict[int, dict[str, Any]] = {}  # a fill is shown to its maker and its taker
        for account, (account_fills, orders, others) in per_account.items():
            prev_seq = last.get(account)
            message = Lazy(
                partial(
                    account_message,
                    self.markets,
                    account,
                    height,
                    prev_seq,
                    account_fills,
                    orders,
                    others,
                    fill_json,
                ),
                128 + 300 * (len(account_fills) + len(orders) + len(others)),
            )
            last[account] = height
            self._account_ring.add(height, account, message)
            if ("account", account) not in subscribers:
                continue
            if requests is None:
                self._send_account(account, height, message)
            else:
                requests.append((account, prev_seq))
                self._awaiting.setdefault(height, {})[account] = message
        return touched

    def _trades_json(self, market_id: int, height: int, fills: list[FillEvent]) -> dict[str, Any]:
        return {
            "market": self.markets[market_id].symbol,
            "seq": height,
            "height": height,
            "trades": [self._trade_json(height, f) for f in fills],
        }

    def _publish_book(self, state: State | BookViews, market_id: int, touched: bool) -> None:
        delta_bids: Levels = []
        delta_asks: Levels = []
        bids, asks = self._books[market_id]
        if touched:
            old_bids, old_asks = bids, asks
            if isinstance(state, State):
                bids, asks = self.book_view(state, market_id, BOOK_DEPTH)
            else:  # not captured: the block did not change this book
                bids, asks = state.get(market_id, (bids, asks))
            delta_bids = _diff(old_bids, bids)
            delta_asks = _diff(old_asks, asks)
            self._books[market_id] = (bids, asks)
        message = {
            "type": "delta",
            "market": self.markets[market_id].symbol,
            "seq": self.height,
            "height": self.height,
            "checksum": book_checksum(bids, asks),
            "bids": delta_bids,
            "asks": delta_asks,
        }
        lazy = Lazy.of(message)
        self._book_rings[market_id].add(self.height, None, lazy)
        self._send("book", market_id, lazy)


ACCOUNT_EVENTS = (
    PositionChanged,
    TriggerUpdate,
    CancelScheduled,
    ScheduledCancelFired,
    MarginModeChanged,
    IsolatedMarginMoved,
    AccountLiquidated,
    PositionLiquidated,
    Deleveraged,
    BadDebtChanged,
)
"""Events shown in the ``events`` of an account message (besides its fills and orders)."""


AccountEvents = tuple[list[FillEvent], list[OrderUpdate], list[Event]]
"""An account's events in a block: its fills, its order updates, the rest it is shown."""


def group_events(
    output: BlockOutput, markets: dict[int, MarketInfo]
) -> tuple[dict[int, list[FillEvent]], dict[bytes, AccountEvents], set[int]]:
    """A block's fills per market, events per account (:data:`AccountEvents`) and the markets
    whose book may have changed, every event in the order it happened."""
    fills: dict[int, list[FillEvent]] = {m: [] for m in markets}
    per_account: dict[bytes, AccountEvents] = {}

    def of(account: bytes) -> AccountEvents:
        entry = per_account.get(account)
        if entry is None:
            entry = per_account[account] = ([], [], [])
        return entry

    touched: set[int] = set()
    for _, _, events in block_segments(output):
        for event in events:
            if isinstance(event, FillEvent):
                touched.add(event.market_id)
                fills[event.market_id].append(event)
                of(event.maker)[0].append(event)
                if event.taker != event.maker:
                    of(event.taker)[0].append(event)
            elif isinstance(event, OrderUpdate):
                touched.add(event.market_id)
                of(event.owner)[1].append(event)
            elif isinstance(event, ACCOUNT_EVENTS):
                for account in _accounts_of(event):
                    of(account)[2].append(event)
    return fills, per_account, touched


def account_message(
    markets: dict[int, MarketInfo],
    account: bytes,
    height: int,
    prev_seq: int | None,
    fills: list[FillEvent],
    orders: list[OrderUpdate],
    others: list[Event],
    fill_json: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """An account's message of block ``height`` (``fill_json``: the block's fills already
    rendered, by ``id``; a fill is shown to its maker and its taker)."""
    rendered = []
    for fill in fills:
        shown = fill_json.get(id(fill))
        if shown is None:
            shown = fill_json[id(fill)] = event_to_json(fill, markets)
        rendered.append(shown)
    return {
        "address": "0x" + account.hex(),
        "seq": height,
        "prev_seq": prev_seq,
        "height": height,
        "fills": rendered,
        "orders": [event_to_json(o, markets) for o in orders],
        "events": [event_to_json(e, markets) for e in others],
    }


def render_account_messages(
    output: BlockOutput, markets: dict[int, MarketInfo], requests: RenderRequests
) -> list[tuple[bytes, str]]:
    """The JSON text of the account messages ``requests`` names (what :meth:`Feeds.publish`
    would have rendered; run in the index process)."""
    _, per_account, _ = group_events(output, markets)
    height = output.header.height
    fill_json: dict[int, dict[str, Any]] = {}
    return [
        (account, dumps(account_message(markets, account, height, prev_seq, *events, fill_json)))
        for account, prev_seq in requests
        if (events := per_account.get(account)) is not None
    ]


def _accounts_of(event: Event) -> tuple[bytes, ...]:
    """The accounts an event of :data:`ACCOUNT_EVENTS` is shown to."""
    if isinstance(event, Deleveraged):
        return (event.account, event.counterparty)
    account: bytes = event.account  # type: ignore[union-attr]
    return (account,)


def _diff(old: Levels, new: Levels) -> Levels:
    """Changed levels from ``old`` to ``new`` (size ``"0"``: the level left the view)."""
    before = {price: size for price, size in old}
    after = {price: size for price, size in new}
    changes = [[price, size] for price, size in new if before.get(price) != size]
    changes.extend([price, "0"] for price in before if price not in after)
    return changes

"""Live feeds, built from committed blocks only (docs/api.md, "Subscriptions").

After each durable commit the node calls :meth:`Feeds.publish`; it turns the block's events into
messages per feed (blocks; trades per market; the L2 book per market; fills and order updates per
account), numbers them (``seq`` +1 per message of a feed) and keeps the recent ones in bounded
rings so a client that missed some can resume from its last ``seq``. Delivery to subscribers is the
server's job (:class:`Subscriber` is a bounded queue; a subscriber that falls too far behind is
dropped, and resumes).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from strata.client.feeds import book_checksum
from strata.client.markets import MarketInfo
from strata.client.wire import event_to_json
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.state.store import State
from strata.stf.block import Block, BlockOutput, compute_header_hash

BOOK_DEPTH = 50
"""Levels per side of the L2 book feed (snapshot, deltas and checksum)."""
RING = 1024
"""Messages kept per feed for resumption (at most)."""
RING_BYTES = 4 * 1024 * 1024
"""Bytes of messages kept per feed for resumption (at most)."""
TRADES_KEPT = 1000
"""Recent trades kept per market (``strata_getTrades``)."""

Levels = list[list[str]]


class Subscriber:
    """A subscription: what it follows (``kind``, ``key``) and where its messages go."""

    def __init__(self, sub_id: str, kind: str, key: Any) -> None:
        self.sub_id = sub_id
        self.kind = kind
        self.key = key

    def push(self, text: str) -> None:
        """Deliver one message, already serialized as JSON (it is serialized once per feed
        message, however many subscribers it has)."""
        raise NotImplementedError


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class _Feed:
    """One feed's sequence number and its recent messages, serialized, for resumption: at most
    ``RING`` messages and ``RING_BYTES`` of text, so memory does not grow with traffic."""

    __slots__ = ("bytes", "ring", "seq")

    def __init__(self) -> None:
        self.seq = 0
        self.ring: deque[tuple[int, str]] = deque()
        self.bytes = 0

    def add(self, message: dict[str, Any]) -> str:
        """Number ``message`` (``seq``), keep it, and return its JSON text."""
        self.seq += 1
        message["seq"] = self.seq
        text = dumps(message)
        ring = self.ring
        ring.append((self.seq, text))
        self.bytes += len(text)
        while len(ring) > RING or (self.bytes > RING_BYTES and len(ring) > 1):
            self.bytes -= len(ring.popleft()[1])
        return text

    def since(self, seq: int) -> list[str] | None:
        """Messages after ``seq``, or ``None`` if some of them are no longer kept."""
        if seq >= self.seq:
            return []
        if not self.ring or self.ring[0][0] > seq + 1:
            return None
        return [text for number, text in self.ring if number > seq]


class Feeds:
    def __init__(self, markets: dict[int, MarketInfo]) -> None:
        self.markets = markets
        self._books: dict[int, tuple[Levels, Levels]] = {m: ([], []) for m in markets}
        self._book_feeds = {m: _Feed() for m in markets}
        self._trade_feeds = {m: _Feed() for m in markets}
        self._account_feeds: dict[bytes, _Feed] = {}
        self.trades: dict[int, deque[dict[str, Any]]] = {
            m: deque(maxlen=TRADES_KEPT) for m in markets
        }
        self.subscribers: dict[str, Subscriber] = {}
        self.height = 0

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
            "seq": self._book_feeds[market_id].seq,
            "height": self.height,
            "checksum": book_checksum(bids, asks),
            "bids": bids,
            "asks": asks,
        }

    def book_seq(self, market_id: int) -> int:
        return self._book_feeds[market_id].seq

    def resume(self, kind: str, key: Any, since_seq: int) -> list[str] | None:
        """Messages of a feed after ``since_seq`` (``None``: no longer kept)."""
        if kind == "book":
            return self._book_feeds[key].since(since_seq)
        if kind == "trades":
            return self._trade_feeds[key].since(since_seq)
        if kind == "account":
            feed = self._account_feeds.get(key)
            return [] if feed is None else feed.since(since_seq)
        return None

    def account_seq(self, address: bytes) -> int:
        feed = self._account_feeds.get(address)
        return 0 if feed is None else feed.seq

    def trade_seq(self, market_id: int) -> int:
        return self._trade_feeds[market_id].seq

    # ------------------------------------------------------------ publishing

    def load(self, state: State, height: int) -> None:
        """Start from the committed state (at start-up: books as they stand, seq 0)."""
        self.height = height
        for market_id in self.markets:
            self._books[market_id] = self.book_view(state, market_id, BOOK_DEPTH)

    def publish(self, block: Block, output: BlockOutput, state: State) -> None:
        """Turn a committed block into feed messages and hand them to subscribers."""
        header = output.header
        height = header.height
        self.height = height
        markets = self.markets
        send = self._send
        send(
            "blocks",
            None,
            {
                "height": height,
                "hash": "0x" + compute_header_hash(header).hex(),
                "timestamp_ms": header.timestamp_ms,
                "tx_count": len(block.transactions),
                "gas_used": header.gas_used,
                "state_root": "0x" + header.state_root.hex(),
            },
        )
        trades: dict[int, list[dict[str, Any]]] = {}
        per_account: dict[bytes, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        touched: set[int] = set()
        for receipt in output.receipts:
            for event in receipt.events:
                if isinstance(event, FillEvent):
                    info = markets[event.market_id]
                    touched.add(event.market_id)
                    trade = {
                        "height": height,
                        "price": info.ticks_to_price(event.price_ticks),
                        "size": info.lots_to_size(event.size_lots),
                        "side": "buy" if event.taker_is_buy else "sell",
                        "maker": "0x" + event.maker.hex(),
                        "taker": "0x" + event.taker.hex(),
                        "maker_order_id": event.maker_order_id,
                        "taker_order_id": event.taker_order_id,
                    }
                    trades.setdefault(event.market_id, []).append(trade)
                    fill = event_to_json(event, markets)
                    for who in {event.maker, event.taker}:
                        per_account.setdefault(who, ([], []))[0].append(fill)
                elif isinstance(event, OrderUpdate):
                    touched.add(event.market_id)
                    update = event_to_json(event, markets)
                    per_account.setdefault(event.owner, ([], []))[1].append(update)
        for event in output.block_events.settlement:
            if isinstance(event, PositionChanged):
                touched.add(event.market_id)
        for market_id, market_trades in trades.items():
            self.trades[market_id].extendleft(market_trades)
            message = {
                "market": markets[market_id].symbol,
                "height": height,
                "trades": market_trades,
            }
            send("trades", market_id, self._trade_feeds[market_id].add(message))
        for market_id in sorted(touched):
            self._publish_book(state, market_id)
        for account, (fills, orders) in per_account.items():
            feed = self._account_feeds.setdefault(account, _Feed())
            message = {
                "address": "0x" + account.hex(),
                "height": height,
                "fills": fills,
                "orders": orders,
            }
            send("account", account, feed.add(message))

    def _publish_book(self, state: State, market_id: int) -> None:
        old_bids, old_asks = self._books[market_id]
        bids, asks = self.book_view(state, market_id, BOOK_DEPTH)
        delta_bids = _diff(old_bids, bids)
        delta_asks = _diff(old_asks, asks)
        if not delta_bids and not delta_asks:
            return
        self._books[market_id] = (bids, asks)
        message = {
            "type": "delta",
            "market": self.markets[market_id].symbol,
            "height": self.height,
            "checksum": book_checksum(bids, asks),
            "bids": delta_bids,
            "asks": delta_asks,
        }
        self._send("book", market_id, self._book_feeds[market_id].add(message))

    def _send(self, kind: str, key: Any, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else None
        for sub in list(self.subscribers.values()):
            if sub.kind == kind and sub.key == key:
                if text is None:
                    text = dumps(message)  # type: ignore[arg-type]
                sub.push(text)


def _diff(old: Levels, new: Levels) -> Levels:
    """Changed levels from ``old`` to ``new`` (size ``"0"``: the level left the view)."""
    before = {price: size for price, size in old}
    after = {price: size for price, size in new}
    changes = [[price, size] for price, size in new if before.get(price) != size]
    changes.extend([price, "0"] for price in before if price not in after)
    return changes

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
start the node rebuilds the trade and account rings from the receipts of its last blocks.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from typing import Any

from strata.client.feeds import book_checksum
from strata.client.markets import MarketInfo
from strata.client.wire import event_to_json
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.state.store import State
from strata.stf.block import BlockOutput, compute_header_hash

BOOK_DEPTH = 50
"""Levels per side of the L2 book feed (snapshot, deltas and checksum)."""
RING = 1024
"""Messages kept per feed for resumption (at most)."""
RING_BYTES = 4 * 1024 * 1024
"""Bytes of messages kept per feed for resumption (at most); the account feed's one shared ring
holds four times this."""
TRADES_KEPT = 1000
"""Recent trades kept per market (``strata_getTrades``)."""
REBUILD_BLOCKS = 256
"""Blocks whose receipts rebuild the trade and account rings on start."""

Levels = list[list[str]]


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


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


class Ring:
    """Recent messages of a feed as ``(seq, key, text)``, bounded in count and bytes.

    ``covered_from`` is the lowest height from which every message is still held: a resume
    after ``since_seq`` is possible when ``since_seq + 1 >= covered_from``.
    """

    __slots__ = ("bytes", "covered_from", "entries", "max_bytes", "max_entries")

    def __init__(self, covered_from: int, max_entries: int, max_bytes: int) -> None:
        self.entries: deque[tuple[int, Any, str]] = deque()
        self.bytes = 0
        self.covered_from = covered_from
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def add(self, seq: int, key: Any, text: str) -> None:
        entries = self.entries
        entries.append((seq, key, text))
        self.bytes += len(text)
        while len(entries) > self.max_entries or (self.bytes > self.max_bytes and len(entries) > 1):
            old_seq, _, old_text = entries.popleft()
            self.bytes -= len(old_text)
            self.covered_from = old_seq + 1

    def since(self, seq: int, key: Any = None) -> list[str] | None:
        """Messages (of ``key``) after ``seq``, or ``None`` if some may be missing."""
        if seq + 1 < self.covered_from:
            return None
        return [t for s, k, t in self.entries if s > seq and (key is None or k == key)]


class Feeds:
    def __init__(self, markets: dict[int, MarketInfo]) -> None:
        self.markets = markets
        self._books: dict[int, tuple[Levels, Levels]] = {m: ([], []) for m in markets}
        self._book_rings = {m: Ring(1, RING, RING_BYTES) for m in markets}
        self._trade_rings = {m: Ring(1, RING, RING_BYTES) for m in markets}
        self._account_ring = Ring(1, 64 * RING, 4 * RING_BYTES)
        self._account_last: dict[bytes, int] = {}
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
            "seq": self.height,
            "height": self.height,
            "checksum": book_checksum(bids, asks),
            "bids": bids,
            "asks": asks,
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
        and account rings rebuilt from the receipts of ``recent`` (the last blocks, in order)."""
        self.height = height
        for market_id in self.markets:
            self._books[market_id] = self.book_view(state, market_id, BOOK_DEPTH)
            self._book_rings[market_id].covered_from = height + 1
        first = height + 1
        for output in recent:
            first = min(first, output.header.height)
            self._publish_events(output, send=False)
        for ring in (*self._trade_rings.values(), self._account_ring):
            ring.covered_from = first

    def publish(self, output: BlockOutput, state: State) -> None:
        """Turn a committed block into feed messages and hand them to subscribers."""
        header = output.header
        height = header.height
        self.height = height
        block_message = {
            "seq": height,
            "height": height,
            "hash": "0x" + compute_header_hash(header).hex(),
            "timestamp_ms": header.timestamp_ms,
            "tx_count": len(output.transactions),
            "gas_used": header.gas_used,
            "state_root": "0x" + header.state_root.hex(),
        }
        self._send("blocks", None, dumps(block_message))
        touched = self._publish_events(output, send=True)
        for market_id in self.markets:
            self._publish_book(state, market_id, market_id in touched)

    def _publish_events(self, output: BlockOutput, *, send: bool) -> set[int]:
        """Trade and account messages of a block; returns the markets whose book may have
        changed."""
        height = output.header.height
        markets = self.markets
        trades: dict[int, list[dict[str, Any]]] = {m: [] for m in markets}
        per_account: dict[bytes, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        touched: set[int] = set()
        for receipt in output.receipts:
            for event in receipt.events:
                if isinstance(event, FillEvent):
                    info = markets[event.market_id]
                    touched.add(event.market_id)
                    trades[event.market_id].append(
                        {
                            "height": height,
                            "price": info.ticks_to_price(event.price_ticks),
                            "size": info.lots_to_size(event.size_lots),
                            "side": "buy" if event.taker_is_buy else "sell",
                            "maker": "0x" + event.maker.hex(),
                            "taker": "0x" + event.taker.hex(),
                            "maker_order_id": event.maker_order_id,
                            "taker_order_id": event.taker_order_id,
                        }
                    )
                    fill = event_to_json(event, markets)
                    for who in {event.maker, event.taker}:
                        per_account.setdefault(who, ([], []))[0].append(fill)
                elif isinstance(event, OrderUpdate):
                    touched.add(event.market_id)
                    update = event_to_json(event, markets)
                    per_account.setdefault(event.owner, ([], []))[1].append(update)
        for market_id, market_trades in trades.items():
            self.trades[market_id].extendleft(market_trades)
            message = {
                "market": markets[market_id].symbol,
                "seq": height,
                "height": height,
                "trades": market_trades,
            }
            text = dumps(message)
            self._trade_rings[market_id].add(height, None, text)
            if send:
                self._send("trades", market_id, text)
        last = self._account_last
        for account, (fills, orders) in per_account.items():
            message = {
                "address": "0x" + account.hex(),
                "seq": height,
                "prev_seq": last.get(account),
                "height": height,
                "fills": fills,
                "orders": orders,
            }
            last[account] = height
            text = dumps(message)
            self._account_ring.add(height, account, text)
            if send:
                self._send("account", account, text)
        return touched

    def _publish_book(self, state: State, market_id: int, touched: bool) -> None:
        delta_bids: Levels = []
        delta_asks: Levels = []
        bids, asks = self._books[market_id]
        if touched:
            old_bids, old_asks = bids, asks
            bids, asks = self.book_view(state, market_id, BOOK_DEPTH)
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
        text = dumps(message)
        self._book_rings[market_id].add(self.height, None, text)
        self._send("book", market_id, text)

    def _send(self, kind: str, key: Any, text: str) -> None:
        for sub in list(self.subscribers.values()):
            if sub.kind == kind and sub.key == key:
                sub.push(text)


def _diff(old: Levels, new: Levels) -> Levels:
    """Changed levels from ``old`` to ``new`` (size ``"0"``: the level left the view)."""
    before = {price: size for price, size in old}
    after = {price: size for price, size in new}
    changes = [[price, size] for price, size in new if before.get(price) != size]
    changes.extend([price, "0"] for price in before if price not in after)
    return changes

"""WebSocket feeds (docs/api.md, "Subscriptions"): a resilient client and a verified local book.

:class:`FeedClient` keeps one WebSocket connection to a node's ``/ws`` and multiplexes any number
of subscriptions over it. Each :meth:`FeedClient.subscribe` returns a :class:`Subscription`, an
async iterator of the notification ``result`` objects, in order and without duplicates.

Every message's ``seq`` is the height of the block it comes from (the same on every node, and
across a node's restarts):

- ``book`` and ``trades`` send one message per block (an empty delta, an empty ``trades`` list
  when nothing happened), so ``seq`` grows by exactly 1 and any other step is a gap;
- ``account`` sends a message only for blocks with events of the account, with ``prev_seq``, the
  height of the account's previous message: it is a gap when ``prev_seq`` is not the last ``seq``
  delivered (after a reset: when it is above the reset's ``seq``). A ``null`` ``prev_seq`` after
  a known ``seq`` means the node restarted and cannot tell: the message is delivered and counted
  in :attr:`FeedClient.unverified`;
- ``blocks`` cannot be resumed: a gap is counted and the message delivered anyway.

How the client keeps a feed whole:

- when the connection drops it reconnects with exponential backoff (with jitter) and re-subscribes
  every live subscription with ``since_seq`` = the last ``seq`` delivered, so the node replays
  what was missed;
- on a gap it re-subscribes the same way and drops the message after the gap (the replay delivers
  it again, in order); a message at or below the last ``seq`` (a replayed duplicate) is dropped;
- when the node no longer keeps what was missed it answers a ``trades`` or ``account`` resume
  with ``{"type": "reset", "kind", "seq", "height"}``: the reset is delivered to the consumer (who
  must re-read what it needs by query: ``strata_getTrades``, ``strata_getAccount``, ...) and the
  feed carries on from its ``seq``; a ``book`` resume gets a fresh snapshot instead. Both are
  counted in :attr:`FeedClient.resets`. Should a node's replay itself have a hole, the client
  does not loop: it delivers a reset of its own (``seq`` just before the message after the hole),
  then that message, and counts it in :attr:`FeedClient.unrecovered_gaps`;
- a ``book`` subscription maintains an :class:`L2Book` from the snapshot and the deltas and
  verifies the node's CRC-32 checksum after each message; on a mismatch it discards the book and
  re-subscribes for a fresh snapshot. When a book message is yielded, ``subscription.book`` is
  exactly the book after that message.

:func:`book_checksum` is the one definition of the checksum; the node imports it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from strata.client.errors import RpcError
from strata.client.markets import parse_decimal

DEFAULT_BOOK_DEPTH: Final = 50
"""The node's default ``depth`` of a ``book`` subscription (docs/api.md)."""

MAX_RESYNCS: Final = 3
"""Consecutive checksum mismatches after which a book subscription gives up and raises."""

_ORPHANS_KEPT: Final = 64
"""Unknown subscription ids whose notifications are held until the subscribe reply maps them."""
_ORPHAN_MESSAGES_KEPT: Final = 1024

log = logging.getLogger(__name__)


# --- the book checksum and the local book -----------------------------------------------------


def book_checksum(bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> int:
    """The book checksum of docs/api.md: unsigned CRC-32 of ``"p:s,p:s,..."``.

    ``bids`` best (highest) first, then ``asks`` best (lowest) first, each level a
    ``(price, size)`` pair of decimal strings exactly as sent; the caller passes the top ``depth``
    levels of each side. An empty book has checksum ``0``.
    """
    text = ",".join(f"{price}:{size}" for price, size in itertools.chain(bids, asks))
    return zlib.crc32(text.encode("utf-8"))


class BookError(ValueError):
    """A book message that cannot be applied (malformed level, unknown ``type``)."""


class SequenceGap(BookError):
    """A delta whose ``seq`` is not the book's ``seq + 1`` (or a delta before any snapshot)."""

    def __init__(self, have: int | None, got: object) -> None:
        super().__init__(f"book delta seq {got!r} does not follow {have!r}")
        self.have = have
        self.got = got


class ChecksumMismatch(BookError):
    """The local book's checksum differs from the node's after a message."""

    def __init__(self, expected: object, actual: int) -> None:
        super().__init__(f"book checksum {actual} != node's {expected!r}")
        self.expected = expected
        self.actual = actual


Level = tuple[str, str]


class L2Book:
    """A price-level book (one market) built from ``book`` feed messages.

    Levels keep the price and size strings as the node sent them (the checksum is computed over
    those strings) and are ordered by their exact decimal value. :attr:`seq` and :attr:`height`
    are those of the last message applied (``None`` before the first snapshot).
    """

    def __init__(self, depth: int = DEFAULT_BOOK_DEPTH, market: str | int | None = None) -> None:
        """``depth``: how many levels per side the checksum covers (the subscription's depth)."""
        self.depth = depth
        self.market = market
        self.seq: int | None = None
        self.height: int | None = None
        self._bids: dict[Decimal, Level] = {}
        self._asks: dict[Decimal, Level] = {}

    def clear(self) -> None:
        """Forget every level and the ``seq`` (the next message must be a snapshot)."""
        self._bids.clear()
        self._asks.clear()
        self.seq = None
        self.height = None

    @property
    def bids(self) -> list[Level]:
        """Every bid level ``(price, size)``, best (highest price) first."""
        return [self._bids[p] for p in sorted(self._bids, reverse=True)]

    @property
    def asks(self) -> list[Level]:
        """Every ask level ``(price, size)``, best (lowest price) first."""
        return [self._asks[p] for p in sorted(self._asks)]

    def best_bid(self) -> Level | None:
        return self._bids[max(self._bids)] if self._bids else None

    def best_ask(self) -> Level | None:
        return self._asks[min(self._asks)] if self._asks else None

    def checksum(self) -> int:
        """:func:`book_checksum` of the top :attr:`depth` levels of each side."""
        return book_checksum(self.bids[: self.depth], self.asks[: self.depth])

    def apply_snapshot(
        self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]], seq: int | None = None
    ) -> None:
        """Replace the whole book. Raises :class:`BookError` for a malformed level (a level of
        size zero in a snapshot is simply absent)."""
        new_bids: dict[Decimal, Level] = {}
        new_asks: dict[Decimal, Level] = {}
        _set_levels(new_bids, bids)
        _set_levels(new_asks, asks)
        self._bids, self._asks, self.seq = new_bids, new_asks, seq

    def apply_delta(
        self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]], seq: int | None = None
    ) -> None:
        """Set each given level's size; size ``"0"`` (any zero decimal) removes the level.

        No ``seq`` check here (see :meth:`apply`); ``seq``, if given, becomes the book's.
        Raises :class:`BookError` for a malformed level; the book may then be half updated and
        must be rebuilt from a snapshot.
        """
        _set_levels(self._bids, bids)
        _set_levels(self._asks, asks)
        if seq is not None:
            self.seq = seq

    def apply(self, message: Mapping[str, Any]) -> bool:
        """Apply one ``book`` notification result (``"type"`` snapshot or delta) and verify it.

        Returns ``False`` (and changes nothing) for a delta at or below :attr:`seq`: a duplicate
        from a replay. Raises :class:`SequenceGap` for a delta that does not follow :attr:`seq`
        (or comes before any snapshot), :class:`ChecksumMismatch` if the message's ``checksum``
        differs from :meth:`checksum` after applying it, :class:`BookError` for anything
        malformed.
        """
        kind = message.get("type")
        seq = message.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise BookError(f"book seq must be an integer, got {seq!r}")
        bids, asks = message.get("bids", []), message.get("asks", [])
        if kind == "snapshot":
            self.apply_snapshot(bids, asks, seq)
        elif kind == "delta":
            if self.seq is None:
                raise SequenceGap(None, seq)
            if seq is not None:
                if seq <= self.seq:
                    return False
                if seq != self.seq + 1:
                    raise SequenceGap(self.seq, seq)
            self.apply_delta(bids, asks, seq)
        else:
            raise BookError(f"unknown book message type {kind!r}")
        height = message.get("height")
        if isinstance(height, int):
            self.height = height
        expected = message.get("checksum")
        if expected is not None:
            actual = self.checksum()
            if expected != actual:
                raise ChecksumMismatch(expected, actual)
        return True


def _set_levels(side: dict[Decimal, Level], levels: Iterable[Sequence[str]]) -> None:
    if not isinstance(levels, list | tuple):
        raise BookError(f"book levels must be a list, got {levels!r}")
    for level in levels:
        if not isinstance(level, list | tuple) or len(level) != 2:
            raise BookError(f"a book level must be [price, size], got {level!r}")
        price_text, size_text = level
        try:
            price = parse_decimal(price_text, "price")
            size = parse_decimal(size_text, "size")
        except RpcError as exc:
            raise BookError(exc.message) from None
        if price <= 0 or size < 0:
            raise BookError(f"bad book level {level!r}")
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = (price_text, size_text)


# --- sequence checks -----------------------------------------------------------------------------


class SeqCheck(Enum):
    NEXT = "next"
    """The first message, or the one that follows ``last``: deliver it."""
    DUPLICATE = "duplicate"
    """At or below ``last``: a replayed message already delivered; drop it."""
    GAP = "gap"
    """Messages were missed between ``last`` and this one."""
    UNKNOWN = "unknown"
    """``account`` only: ``prev_seq`` is ``null`` after a known ``last`` (the node restarted and
    cannot tell whether anything was missed): deliver it, but count it."""


def classify_seq(
    last: int | None,
    seq: int,
    *,
    kind: str = "trades",
    prev_seq: int | None = None,
    last_is_message: bool = True,
) -> SeqCheck:
    """Where a feed message with ``seq`` stands after the last ``seq`` delivered, ``last``.

    ``book``, ``trades`` and ``blocks`` send one message per block: the next is ``last + 1``.
    ``account`` sends one only for blocks with events of the account and says which came before
    (``prev_seq``): the next is the message whose ``prev_seq`` is ``last``. ``last_is_message``
    ``False`` says ``last`` is only a height the feed was brought to (a ``reset``, a ``since_seq``
    given by the caller), not a message of the account: then any ``prev_seq`` up to ``last`` is
    the next.
    """
    if last is None:
        return SeqCheck.NEXT
    if seq <= last:
        return SeqCheck.DUPLICATE
    if kind == "account":
        if prev_seq is None:
            return SeqCheck.UNKNOWN
        if prev_seq == last or (not last_is_message and prev_seq < last):
            return SeqCheck.NEXT
        return SeqCheck.GAP
    return SeqCheck.NEXT if seq == last + 1 else SeqCheck.GAP


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def to_ws_url(url: str) -> str:
    """The feed URL of a node: ``http(s)://host:port`` becomes ``ws(s)://host:port/ws``.

    A ``ws://`` or ``wss://`` URL is returned unchanged; an empty path becomes ``/ws``.
    """
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


# --- the client ----------------------------------------------------------------------------------

_END: Final = None


_Key = tuple[int, str]
"""Where a message came from: (connection number, the node's subscription id)."""


class Subscription:
    """One feed: an async iterator of notification results (see the module docstring).

    Attributes: :attr:`kind`, :attr:`options` (without ``since_seq``), :attr:`server_id` (the
    node's subscription id, ``None`` while (re)subscribing), :attr:`last_seq` (the last ``seq``
    delivered, or of the last ``reset``), :attr:`book` (an :class:`L2Book` for ``book`` feeds, else
    ``None``). Iteration raises the node's :class:`RpcError` if it refuses the subscription
    (``UNKNOWN_MARKET``, ``TOO_MANY_SUBSCRIPTIONS``, ...), a :class:`BookError` after
    :data:`MAX_RESYNCS` book resynchronizations in a row fail, and ends when the subscription or
    the client is closed.

    A ``trades`` or ``account`` feed may yield ``{"type": "reset", "kind", "seq", "height"}``:
    messages were missed that the node no longer keeps; re-read what you need by query and carry
    on (the feed continues after ``seq``). Their other messages have no ``"type"``.
    """

    def __init__(self, client: FeedClient, kind: str, options: dict[str, Any]) -> None:
        self._client = client
        self.kind = kind
        since = options.pop("since_seq", None) if kind != "blocks" else None
        self.options = options
        self.server_id: str | None = None
        self.last_seq: int | None = since if kind != "book" else None
        self.book: L2Book | None = None
        if kind == "book":
            self.book = L2Book(int(options.get("depth", DEFAULT_BOOK_DEPTH)), options.get("market"))
        self.closed = False
        self._queue: asyncio.Queue[tuple[_Key, Any] | BaseException | None] = asyncio.Queue()
        self._request_id: int | None = None
        # Messages of a node subscription replaced after a gap or a mismatch are dropped (the
        # replacement replays them); messages received before a disconnect are still good.
        self._stale: set[_Key] = set()
        # Node subscriptions made with since_seq: a book snapshot there means a reset.
        self._resumed: set[_Key] = set()
        self._last_key: _Key | None = None
        # account: whether last_seq is the seq of a message of the account (prev_seq must then be
        # exactly it) or only a height the feed was brought to (a reset, a since_seq given).
        self._last_is_message = False
        self._gap_pending = False
        self._mismatches = 0
        self._held: dict[str, Any] | None = None  # delivered next (after a reset made here)

    def resume_seq(self) -> int | None:
        """The ``since_seq`` to (re)subscribe with: the last seq held, ``None`` for a fresh feed
        (and always for ``blocks``, which cannot be resumed)."""
        if self.book is not None:
            return self.book.seq
        if self.kind == "blocks":
            return None
        return self.last_seq

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        while True:
            if self._queue.empty():
                if self.closed:
                    raise StopAsyncIteration
                # No message of an earlier connection can still arrive: forget their keys.
                generation = self._client._generation
                self._stale = {key for key in self._stale if key[0] >= generation}
                self._resumed = {key for key in self._resumed if key[0] >= generation}
            item = await self._queue.get()
            if item is _END:
                raise StopAsyncIteration
            if isinstance(item, BaseException):
                self.closed = True
                raise item
            key, result = item
            if key in self._stale or not isinstance(result, dict):
                continue
            # The first message of a new node subscription is where a replay starts.
            fresh = key != self._last_key
            if self.book is not None:
                delivered = result if await self._process_book(key, result, fresh) else None
            else:
                delivered = await self._process(key, result, fresh)
            if delivered is not None:
                self._last_key = key
                return delivered

    async def _process(
        self, key: _Key, result: dict[str, Any], fresh: bool
    ) -> dict[str, Any] | None:
        """What to deliver for ``result`` (``None``: nothing, it is dropped)."""
        client = self._client
        seq = _int_or_none(result.get("seq"))
        if self.kind == "blocks" and seq is None:
            seq = _int_or_none(result.get("height"))
        if result.get("type") == "reset":
            # The node no longer keeps what was missed: the consumer re-reads state by query.
            client.resets += 1
            if seq is not None:
                self.last_seq = seq
            self._last_is_message = False
            self._gap_pending = False
            return result
        if seq is None:
            return result  # nothing to check
        check = classify_seq(
            self.last_seq,
            seq,
            kind=self.kind,
            prev_seq=_int_or_none(result.get("prev_seq")),
            last_is_message=self._last_is_message,
        )
        if check is SeqCheck.DUPLICATE:
            return None
        delivered = result
        if check is SeqCheck.UNKNOWN:
            client.unverified += 1
        elif check is SeqCheck.GAP:
            if self.kind == "blocks":
                client.gaps += 1  # no replay for blocks: counted, delivered anyway
                client.unrecovered_gaps += 1
            elif not fresh:
                client.gaps += 1
                self._gap_pending = True
                await client._resubscribe(self, key)
                return None
            else:
                # The node's replay itself does not follow (it should have replayed or sent a
                # reset): rather than loop, accept the loss and tell the consumer as the node
                # would have, with a reset (just before this message) delivered first.
                if not self._gap_pending:
                    client.gaps += 1
                client.unrecovered_gaps += 1
                self._held = result
                delivered = {"type": "reset", "kind": self.kind, "seq": seq - 1, "height": seq - 1}
        self._gap_pending = False
        self.last_seq = seq
        self._last_is_message = True
        return delivered

    async def _process_book(self, key: _Key, result: dict[str, Any], fresh: bool) -> bool:
        client = self._client
        book = self.book
        assert book is not None
        kind = result.get("type")
        if kind == "reset":
            # Not sent for books (a resume gets a snapshot), but the meaning is the same.
            client.resets += 1
            book.clear()
            await client._resubscribe(self, key)
            return False
        try:
            applied = book.apply(result)
        except SequenceGap:
            client.gaps += 1
            if fresh or book.seq is None:
                book.clear()  # the replay itself did not follow: start over from a snapshot
            await client._resubscribe(self, key)
            return False
        except BookError as exc:
            client.checksum_mismatches += 1
            self._mismatches += 1
            book.clear()
            if self._mismatches > MAX_RESYNCS:
                self.closed = True
                await client._unsubscribe(self)
                raise exc
            await client._resubscribe(self, key)
            return False
        if applied:
            if kind == "snapshot" and key in self._resumed:
                client.resets += 1  # the node could not replay from our since_seq
            self._mismatches = 0
            self.last_seq = book.seq
        return applied

    async def close(self) -> None:
        """Unsubscribe; iteration ends after the messages already received."""
        if not self.closed:
            self.closed = True
            await self._client._unsubscribe(self)
            self._queue.put_nowait(_END)


class FeedClient:
    """A WebSocket feed client for one node (see the module docstring).

    ``ws_url`` is the node's ``ws://host:port/ws`` (an ``http://`` URL is converted by
    :func:`to_ws_url`). Counters for monitoring and tests:

    - :attr:`reconnects`: connections re-established after a loss;
    - :attr:`gaps`: missed messages detected (a ``seq`` step other than 1 on ``book``, ``trades``
      and ``blocks``; a ``prev_seq`` other than the last ``seq`` on ``account``);
    - :attr:`unrecovered_gaps`: gaps no replay made good (on ``blocks``, which cannot be resumed;
      a node's replay that itself has a hole, delivered after a reset made by the client);
    - :attr:`resets`: resumes the node could not replay (a ``reset`` delivered, a fresh book
      snapshot);
    - :attr:`unverified`: ``account`` messages with a ``null`` ``prev_seq`` after a known
      ``seq`` (the node restarted and cannot tell whether anything was missed);
    - :attr:`checksum_mismatches`: book messages that failed to apply or verify;
    - :attr:`resubscribes`: node subscriptions replaced after a gap or a mismatch.

    Use inside a running event loop, as ``async with FeedClient(url) as feeds:``.
    """

    def __init__(
        self,
        ws_url: str,
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        heartbeat: float | None = 20.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``backoff_*``: seconds before reconnecting, doubling after each failure up to the
        maximum (reset once a connection delivers a message). ``heartbeat``: seconds between
        WebSocket pings (``None``: none)."""
        self.url = to_ws_url(ws_url)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.heartbeat = heartbeat
        self.reconnects = 0
        self.gaps = 0
        self.unrecovered_gaps = 0
        self.checksum_mismatches = 0
        self.resubscribes = 0
        self.resets = 0
        self.unverified = 0
        self._session = session
        self._own_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._runner: asyncio.Task[None] | None = None
        self._subs: list[Subscription] = []
        self._by_server_id: dict[str, Subscription] = {}
        self._orphans: dict[str, list[Any]] = {}
        self._retired: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._closed = False
        self._generation = 0

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the connection is (re)established; ``TimeoutError`` after ``timeout`` s."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    def subscribe(self, kind: str, **options: Any) -> Subscription:
        """Subscribe to a feed: ``blocks``, ``trades`` (``market=``), ``book`` (``market=``,
        ``depth=``), ``account`` (``address=`` as 0x hex). ``since_seq=`` (``trades``,
        ``account``) starts after that height, as a resume would. Returns the iterator at once;
        the subscription is sent as soon as the connection is up. Must be called in a running
        loop.
        """
        if self._closed:
            raise RuntimeError("FeedClient is closed")
        sub = Subscription(self, kind, dict(options))
        self._subs.append(sub)
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())
        elif self.connected:
            self._spawn(self._send_subscribe(sub))
        return sub

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)  # a task only weakly referenced by the loop may vanish
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every subscription and the connection."""
        self._closed = True
        for sub in self._subs:
            sub.closed = True
            sub._queue.put_nowait(_END)
        self._subs.clear()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._ws is not None:
            await self._ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- connection --------------------------------------------------------------------------

    def _jitter(self, delay: float) -> float:
        # Up to +25%, so that many clients dropped at once do not reconnect in lockstep.
        return delay * (1 + secrets.randbelow(250) / 1000)

    async def _run(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        delay = self.backoff_initial
        established = 0
        while not self._closed:
            try:
                ws = await self._session.ws_connect(self.url, heartbeat=self.heartbeat)
            except (TimeoutError, aiohttp.ClientError, OSError):
                await asyncio.sleep(self._jitter(delay))
                delay = min(delay * 2, self.backoff_max)
                continue
            if established:
                self.reconnects += 1
            established += 1
            self._generation += 1
            self._ws = ws
            self._connected.set()
            try:
                for sub in list(self._subs):
                    await self._send_subscribe(sub)
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        delay = self.backoff_initial
                        self._dispatch(message.data)
                    elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            except Exception:
                # A bug or a malformed frame must not kill the feeds: log it and reconnect.
                log.exception("feed connection to %s failed", self.url)
            finally:
                self._lost()
                with contextlib.suppress(Exception):
                    await ws.close()
            if self._closed:
                break
            await asyncio.sleep(self._jitter(delay))
            delay = min(delay * 2, self.backoff_max)

    def _lost(self) -> None:
        self._ws = None
        self._connected.clear()
        self._pending.clear()
        self._by_server_id.clear()
        self._orphans.clear()
        self._retired.clear()
        for sub in self._subs:
            sub.server_id = None
            sub._request_id = None

    async def _send(self, method: str, params: list[Any]) -> int:
        """Send a request; returns its id. Raises if the connection is down."""
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionResetError("not connected")
        request_id = next(self._ids)
        text = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        async with self._send_lock:
            await ws.send_str(text)
        return request_id

    async def _send_subscribe(self, sub: Subscription) -> None:
        if sub.closed or self._closed:
            return
        ws = self._ws
        if ws is None or ws.closed:
            return  # the reconnect re-subscribes
        options = dict(sub.options)
        since = sub.resume_seq()
        if since is not None:
            options["since_seq"] = since
        request_id = next(self._ids)
        sub._request_id = request_id
        self._pending[request_id] = lambda reply: self._on_subscribed(sub, request_id, since, reply)
        message = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "strata_subscribe",
            "params": [sub.kind, options] if options else [sub.kind],
        }
        try:
            async with self._send_lock:
                await ws.send_str(json.dumps(message))
        except (aiohttp.ClientError, OSError):
            pass  # the connection is going down; the reconnect re-subscribes

    def _on_subscribed(
        self, sub: Subscription, request_id: int, since: int | None, reply: dict[str, Any]
    ) -> None:
        result = reply.get("result")
        if sub.closed or sub._request_id != request_id:
            if isinstance(result, str | int):  # superseded: drop the node's subscription
                self._retired.add(str(result))
                self._spawn(self._quiet_unsubscribe(str(result)))
            return
        sub._request_id = None
        error = reply.get("error")
        if isinstance(error, dict) or not isinstance(result, str | int):
            failure = RpcError.from_json(error if isinstance(error, dict) else {"message": reply})
            if sub in self._subs:
                self._subs.remove(sub)
            sub._queue.put_nowait(failure)
            return
        server_id = str(result)
        sub.server_id = server_id
        if since is not None:
            sub._resumed.add((self._generation, server_id))
        self._by_server_id[server_id] = sub
        for orphan in self._orphans.pop(server_id, []):
            sub._queue.put_nowait(((self._generation, server_id), orphan))

    def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("method") == "strata_subscription":
            params = message.get("params")
            if not isinstance(params, dict):
                return
            server_id = str(params.get("subscription"))
            sub = self._by_server_id.get(server_id)
            if sub is not None:
                sub._queue.put_nowait(((self._generation, server_id), params.get("result")))
            elif server_id not in self._retired:
                # A notification may overtake our bookkeeping of the subscribe reply.
                held = self._orphans.get(server_id)
                if held is None and len(self._orphans) < _ORPHANS_KEPT:
                    held = self._orphans[server_id] = []
                if held is not None and len(held) < _ORPHAN_MESSAGES_KEPT:
                    held.append(params.get("result"))
            return
        request_id = message.get("id")
        handler = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if handler is not None:
            handler(message)

    async def _resubscribe(self, sub: Subscription, broken: _Key) -> None:
        """Replace ``sub``'s node subscription, resuming after :meth:`Subscription.resume_seq`;
        the messages of ``broken`` (where the gap or mismatch was seen) and of the replaced
        subscription are dropped from now on."""
        self.resubscribes += 1
        sub._stale.add(broken)
        old = sub.server_id
        sub.server_id = None
        if old is not None:
            sub._stale.add((self._generation, old))
            self._by_server_id.pop(old, None)
            await self._quiet_unsubscribe(old)
        await self._send_subscribe(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        old, sub.server_id = sub.server_id, None
        sub._request_id = None
        if old is not None:
            self._by_server_id.pop(old, None)
            await self._quiet_unsubscribe(old)

    async def _quiet_unsubscribe(self, server_id: str) -> None:
        self._retired.add(server_id)
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await self._send("strata_unsubscribe", [server_id])


__all__ = [
    "DEFAULT_BOOK_DEPTH",
    "BookError",
    "ChecksumMismatch",
    "FeedClient",
    "L2Book",
    "SeqCheck",
    "SequenceGap",
    "Subscription",
    "book_checksum",
    "classify_seq",
    "to_ws_url",
]

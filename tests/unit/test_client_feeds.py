"""Feeds: the book checksum, the local L2 book, seq checks, and the WebSocket client's recovery
(gaps, checksum mismatches, reconnects) against a scripted in-process WebSocket server."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from strata.client.errors import RpcError
from strata.client.feeds import (
    BookError,
    ChecksumMismatch,
    FeedClient,
    L2Book,
    SeqCheck,
    SequenceGap,
    book_checksum,
    classify_seq,
    to_ws_url,
)

# --- checksum and book -------------------------------------------------------------------------


def test_checksum_matches_the_docs_example() -> None:
    bids = [["50010.5", "0.25"], ["50010", "1.5"]]
    asks = [["50011", "2"]]
    assert book_checksum(bids, asks) == zlib.crc32(b"50010.5:0.25,50010:1.5,50011:2")
    assert book_checksum([], []) == 0
    assert book_checksum([("1", "2")], []) == zlib.crc32(b"1:2")
    assert 0 <= book_checksum(bids, asks) < 2**32


def snapshot(seq: int, bids: list[list[str]], asks: list[list[str]]) -> dict[str, Any]:
    return {
        "type": "snapshot",
        "market": "BTC-PERP",
        "seq": seq,
        "height": seq,
        "checksum": book_checksum(bids, asks),
        "bids": bids,
        "asks": asks,
    }


def delta(
    seq: int, bids: list[list[str]], asks: list[list[str]], after: L2Book | None = None
) -> dict[str, Any]:
    """A delta whose checksum is that of ``after`` with the delta applied (as a node computes)."""
    message: dict[str, Any] = {"type": "delta", "seq": seq, "height": seq}
    message.update(bids=bids, asks=asks)
    if after is not None:
        model = L2Book(after.depth)
        model.apply_snapshot(after.bids, after.asks, after.seq)
        model.apply_delta(bids, asks)
        message["checksum"] = model.checksum()
    return message


BIDS = [["50010.5", "0.25"], ["50010", "1.5"]]
ASKS = [["50011", "2"], ["50012.5", "0.1"]]


def test_snapshot_then_deltas() -> None:
    book = L2Book(depth=10)
    assert book.apply(snapshot(5, BIDS, ASKS))
    assert book.bids == [("50010.5", "0.25"), ("50010", "1.5")]
    assert book.asks == [("50011", "2"), ("50012.5", "0.1")]
    assert book.seq == 5 and book.height == 5
    # A new best bid, a changed ask, a removed bid (size "0").
    message = delta(6, [["50010.7", "1"], ["50010", "0"]], [["50011", "3.5"]], book)
    assert book.apply(message)
    assert book.bids == [("50010.7", "1"), ("50010.5", "0.25")]
    assert book.asks == [("50011", "3.5"), ("50012.5", "0.1")]
    assert book.checksum() == book_checksum(book.bids, book.asks) == message["checksum"]
    assert book.best_bid() == ("50010.7", "1") and book.best_ask() == ("50011", "3.5")
    # Removing every level leaves an empty book with checksum 0.
    message = delta(7, [["50010.7", "0"], ["50010.5", "0.0"]], [["50011", "0"], ["50012.5", "0"]])
    message["checksum"] = 0
    assert book.apply(message)
    assert book.bids == [] and book.asks == [] and book.checksum() == 0


def test_removing_an_absent_level_is_harmless() -> None:
    book = L2Book()
    book.apply_snapshot(BIDS, ASKS, 1)
    book.apply_delta([["1", "0"]], [], 2)
    assert book.bids == [("50010.5", "0.25"), ("50010", "1.5")]


def test_levels_keep_the_strings_as_sent() -> None:
    book = L2Book()
    book.apply_snapshot([["50010.50", "0.250"]], [], 1)
    # The same price written differently is the same level; the latest spelling is kept.
    book.apply_delta([["50010.5", "1"]], [], 2)
    assert book.bids == [("50010.5", "1")]
    assert book.checksum() == zlib.crc32(b"50010.5:1")


def test_checksum_covers_only_the_top_depth_levels() -> None:
    book = L2Book(depth=1)
    book.apply_snapshot(BIDS, ASKS, 1)
    assert book.checksum() == zlib.crc32(b"50010.5:0.25,50011:2")


def test_duplicates_gaps_and_mismatches() -> None:
    book = L2Book()
    with pytest.raises(SequenceGap):
        book.apply(delta(1, [], []))  # a delta before any snapshot
    book.apply(snapshot(5, BIDS, ASKS))
    before = (book.bids, book.asks, book.checksum())
    assert book.apply(delta(5, [["1", "1"]], [])) is False  # replayed duplicate: ignored
    assert book.apply(delta(4, [["1", "1"]], [])) is False
    assert (book.bids, book.asks, book.checksum()) == before
    with pytest.raises(SequenceGap) as gap:
        book.apply(delta(7, [], []))
    assert gap.value.have == 5 and gap.value.got == 7
    bad = delta(6, [["50010.6", "1"]], [], book)
    bad["checksum"] ^= 1
    with pytest.raises(ChecksumMismatch):
        book.apply(bad)


@pytest.mark.parametrize(
    "message",
    [
        {"type": "snapshot", "seq": 1, "bids": [["1"]], "asks": []},
        {"type": "snapshot", "seq": 1, "bids": [[1, "1"]], "asks": []},
        {"type": "snapshot", "seq": 1, "bids": [["1", "-1"]], "asks": []},
        {"type": "snapshot", "seq": 1, "bids": [["0", "1"]], "asks": []},
        {"type": "snapshot", "seq": 1, "bids": "nope", "asks": []},
        {"type": "snapshot", "seq": 1.0, "bids": [], "asks": []},
        {"type": "trade", "seq": 1},
    ],
)
def test_malformed_book_messages(message: dict[str, Any]) -> None:
    with pytest.raises(BookError):
        L2Book().apply(message)


def test_classify_seq() -> None:
    # book, trades, blocks: one message per block, seq = height.
    assert classify_seq(None, 17) is SeqCheck.NEXT
    assert classify_seq(3, 4) is SeqCheck.NEXT
    assert classify_seq(3, 3) is SeqCheck.DUPLICATE
    assert classify_seq(3, 1) is SeqCheck.DUPLICATE
    assert classify_seq(3, 5) is SeqCheck.GAP
    assert classify_seq(3, 5, kind="book") is SeqCheck.GAP
    # account: messages only for blocks with events of the account, chained by prev_seq.
    assert classify_seq(None, 40, kind="account", prev_seq=12) is SeqCheck.NEXT
    assert classify_seq(12, 40, kind="account", prev_seq=12) is SeqCheck.NEXT
    assert classify_seq(12, 40, kind="account", prev_seq=30) is SeqCheck.GAP
    assert classify_seq(12, 40, kind="account", prev_seq=7) is SeqCheck.GAP
    assert classify_seq(12, 12, kind="account", prev_seq=7) is SeqCheck.DUPLICATE
    assert classify_seq(12, 9, kind="account", prev_seq=None) is SeqCheck.DUPLICATE
    assert classify_seq(12, 40, kind="account", prev_seq=None) is SeqCheck.UNKNOWN
    # After a reset (last is a height, not a message of the account): anything up to it follows.
    assert classify_seq(20, 40, kind="account", prev_seq=7, last_is_message=False) is SeqCheck.NEXT
    assert classify_seq(20, 40, kind="account", prev_seq=20, last_is_message=False) is (
        SeqCheck.NEXT
    )
    assert classify_seq(20, 40, kind="account", prev_seq=30, last_is_message=False) is (
        SeqCheck.GAP
    )


def test_ws_url() -> None:
    assert to_ws_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545/ws"
    assert to_ws_url("https://node.example/") == "wss://node.example/ws"
    assert to_ws_url("ws://h:1/ws") == "ws://h:1/ws"


# --- the client against a scripted WebSocket server --------------------------------------------

Script = Callable[["FakeFeedServer", "Conn", str, dict[str, Any]], Awaitable[None]]


class Conn:
    """One server-side WebSocket connection."""

    def __init__(self, ws: web.WebSocketResponse, index: int) -> None:
        self.ws = ws
        self.index = index
        self.next_id = 0

    async def push(self, sub_id: str, result: dict[str, Any]) -> None:
        params = {"subscription": sub_id, "result": result}
        await self.ws.send_json(
            {"jsonrpc": "2.0", "method": "strata_subscription", "params": params}
        )


class FakeFeedServer:
    """Answers ``strata_subscribe`` with fresh ids and lets a script push notifications."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.subscribes: list[tuple[int, str, dict[str, Any]]] = []
        self.unsubscribes: list[str] = []
        self.ids = 0
        app = web.Application()
        app.router.add_get("/ws", self.handle)
        self.server = TestServer(app)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, self.connections)
        self.connections += 1
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            req = json.loads(message.data)
            if req["method"] == "strata_unsubscribe":
                self.unsubscribes.append(req["params"][0])
                await ws.send_json({"jsonrpc": "2.0", "id": req["id"], "result": True})
                continue
            kind = req["params"][0]
            options = req["params"][1] if len(req["params"]) > 1 else {}
            self.subscribes.append((conn.index, kind, options))
            if options.get("market") == "NOPE":
                error = {"code": 4007, "message": "no market", "data": {"name": "UNKNOWN_MARKET"}}
                await ws.send_json({"jsonrpc": "2.0", "id": req["id"], "error": error})
                continue
            self.ids += 1
            sub_id = str(self.ids)
            await ws.send_json({"jsonrpc": "2.0", "id": req["id"], "result": sub_id})
            await self.script(self, conn, sub_id, options)
        return ws


async def run_with(script: Script, body: Callable[[FakeFeedServer, str], Awaitable[None]]) -> None:
    server = FakeFeedServer(script)
    await server.server.start_server()
    try:
        await asyncio.wait_for(body(server, str(server.server.make_url("/ws"))), 10)
    finally:
        await server.server.close()


ADDRESS = "0x" + "ab" * 20


def trades(seq: int, fills: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A trades message: one per block, ``trades`` usually empty."""
    return {"market": "BTC-PERP", "seq": seq, "height": seq, "trades": fills or []}


def reset(kind: str, height: int) -> dict[str, Any]:
    return {"type": "reset", "kind": kind, "seq": height, "height": height}


def test_trades_gap_replay_and_reconnect() -> None:
    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        since = options.get("since_seq")
        if conn.index == 0 and since is None:
            for seq in (1, 2, 4):  # 3 is lost
                await conn.push(sub_id, trades(seq))
        elif conn.index == 0 and since == 2:
            for seq in (3, 4, 5):  # the replay, then live
                await conn.push(sub_id, trades(seq))
            await conn.ws.close()  # the connection drops
        elif conn.index == 1:
            assert since == 5
            await conn.push(sub_id, trades(6))

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            sub = feeds.subscribe("trades", market="BTC-PERP")
            seen = []
            async for message in sub:
                seen.append(message["seq"])
                if message["seq"] == 6:
                    break
            assert seen == [1, 2, 3, 4, 5, 6]
            assert feeds.gaps == 1 and feeds.reconnects == 1 and feeds.unrecovered_gaps == 0
            assert [s[2].get("since_seq") for s in server.subscribes] == [None, 2, 5]
            assert server.unsubscribes == ["1"]

    asyncio.run(run_with(script, body))


def test_a_restarted_node_is_resumed_by_height() -> None:
    """The node goes down at height 3 and comes back at the same height: seq is the height, so
    every feed resumes with since_seq = its last seq. Trades are replayed; the book, whose
    messages a restarted node no longer keeps, gets a fresh snapshot (a reset)."""

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        kind, since = server.subscribes[-1][1], options.get("since_seq")
        if kind == "blocks":
            assert since is None  # blocks cannot be resumed: never asked to
            if conn.index == 0:
                await conn.push(sub_id, {"seq": 3, "height": 3, "hash": "0x03"})
                await conn.ws.close()  # the node goes down
            else:
                await conn.push(sub_id, {"seq": 4, "height": 4, "hash": "0x04"})
        elif conn.index == 0 and kind == "trades":
            for seq in (1, 2):
                await conn.push(sub_id, trades(seq, [{"price": "1", "size": "1"}]))
        elif conn.index == 0:
            await conn.push(sub_id, snapshot(1, BIDS, ASKS))
            await conn.push(sub_id, {**delta(2, [], []), "checksum": book_checksum(BIDS, ASKS)})
        elif kind == "trades":
            assert since == 2
            for seq in (3, 4):  # replayed (rebuilt from the blocks' receipts), then live
                await conn.push(sub_id, trades(seq))
        else:
            assert since == 2
            await conn.push(sub_id, snapshot(3, BIDS[:1], ASKS))
            await conn.push(sub_id, {**delta(4, [], []), "checksum": book_checksum(BIDS[:1], ASKS)})

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            trade_sub = feeds.subscribe("trades", market="BTC-PERP")
            book_sub = feeds.subscribe("book", market="BTC-PERP")
            seen_trades = [(await trade_sub.__anext__())["seq"] for _ in range(2)]
            seen_book = [(await book_sub.__anext__())["seq"] for _ in range(2)]
            blocks = feeds.subscribe("blocks")  # the server drops the connection after one
            seen_blocks = [(await blocks.__anext__())["seq"] for _ in range(2)]
            seen_trades += [(await trade_sub.__anext__())["seq"] for _ in range(2)]
            book_types = []
            for _ in range(2):
                message = await book_sub.__anext__()
                seen_book.append(message["seq"])
                book_types.append(message["type"])
            assert seen_trades == [1, 2, 3, 4]
            assert seen_book == [1, 2, 3, 4] and book_types == ["snapshot", "delta"]
            assert seen_blocks == [3, 4]
            assert book_sub.book is not None and book_sub.book.bids == [("50010.5", "0.25")]
            assert feeds.resets == 1 and feeds.reconnects == 1 and feeds.gaps == 0
            assert feeds.checksum_mismatches == 0
            since = [(s[1], s[2].get("since_seq")) for s in server.subscribes if s[0] == 1]
            assert sorted(since, key=str) == sorted(
                [("trades", 2), ("book", 2), ("blocks", None)], key=str
            )

    asyncio.run(run_with(script, body))


def test_trades_reset_is_delivered_and_followed() -> None:
    """The node no longer keeps what was missed: the reset reaches the consumer, and the feed
    carries on after its seq (even one below what was held: since_seq above the node's height)."""

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        since = options.get("since_seq")
        if since is None:
            await conn.push(sub_id, trades(5))
            await conn.push(sub_id, trades(9))  # 6..8 lost
        elif since == 5:
            await conn.push(sub_id, reset("trades", 20))
            await conn.push(sub_id, trades(21))
            await conn.ws.close()
        else:
            assert since == 21
            await conn.push(sub_id, reset("trades", 15))  # a node behind us: since_seq > height
            await conn.push(sub_id, trades(16))

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            sub = feeds.subscribe("trades", market="BTC-PERP")
            seen = []
            async for message in sub:
                seen.append((message.get("type", "trades"), message["seq"]))
                if len(seen) == 5:
                    break
            assert seen == [
                ("trades", 5),
                ("reset", 20),
                ("trades", 21),
                ("reset", 15),
                ("trades", 16),
            ]
            assert feeds.gaps == 1 and feeds.resets == 2 and feeds.unrecovered_gaps == 0
            assert sub.last_seq == 16
            assert [s[2].get("since_seq") for s in server.subscribes] == [None, 5, 21]

    asyncio.run(run_with(script, body))


def account(seq: int, prev_seq: int | None) -> dict[str, Any]:
    return {
        "address": ADDRESS,
        "seq": seq,
        "prev_seq": prev_seq,
        "height": seq,
        "fills": [],
        "orders": [{"order_id": seq}],
    }


def test_account_gaps_follow_prev_seq() -> None:
    """Account messages come only for blocks with events of the account: seq jumps are normal,
    a prev_seq other than the last seq is a gap, a null prev_seq (the node restarted) is counted
    and accepted."""

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        since = options.get("since_seq")
        assert options["address"] == ADDRESS
        if since is None:
            await conn.push(sub_id, account(3, None))
            await conn.push(sub_id, account(7, 3))
            await conn.push(sub_id, account(12, 9))  # 9 was lost
        elif since == 7:
            for message in (account(9, 7), account(12, 9), account(13, 12)):
                await conn.push(sub_id, message)
            await conn.ws.close()  # the node goes down
        elif since == 13:
            # Restarted, it has not seen this account yet: it cannot say what came before.
            await conn.push(sub_id, account(40, None))
            await conn.push(sub_id, account(41, 40))

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            seen = []
            async for message in feeds.subscribe("account", address=ADDRESS):
                seen.append(message["seq"])
                if len(seen) == 7:
                    break
            assert seen == [3, 7, 9, 12, 13, 40, 41]
            assert feeds.gaps == 1 and feeds.unverified == 1 and feeds.reconnects == 1
            assert feeds.resets == 0 and feeds.unrecovered_gaps == 0
            assert [s[2].get("since_seq") for s in server.subscribes] == [None, 7, 13]

    asyncio.run(run_with(script, body))


def test_account_reset_then_live() -> None:
    """After a reset at height 50 the next message's prev_seq is the account's real previous
    message (30, before the reset): not a gap. A prev_seq above the reset's seq is one."""

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        since = options.get("since_seq")
        if since == 10:
            await conn.push(sub_id, reset("account", 50))
            await conn.push(sub_id, account(55, 30))
            await conn.push(sub_id, account(60, 58))  # 58 was lost
        else:
            assert since == 55
            await conn.push(sub_id, account(58, 55))
            await conn.push(sub_id, account(60, 58))

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            seen = []
            sub = feeds.subscribe("account", address=ADDRESS, since_seq=10)
            async for message in sub:
                seen.append((message.get("type", "account"), message["seq"]))
                if len(seen) == 4:
                    break
            assert seen == [("reset", 50), ("account", 55), ("account", 58), ("account", 60)]
            assert feeds.resets == 1 and feeds.gaps == 1 and feeds.unverified == 0
            assert [s[2].get("since_seq") for s in server.subscribes] == [10, 55]

    asyncio.run(run_with(script, body))


def test_blocks_gaps_are_counted_and_duplicates_dropped() -> None:
    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        assert options == {}
        for height in (1, 2, 2, 5, 6):
            await conn.push(sub_id, {"seq": height, "height": height, "hash": "0x00"})

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            sub = feeds.subscribe("blocks")
            seen = [(await sub.__anext__())["seq"] for _ in range(4)]
            assert seen == [1, 2, 5, 6]
            assert feeds.gaps == 1 and feeds.unrecovered_gaps == 1 and feeds.resubscribes == 0

    asyncio.run(run_with(script, body))


def test_unrecoverable_gap_is_accepted_not_looped() -> None:
    """A node whose resume neither replays nor resets (not as docs/api.md says, e.g. a replay
    with a hole): the client accepts the loss rather than loop, and tells the consumer with a
    reset of its own, just before the message after the hole."""

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        kind, since = server.subscribes[-1][1], options.get("since_seq")
        if kind == "trades" and since is None:
            await conn.push(sub_id, trades(1))
            await conn.push(sub_id, trades(9))
        elif kind == "trades":
            await conn.push(sub_id, trades(9))
            await conn.push(sub_id, trades(10))
        elif since is None:
            await conn.push(sub_id, account(3, None))
            await conn.push(sub_id, account(7, 5))
        else:
            assert since == 3
            await conn.push(sub_id, account(7, 5))

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            seen = []
            async for message in feeds.subscribe("trades", market="BTC-PERP"):
                seen.append((message.get("type", "trades"), message["seq"]))
                if len(seen) == 4:
                    break
            assert seen == [("trades", 1), ("reset", 8), ("trades", 9), ("trades", 10)]
            assert feeds.gaps == 1 and feeds.unrecovered_gaps == 1 and feeds.resets == 0
            sub = feeds.subscribe("account", address=ADDRESS)
            seen = []
            for _ in range(3):
                message = await sub.__anext__()
                seen.append((message.get("type", "account"), message["seq"]))
            assert seen == [("account", 3), ("reset", 6), ("account", 7)]
            assert feeds.gaps == 2 and feeds.unrecovered_gaps == 2

    asyncio.run(run_with(script, body))


def test_book_mismatch_and_gap_recovery() -> None:
    model = L2Book(depth=50)  # the node's view

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        since = options.get("since_seq")
        n = len(server.subscribes)
        if n == 1:
            first = snapshot(10, BIDS, ASKS)
            model.apply(first)
            await conn.push(sub_id, first)
            d11 = delta(11, [["50010.6", "1"]], [], model)
            model.apply(d11)
            await conn.push(sub_id, d11)
            d12 = delta(12, [["50010.6", "2"]], [], model)
            model.apply(d12)
            await conn.push(sub_id, {**d12, "checksum": d12["checksum"] ^ 0xFF})  # corrupted
        elif n == 2:
            assert since is None  # a mismatch asks for a fresh snapshot
            await conn.push(
                sub_id, snapshot(12, [list(b) for b in model.bids], [list(a) for a in model.asks])
            )
            d13 = delta(13, [], [["50011", "0"]], model)
            model.apply(d13)
            d14 = delta(14, [], [["50013", "4"]], model)
            model.apply(d14)
            await conn.push(sub_id, d14)  # 13 is lost
            server.held = [d13, d14]  # type: ignore[attr-defined]
        else:
            assert since == 12
            for message in server.held:  # type: ignore[attr-defined]
                await conn.push(sub_id, message)

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            sub = feeds.subscribe("book", market="BTC-PERP")
            seen = []
            async for message in sub:
                seen.append((message["type"], message["seq"]))
                assert sub.book is not None and sub.book.checksum() == message["checksum"]
                if message["seq"] == 14:
                    break
            assert seen == [
                ("snapshot", 10),
                ("delta", 11),
                ("snapshot", 12),
                ("delta", 13),
                ("delta", 14),
            ]
            assert feeds.checksum_mismatches == 1 and feeds.gaps == 1
            assert sub.book is not None
            assert sub.book.bids == model.bids and sub.book.asks == model.asks

    asyncio.run(run_with(script, body))


def test_book_resumes_by_replay_after_disconnect() -> None:
    """A resume the node can replay: the missed deltas, no snapshot, no reset; an empty delta
    (a block that changed nothing) is delivered and keeps the numbering."""
    model = L2Book()

    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        if conn.index == 0:
            first = snapshot(7, BIDS, ASKS)
            model.apply(first)
            await conn.push(sub_id, first)
            await conn.ws.close()
        else:
            assert options.get("since_seq") == 7
            d8 = delta(8, [], [], model)  # nothing changed in block 8
            model.apply(d8)
            d9 = delta(9, [["50010", "0"]], [], model)
            model.apply(d9)
            await conn.push(sub_id, d8)
            await conn.push(sub_id, d9)

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url, backoff_initial=0.01) as feeds:
            sub = feeds.subscribe("book", market="BTC-PERP")
            seen = [(m["type"], m["seq"]) for m in [await sub.__anext__() for _ in range(3)]]
            assert seen == [("snapshot", 7), ("delta", 8), ("delta", 9)]
            assert sub.book is not None and sub.book.bids == model.bids
            assert feeds.resets == 0 and feeds.gaps == 0 and feeds.reconnects == 1

    asyncio.run(run_with(script, body))


def test_refused_subscription_raises() -> None:
    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        return None

    async def body(server: FakeFeedServer, url: str) -> None:
        async with FeedClient(url) as feeds:
            with pytest.raises(RpcError) as exc:
                async for _ in feeds.subscribe("trades", market="NOPE"):
                    pass
            assert exc.value.name == "UNKNOWN_MARKET"

    asyncio.run(run_with(script, body))


def test_close_ends_iteration() -> None:
    async def script(
        server: FakeFeedServer, conn: Conn, sub_id: str, options: dict[str, Any]
    ) -> None:
        await conn.push(sub_id, {"height": 1, "hash": "0x00"})

    async def body(server: FakeFeedServer, url: str) -> None:
        feeds = FeedClient(url)
        sub = feeds.subscribe("blocks")
        assert (await sub.__anext__())["height"] == 1
        await sub.close()
        with pytest.raises(StopAsyncIteration):
            await sub.__anext__()
        await feeds.close()

    asyncio.run(run_with(script, body))

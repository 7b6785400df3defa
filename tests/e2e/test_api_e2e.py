"""End-to-end tests of the node API (docs/api.md) against a real ``strata devnet`` process.

Every test talks to the node over its public interfaces only: JSON-RPC over HTTP (httpx) and
WebSocket (aiohttp), ``/health``, ``/metrics`` and ``/openrpc.json``. Transactions are signed here
with the devnet's funded wallets (seeds ``devnet-0`` .. ``devnet-9``), exactly as the chain
verifies them; the book checksum is recomputed here from its definition in docs/api.md.

Most tests share one node (module fixture, 100 ms blocks; once serial, once with the commitment
process) and each uses its own accounts, so they do not interfere: devnet-0/1 the trade,
devnet-2/3 the book feed, devnet-4 resubmission, devnet-5/6 the bad inputs. Tests that stop
and restart a node, or that need more blocks than the node keeps feed messages for (10 ms
blocks), start their own.

Feed ``seq`` is the block height (docs/api.md): the book feed sends one delta per block, so a
book read from the feed is compared with ``strata_getBook`` at the same ``seq``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from strata.client.signing import Wallet, wallet_from_seed
from strata.client.wire import transaction_to_json
from strata.core.signatures import compute_transaction_digest
from strata.node import feeds
from strata.node.config import DEVNET_CHAIN_ID, devnet_genesis
from strata.stf.transactions import (
    Action,
    CancelOrder,
    PlaceOrder,
    SignedTransaction,
    compute_transaction_hash,
    encode_action,
    encode_transaction,
)
from tests.helpers.node_process import NodeProcess

BRIDGE = bytes(20)
MARKETS = devnet_genesis(0).market_infos()
BTC, ETH = 1, 2
DOCS_API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
TIMEOUT = 10.0
"""Seconds any single wait may take before the test fails (blocks come every 100 ms)."""

# ---------------------------------------------------------------------------------- signing

_last_nonce = 0


def next_nonce() -> int:
    """A fresh nonce: the current time in ms, strictly increasing across the whole module."""
    global _last_nonce
    _last_nonce = max(time.time_ns() // 1_000_000, _last_nonce + 1)
    return _last_nonce


def wallet(i: int) -> Wallet:
    return wallet_from_seed(f"devnet-{i}")


def addr(w: Wallet) -> str:
    return "0x" + w.address.hex()


def sign(w: Wallet, action: Action, nonce: int | None = None) -> SignedTransaction:
    """``action`` signed by ``w`` as the chain verifies it (tests/helpers/chain.py's ``sign``)."""
    n = next_nonce() if nonce is None else nonce
    digest = compute_transaction_digest(
        DEVNET_CHAIN_ID, BRIDGE, w.address, n, encode_action(action)
    )
    return SignedTransaction(w.address, n, action, None, w.sign_digest(digest))


def raw(tx: SignedTransaction) -> str:
    return "0x" + encode_transaction(tx).hex()


def tx_hash(tx: SignedTransaction) -> str:
    return "0x" + compute_transaction_hash(encode_transaction(tx)).hex()


def place(
    market: int,
    is_buy: bool,
    price_ticks: int,
    size_lots: int,
    client_id: int | None = None,
) -> PlaceOrder:
    """A GTC limit order (prices in ticks, sizes in lots)."""
    return PlaceOrder(market, is_buy, price_ticks, size_lots, 0, False, client_id)


# ---------------------------------------------------------------------------------- HTTP


class Api:
    """JSON-RPC over HTTP, straight to the node (no SDK)."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.http = httpx.Client(base_url=node.url, timeout=TIMEOUT)
        self._ids = 0

    def close(self) -> None:
        self.http.close()

    def post(self, body: bytes, content_type: str = "application/json") -> httpx.Response:
        return self.http.post("/", content=body, headers={"Content-Type": content_type})

    def request(self, method: str, *params: Any) -> dict[str, Any]:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        response = self.http.post("/", json=body)
        assert response.status_code == 200, (method, response.status_code, response.text)
        reply: dict[str, Any] = response.json()
        assert reply["id"] == self._ids
        return reply

    def call(self, method: str, *params: Any) -> Any:
        reply = self.request(method, *params)
        assert "error" not in reply, (method, params, reply)
        return reply["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        reply = self.request(method, *params)
        assert "error" in reply, (method, params, reply)
        error: dict[str, Any] = reply["error"]
        return error

    def height(self) -> int:
        height = self.call("strata_blockNumber")
        assert isinstance(height, int)
        return height

    def send_raw(self, tx: SignedTransaction) -> str:
        result = self.call("strata_sendRawTransaction", raw(tx))
        assert result == {"hash": tx_hash(tx)}
        return tx_hash(tx)

    def wait_included(self, hash_: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Poll ``strata_getTransaction`` until ``included`` (fail on rejected or timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            result: dict[str, Any] = self.call("strata_getTransaction", hash_)
            if result["status"] == "included":
                return result
            assert result["status"] == "pending", result
            assert time.monotonic() < deadline, f"{hash_} not included in {timeout} s: {result}"
            time.sleep(0.02)

    def wait_height(self, above: int, timeout: float = TIMEOUT) -> int:
        """Poll ``strata_blockNumber`` until it is above ``above``; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            height = self.height()
            if height > above:
                return height
            assert time.monotonic() < deadline, f"height stuck at {height} (wanted > {above})"
            time.sleep(0.02)

    def book(self, market: str, depth: int = 50) -> dict[str, Any]:
        book: dict[str, Any] = self.call("strata_getBook", market, depth)
        return book


@contextmanager
def running(data_dir: Path, block_time_ms: int = 100) -> Iterator[tuple[NodeProcess, Api]]:
    """A node process on ``data_dir`` and an API client; stopped (SIGTERM) on exit."""
    with NodeProcess(data_dir, block_time_ms=block_time_ms) as node:
        api = Api(node)
        try:
            yield node, api
        finally:
            api.close()


@pytest.fixture(scope="module", params=["serial", "commit-process"])
def node(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[NodeProcess]:
    """One devnet node for the tests that do not interfere (each uses its own accounts); every
    such test runs against a node that commits serially and one whose state roots come from its
    commitment process (``--commit-process``: blocks sealed one block late, reads of the state
    showing the block being sealed)."""
    extra = ["--commit-process"] if request.param == "commit-process" else []
    process = NodeProcess(
        tmp_path_factory.mktemp("e2e") / "node", block_time_ms=100, extra=extra
    ).start()
    try:
        yield process
    finally:
        code = process.terminate(30)
        process.__exit__(None, None, None)
        assert code == 0, f"the node exited with {code} on SIGTERM: see {process.log_path}"


@pytest.fixture
def api(node: NodeProcess) -> Iterator[Api]:
    client = Api(node)
    yield client
    client.close()


# ---------------------------------------------------------------------------------- WebSocket


class WsRpc:
    """JSON-RPC over one WebSocket: requests by id, notifications buffered per subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = 0
        self.notes: defaultdict[str, deque[dict[str, Any]]] = defaultdict(deque)
        self.replies: dict[int, dict[str, Any]] = {}

    async def _receive(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no WebSocket message in time")
        message = await self.ws.receive(timeout=remaining)
        assert message.type == aiohttp.WSMsgType.TEXT, (message.type, message.data)
        payload = json.loads(message.data)
        if payload.get("method") == "strata_subscription":
            params = payload["params"]
            self.notes[params["subscription"]].append(params["result"])
        else:
            self.replies[payload["id"]] = payload

    async def send(self, method: str, *params: Any) -> int:
        """Send a request without waiting for its reply (see :meth:`reply`); returns its id."""
        self._ids += 1
        text = json.dumps(
            {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": list(params)}
        )
        await self.ws.send_str(text)
        return self._ids

    async def reply(self, request_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while request_id not in self.replies:
            await self._receive(deadline)
        return self.replies.pop(request_id)

    async def request(self, method: str, *params: Any) -> dict[str, Any]:
        return await self.reply(await self.send(method, *params))

    async def subscribe(self, kind: str, options: dict[str, Any] | None = None) -> str:
        reply = await self.request(
            "strata_subscribe", kind, *([] if options is None else [options])
        )
        assert "result" in reply, reply
        sub_id = reply["result"]
        assert isinstance(sub_id, str)
        return sub_id

    async def next(self, sub_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next notification of ``sub_id``."""
        deadline = time.monotonic() + timeout
        while not self.notes[sub_id]:
            await self._receive(deadline)
        return self.notes[sub_id].popleft()


async def with_ws(url: str, body: Callable[[WsRpc], Awaitable[None]]) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await body(WsRpc(ws))


# ---------------------------------------------------------------------------------- the book


def checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """docs/api.md: unsigned CRC-32 of ``price:size`` levels, bids best first then asks."""
    text = ",".join(f"{price}:{size}" for price, size in [*bids, *asks])
    return zlib.crc32(text.encode("utf-8"))


class LocalBook:
    """An L2 book rebuilt from ``book`` feed messages, checked at every message."""

    def __init__(self, depth: int = 50) -> None:
        self.depth = depth
        self.seq: int | None = None
        self.seqs: list[int] = []
        self._sides: dict[str, dict[Decimal, list[str]]] = {"bids": {}, "asks": {}}

    def side(self, name: str) -> list[list[str]]:
        """The top ``depth`` levels of ``bids`` or ``asks``, best first, as the node sent them."""
        levels = self._sides[name]
        return [levels[p] for p in sorted(levels, reverse=name == "bids")][: self.depth]

    def apply(self, message: dict[str, Any]) -> None:
        """Apply a snapshot or the next delta; assert its seq follows and its checksum holds."""
        if message["type"] == "snapshot":
            self._sides = {"bids": {}, "asks": {}}
        else:
            assert message["type"] == "delta", message
            assert self.seq is not None, "a delta before any snapshot"
            assert message["seq"] == self.seq + 1, f"gap: seq {message['seq']} after {self.seq}"
        for name in ("bids", "asks"):
            levels = self._sides[name]
            for price, size in message[name]:
                if Decimal(size) == 0:
                    levels.pop(Decimal(price), None)
                else:
                    levels[Decimal(price)] = [price, size]
        self.seq = message["seq"]
        self.seqs.append(message["seq"])
        assert checksum(self.side("bids"), self.side("asks")) == message["checksum"], message

    def matches(self, book: dict[str, Any]) -> None:
        """Assert this book is ``strata_getBook``'s (levels, seq and checksum)."""
        assert self.side("bids") == book["bids"]
        assert self.side("asks") == book["asks"]
        assert self.seq == book["seq"]
        assert checksum(book["bids"], book["asks"]) == book["checksum"]


async def read_book_until(ws: WsRpc, sub_id: str, book: LocalBook, seq: int) -> None:
    """Apply the subscription's messages to ``book`` until it reaches ``seq``."""
    while book.seq is None or book.seq < seq:
        book.apply(await ws.next(sub_id))


async def catch_up(ws: WsRpc, sub_id: str, book: LocalBook, api: Api, market: str) -> None:
    """Read the feed up to the height ``strata_getBook`` reflects now, and assert the book
    then equals it (blocks keep coming, so both are compared at the same ``seq``)."""
    target = api.book(market)
    await read_book_until(ws, sub_id, book, target["seq"])
    book.matches(target)


# ====================================================================================== tests
# 1. A full trade between two accounts.


def test_trade_between_two_accounts(node: NodeProcess, api: Api) -> None:
    """A resting sell (raw tx) crossed by a buy (JSON tx): receipts, positions, trades, order
    status and the buyer's account feed all report the same fill."""
    seller, buyer = wallet(0), wallet(1)

    async def scenario(ws: WsRpc) -> None:
        feed = await ws.subscribe("account", {"address": addr(buyer)})

        # devnet-0 rests a GTC sell of 0.01 BTC at 60000 (raw form).
        sell = sign(seller, place(BTC, False, 600_000, 100, client_id=101))
        sell_hash = api.send_raw(sell)
        sell_included = api.wait_included(sell_hash)
        (update,) = [e for e in sell_included["receipt"]["events"] if e["type"] == "order_update"]
        assert (update["status"], update["remaining"]) == ("open", "0.01")
        sell_id = update["order_id"]
        resting = api.call("strata_getOrder", "BTC-PERP", {"order_id": sell_id})
        assert resting["status"] == "open"
        assert ["60000", "0.01"] in api.book("BTC-PERP")["asks"]

        # devnet-1 crosses it with a buy, sent in JSON form with decimal strings.
        buy = sign(buyer, place(BTC, True, 600_000, 100, client_id=102))
        buy_json = transaction_to_json(buy, MARKETS)
        assert buy_json["action"]["price"] == "60000"
        assert buy_json["action"]["size"] == "0.01"
        sent = api.call("strata_sendTransaction", buy_json)
        assert sent == {"hash": tx_hash(buy)}
        included = api.wait_included(sent["hash"])
        height = included["height"]

        # The receipts of the block hold the fill.
        receipts = api.call("strata_getReceipts", height)
        assert receipts["height"] == height
        by_hash = {r["tx_hash"]: r for r in receipts["receipts"]}
        receipt = by_hash[tx_hash(buy)]
        assert receipt == included["receipt"]
        assert receipt["status"] == 0
        fills = [e for e in receipt["events"] if e["type"] == "fill"]
        assert len(fills) == 1
        fill = fills[0]
        buy_id = fill["taker_order_id"]
        assert fill["market"] == "BTC-PERP"
        assert fill["maker"] == addr(seller)
        assert fill["taker"] == addr(buyer)
        assert fill["maker_order_id"] == sell_id
        assert fill["side"] == "buy"
        assert fill["price"] == "60000"
        assert fill["size"] == "0.01"
        assert fill["maker_fee"] == "0.06"  # 100 ppm of 600 USDC
        assert fill["taker_fee"] == "0.24"  # 400 ppm of 600 USDC

        # Both accounts hold the position, in exact decimal strings.
        short = api.call("strata_getAccount", addr(seller))
        long_ = api.call("strata_getAccount", addr(buyer))
        assert short["positions"] == [
            {
                "market": "BTC-PERP",
                "size": "-0.01",
                "entry_price": "60000",
                "entry_cost": "-600",
                "mark_price": "60000",
                "unrealized_pnl": "0",
                "isolated": False,
                "isolated_margin": None,
            }
        ]
        assert long_["positions"] == [
            {
                "market": "BTC-PERP",
                "size": "0.01",
                "entry_price": "60000",
                "entry_cost": "600",
                "mark_price": "60000",
                "unrealized_pnl": "0",
                "isolated": False,
                "isolated_margin": None,
            }
        ]
        assert short["equity"] == "9999999.94"  # 10,000,000 USDC at genesis, minus the fee
        assert long_["equity"] == "9999999.76"
        assert short["open_orders"] == [] and long_["open_orders"] == []
        assert sell.nonce in short["nonces"]["recent"]
        assert buy.nonce in long_["nonces"]["recent"]

        # The market's trades show it, newest first.
        trade = api.call("strata_getTrades", "BTC-PERP", 10)[0]
        assert trade == {
            "height": height,
            "price": "60000",
            "size": "0.01",
            "side": "buy",
            "maker": addr(seller),
            "taker": addr(buyer),
            "maker_order_id": sell_id,
            "taker_order_id": buy_id,
        }

        # Both orders are filled, by id and by client id.
        maker_order = api.call("strata_getOrder", "BTC-PERP", {"order_id": sell_id})
        assert maker_order == {
            "market": "BTC-PERP",
            "order_id": sell_id,
            "account": addr(seller),
            "client_id": 101,
            "status": "filled",
            "reason": "filled",
            "side": "sell",
            "price": "60000",
            "size": "0.01",
            "remaining": "0",
            "filled": "0.01",
            "height": height,
            "origin": "transaction",
            "trigger_id": None,
        }
        taker_order = api.call(
            "strata_getOrder", "BTC-PERP", {"account": addr(buyer), "client_id": 102}
        )
        assert taker_order["order_id"] == buy_id
        assert taker_order["status"] == "filled"
        assert taker_order["filled"] == "0.01"
        assert taker_order["remaining"] == "0"
        assert taker_order["height"] == height

        # devnet-1's account feed delivered the fill and the order update.
        message = await ws.next(feed)
        assert message["address"] == addr(buyer)
        assert (message["seq"], message["height"]) == (height, height)
        assert message["prev_seq"] is None  # the buyer's first events
        assert message["fills"] == [fill]
        assert any(
            o["order_id"] == buy_id and o["status"] == "filled" for o in message["orders"]
        ), message

        # Checked last so that everything above is checked even if this fails: a filled taker
        # order has a side (its fill says it bought).
        assert taker_order["side"] == "buy", taker_order

    asyncio.run(with_ws(node.ws_url, scenario))


# ------------------------------------------------------------------------------------------
# 2. Feed resume after a dropped connection.


def test_book_feed_resumes_after_disconnect(node: NodeProcess, api: Api) -> None:
    """Snapshot + deltas verify against the checksum; after a disconnect, ``since_seq`` replays
    exactly the missed deltas and the book ends equal to ``strata_getBook``; ``since_seq = 0``
    too."""
    bidder, asker = wallet(2), wallet(3)

    def apply_and_wait(*txs: SignedTransaction) -> None:
        for hash_ in [api.send_raw(tx) for tx in txs]:
            api.wait_included(hash_)

    book = LocalBook()

    async def first_connection(ws: WsRpc) -> None:
        sub = await ws.subscribe("book", {"market": "BTC-PERP"})
        snapshot = await ws.next(sub)
        assert snapshot["type"] == "snapshot"
        assert snapshot["market"] == "BTC-PERP"
        book.apply(snapshot)
        await catch_up(ws, sub, book, api, "BTC-PERP")
        apply_and_wait(
            sign(bidder, place(BTC, True, 590_000, 100, client_id=201)),  # 59000 x 0.01
            sign(bidder, place(BTC, True, 589_999, 200, client_id=202)),  # 58999.9 x 0.02
            sign(asker, place(BTC, False, 610_000, 100, client_id=301)),  # 61000 x 0.01
            sign(asker, place(BTC, False, 610_005, 300, client_id=302)),  # 61000.5 x 0.03
        )
        await catch_up(ws, sub, book, api, "BTC-PERP")
        assert ["59000", "0.01"] in book.side("bids")
        assert ["58999.9", "0.02"] in book.side("bids")
        assert ["61000", "0.01"] in book.side("asks")
        assert ["61000.5", "0.03"] in book.side("asks")

    asyncio.run(with_ws(node.ws_url, first_connection))
    last = book.seq
    assert last is not None

    # While disconnected: three blocks that change the book (and empty deltas in between).
    apply_and_wait(sign(bidder, place(BTC, True, 590_000, 50, client_id=203)))  # 59000 -> 0.015
    apply_and_wait(sign(asker, CancelOrder(BTC, None, 301)))  # the 61000 level goes away
    apply_and_wait(sign(bidder, place(BTC, True, 595_000, 100, client_id=204)))  # new best bid
    now = api.book("BTC-PERP")
    assert now["seq"] >= last + 3

    async def resume(ws: WsRpc) -> None:
        sub = await ws.subscribe("book", {"market": "BTC-PERP", "since_seq": last})
        first = await ws.next(sub)
        assert first["type"] == "delta", f"expected the missed deltas, got {first}"
        assert first["seq"] == last + 1
        book.apply(first)
        await read_book_until(ws, sub, book, now["seq"])
        assert book.seqs[-(now["seq"] - last) :] == list(range(last + 1, now["seq"] + 1))
        book.matches(now)
        assert ["59000", "0.015"] in book.side("bids")
        assert book.side("bids")[0] == ["59500", "0.01"]
        assert all(price != "61000" for price, _ in book.side("asks"))

        # No gap afterwards: the live feed goes on from there.
        apply_and_wait(sign(asker, place(BTC, False, 620_000, 100, client_id=303)))
        await catch_up(ws, sub, book, api, "BTC-PERP")
        assert ["62000", "0.01"] in book.side("asks")

    asyncio.run(with_ws(node.ws_url, resume))

    # since_seq = 0: this young node still keeps every message of the feed, so it replays them
    # all from seq 1 (or sends a snapshot); either way the book ends equal to strata_getBook.
    async def from_zero(ws: WsRpc) -> None:
        sub = await ws.subscribe("book", {"market": "BTC-PERP", "since_seq": 0})
        fresh = LocalBook()
        first = await ws.next(sub)
        if first["type"] == "delta":
            assert first["seq"] == 1, first
            fresh.seq = 0  # replayed from the start: the book at height 0 was empty
        fresh.apply(first)
        await catch_up(ws, sub, fresh, api, "BTC-PERP")
        assert fresh.side("bids") == book.side("bids")

    asyncio.run(with_ws(node.ws_url, from_zero))


# ------------------------------------------------------------------------------------------
# 3. Idempotent resubmission.


def test_resubmission_is_idempotent(api: Api) -> None:
    """The same transaction sent five times (twice pending, twice in one batch, then raw and
    JSON after inclusion) has one hash, one place in one block and one nonce."""
    who = wallet(4)
    tx = sign(who, place(ETH, True, 200_000, 100, client_id=401))  # 2000 x 0.01 ETH, resting
    expected = {"hash": tx_hash(tx)}
    start = api.height()

    first = api.call("strata_sendRawTransaction", raw(tx))
    second = api.call("strata_sendRawTransaction", raw(tx))
    both = api.call("strata_sendRawTransactions", [raw(tx), raw(tx)])
    assert first == expected and second == expected
    assert both == [expected, expected]
    included = api.wait_included(expected["hash"])

    third = api.call("strata_sendRawTransaction", raw(tx))  # after inclusion
    as_json = api.call("strata_sendTransaction", transaction_to_json(tx, MARKETS))
    assert third == expected and as_json == expected
    after = api.wait_height(api.height() + 2)  # give a re-inclusion every chance to happen

    count = 0
    for height in range(start, after + 1):
        block = api.call("strata_getBlock", height)
        count += block["transactions"].count(expected["hash"])
    assert count == 1
    again = api.call("strata_getTransaction", expected["hash"])
    assert (again["status"], again["height"], again["index"]) == (
        "included",
        included["height"],
        included["index"],
    )

    account = api.call("strata_getAccount", addr(who))
    assert account["nonces"]["recent"].count(tx.nonce) == 1
    assert [o["client_id"] for o in account["open_orders"]] == [401]


# ------------------------------------------------------------------------------------------
# 4. Bad inputs.

ORDER = place(BTC, True, 500_000, 1)  # 50000 x 0.0001 BTC: valid, rests far from the market


def _request(method: str, *params: Any) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    ).encode()


def _body(text: str) -> Callable[[Api], httpx.Response]:
    return lambda api: api.post(text.encode())


def _call(method: str, *params: Any) -> Callable[[Api], httpx.Response]:
    return lambda api: api.post(_request(method, *params))


def _tx_json_with(**changes: Any) -> Callable[[Api], httpx.Response]:
    """A valid JSON transaction of devnet-6 with ``changes`` to it (``action_*``: its action)."""

    def send(api: Api) -> httpx.Response:
        obj = transaction_to_json(sign(wallet(6), ORDER), MARKETS)
        for key, value in changes.items():
            if key.startswith("action_"):
                obj["action"][key.removeprefix("action_")] = value
            else:
                obj[key] = value
        return api.post(_request("strata_sendTransaction", obj))

    return send


def _raw_tx(tx: Callable[[], SignedTransaction]) -> Callable[[Api], httpx.Response]:
    return lambda api: api.post(_request("strata_sendRawTransaction", raw(tx())))


def _bad_signature() -> SignedTransaction:
    tx = sign(wallet(6), ORDER)
    return SignedTransaction(tx.account, tx.nonce, tx.action, None, tx.signature[:64] + b"\x1d")


def _stale_nonce() -> SignedTransaction:
    return sign(wallet(6), ORDER, nonce=next_nonce() - 3 * 24 * 3600 * 1000)


def _reused_nonce(api: Api) -> httpx.Response:
    first = sign(wallet(6), place(BTC, True, 500_000, 1, client_id=601))
    api.wait_included(api.send_raw(first))
    second = sign(wallet(6), place(BTC, True, 500_000, 2, client_id=602), nonce=first.nonce)
    return api.post(_request("strata_sendRawTransaction", raw(second)))


def _pieces(body: bytes, size: int = 16 * 1024, pause: float = 0.0) -> Iterator[bytes]:
    """``body`` in pieces (a streamed request: chunked unless a Content-Length is given)."""
    for start in range(0, len(body), size):
        if start and pause:
            time.sleep(pause)
        yield body[start : start + size]


@dataclass(frozen=True)
class Bad:
    send: Callable[[Api], httpx.Response]
    code: int
    name: str
    status: int = 200


def _nested(levels: int) -> str:
    """A request whose JSON nests ``levels`` deep (the request object is level 1)."""
    return (
        '{"jsonrpc":"2.0","id":7,"method":"strata_blockNumber","params":'
        + "[" * (levels - 1)
        + "]" * (levels - 1)
        + "}"
    )


BAD_INPUTS: dict[str, Bad] = {
    "body-over-256KiB": Bad(
        lambda api: api.post(_request("strata_blockNumber") + b" " * (256 * 1024)),
        4001,
        "BODY_TOO_LARGE",
        413,
    ),
    "body-over-256KiB-chunked": Bad(
        lambda api: api.http.post(
            "/",
            content=_pieces(_request("strata_blockNumber") + b" " * (300 * 1024)),
            headers={"Content-Type": "application/json"},
        ),
        4001,
        "BODY_TOO_LARGE",
        413,
    ),
    "malformed-json": Bad(_body('{"jsonrpc": "2.0", "id": 7, "method": '), -32700, "PARSE_ERROR"),
    "invalid-utf8": Bad(
        lambda api: api.post(_request("strata_getAccount", "@@").replace(b"@@", b"\xff\xfe")),
        -32700,
        "PARSE_ERROR",
    ),
    "duplicate-keys": Bad(
        _body('{"jsonrpc":"2.0","id":7,"id":8,"method":"strata_blockNumber","params":[]}'),
        -32700,
        "PARSE_ERROR",
    ),
    "nesting-9": Bad(_body(_nested(9)), -32700, "PARSE_ERROR"),
    "float-for-integer": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_getHeader","params":[1.0]}'),
        -32700,
        "PARSE_ERROR",
    ),
    "exponent": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_getHeader","params":[1e3]}'),
        -32700,
        "PARSE_ERROR",
    ),
    "nan": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_getHeader","params":[NaN]}'),
        -32700,
        "PARSE_ERROR",
    ),
    "infinity": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_getHeader","params":[Infinity]}'),
        -32700,
        "PARSE_ERROR",
    ),
    "int-above-2^127-param": Bad(_call("strata_getHeader", 2**127 + 1), -32602, "INVALID_PARAMS"),
    "int-above-2^127-tx-nonce": Bad(_tx_json_with(nonce=2**128), -32602, "INVALID_PARAMS"),
    "int-above-2^127-client-id": Bad(
        _tx_json_with(action_client_id=2**127 + 5), -32602, "INVALID_PARAMS"
    ),
    "string-for-integer": Bad(_call("strata_getHeader", "1"), -32602, "INVALID_PARAMS"),
    "string-for-boolean": Bad(_call("strata_getBlock", 1, "yes"), -32602, "INVALID_PARAMS"),
    "integer-for-address": Bad(_call("strata_getAccount", 42), -32602, "INVALID_PARAMS"),
    "bool-for-market": Bad(_call("strata_getBook", True), -32602, "INVALID_PARAMS"),
    "too-many-params": Bad(_call("strata_blockNumber", 1), -32602, "INVALID_PARAMS"),
    "params-object": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_getHeader","params":{"height":1}}'),
        -32602,
        "INVALID_PARAMS",
    ),
    "unknown-method": Bad(_call("strata_noSuchMethod"), -32601, "METHOD_NOT_FOUND"),
    "unknown-request-field": Bad(
        _body('{"jsonrpc":"2.0","id":7,"method":"strata_blockNumber","params":[],"x":1}'),
        -32600,
        "INVALID_REQUEST",
    ),
    "unknown-tx-field": Bad(_tx_json_with(memo="hello"), -32602, "INVALID_PARAMS"),
    "unknown-action-field": Bad(_tx_json_with(action_leverage=10), -32602, "INVALID_PARAMS"),
    "wrong-content-type": Bad(
        lambda api: api.post(_request("strata_blockNumber"), "text/plain"),
        -32600,
        "INVALID_REQUEST",
        415,
    ),
    "batch-of-51": Bad(
        lambda api: api.post(
            json.dumps(
                [
                    {"jsonrpc": "2.0", "id": i, "method": "strata_blockNumber", "params": []}
                    for i in range(51)
                ]
            ).encode()
        ),
        4002,
        "BATCH_TOO_LARGE",
    ),
    "empty-batch": Bad(_body("[]"), -32600, "INVALID_REQUEST"),
    "bad-signature": Bad(_raw_tx(_bad_signature), 2010, "BAD_SIGNATURE"),
    "stale-nonce": Bad(_raw_tx(_stale_nonce), 2022, "NONCE_OUT_OF_TIME_BOUND"),
    "reused-nonce": Bad(_reused_nonce, 2020, "NONCE_ALREADY_USED"),
    "unknown-market-raw": Bad(
        _raw_tx(lambda: sign(wallet(6), place(99, True, 500_000, 1))), 2040, "UNKNOWN_MARKET"
    ),
    "unknown-market-json": Bad(_tx_json_with(action_market="DOGE-PERP"), 4007, "UNKNOWN_MARKET"),
    "unknown-market-getBook": Bad(_call("strata_getBook", "DOGE-PERP"), 4007, "UNKNOWN_MARKET"),
    "off-grid-price-json": Bad(_tx_json_with(action_price="50000.05"), 4006, "OFF_GRID"),
    "off-grid-size-json": Bad(_tx_json_with(action_size="0.00015"), 4006, "OFF_GRID"),
    "subscribe-over-http": Bad(_call("strata_subscribe", "blocks"), 4011, "WEBSOCKET_ONLY"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_and_node_keeps_serving(api: Api, case: str) -> None:
    """Each bad input gets its documented code and name, the node keeps producing blocks, and a
    transaction admitted just before it is still included."""
    bad = BAD_INPUTS[case]
    # A valid transaction admitted just before the bad input must not be lost because of it.
    accepted = api.send_raw(sign(wallet(5), ORDER))
    response = bad.send(api)
    assert response.status_code == bad.status, response.text
    reply = response.json()
    assert isinstance(reply, dict) and "result" not in reply, reply
    assert reply["jsonrpc"] == "2.0"
    error = reply["error"]
    assert (error["code"], error["data"]["name"]) == (bad.code, bad.name), error
    assert isinstance(error["message"], str) and error["message"]
    # The node still serves and still produces blocks, and the accepted transaction is included.
    height = api.height()
    api.wait_height(height)
    assert api.wait_included(accepted)["status"] == "included"


def test_limits_are_inclusive(api: Api) -> None:
    """The boundaries themselves are accepted: 50 requests in a batch, nesting 8."""
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "strata_blockNumber", "params": []} for i in range(50)
    ]
    replies = api.post(json.dumps(batch).encode()).json()
    assert sorted(r["id"] for r in replies) == list(range(50))
    assert all(isinstance(r["result"], int) for r in replies)

    deep = api.post(_nested(8).encode()).json()  # parsed; refused only for its params
    assert deep["error"]["code"] == -32602, deep


def test_request_body_arriving_in_pieces_is_read_whole(api: Api) -> None:
    """A request whose body reaches the node in several TCP writes (a slow client, a large body)
    is read whole: a small request split in two, and a body of exactly 256 KiB (the limit)."""
    body = _request("strata_blockNumber")
    response = api.http.post(
        "/",
        content=_pieces(body, size=20, pause=0.05),
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    assert response.status_code == 200
    assert isinstance(response.json().get("result"), int), response.json()

    head, tail = body[:-1], body[-1:]  # the padding goes inside the object: all of it is needed
    body = head + b" " * (256 * 1024 - len(body)) + tail
    assert len(body) == 256 * 1024
    response = api.http.post(
        "/",
        content=_pieces(body, size=64 * 1024, pause=0.01),
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    assert response.status_code == 200
    assert isinstance(response.json().get("result"), int), response.json()


def test_too_many_subscriptions_on_one_websocket(node: NodeProcess, api: Api) -> None:
    """100 subscriptions per connection; the 101st is refused with 4005 and the rest work."""

    async def scenario(ws: WsRpc) -> None:
        subs = [await ws.subscribe("blocks") for _ in range(100)]
        assert len(set(subs)) == 100
        reply = await ws.request("strata_subscribe", "blocks")
        assert reply["error"]["code"] == 4005, reply
        assert reply["error"]["data"]["name"] == "TOO_MANY_SUBSCRIPTIONS"
        # The connection still serves, and freeing one subscription makes room for one more.
        height = await ws.request("strata_blockNumber")
        assert isinstance(height["result"], int)
        assert (await ws.request("strata_unsubscribe", subs[0]))["result"] is True
        await ws.subscribe("blocks")
        last = (await ws.next(subs[1]))["height"]
        assert (await ws.next(subs[1]))["height"] == last + 1

    asyncio.run(with_ws(node.ws_url, scenario))
    api.wait_height(api.height())


def test_refused_transaction_is_reported_rejected(api: Api) -> None:
    """docs/api.md: ``rejected`` carries the code a transaction was rejected with *at
    admission* or when left out of a block."""
    tx = _bad_signature()
    error = api.error("strata_sendRawTransaction", raw(tx))
    assert error["code"] == 2010
    status = api.call("strata_getTransaction", tx_hash(tx))
    assert status["status"] == "rejected", status
    assert status["error"]["code"] == 2010, status


def test_valid_order_after_bad_inputs_is_included(api: Api) -> None:
    """After every bad input above, the node still admits and includes a valid order."""
    who = wallet(5)
    tx = sign(who, place(ETH, False, 900_000, 10, client_id=501))  # 9000 x 0.001 ETH
    api.wait_included(api.send_raw(tx))
    order = api.call("strata_getOrder", "ETH-PERP", {"account": addr(who), "client_id": 501})
    assert (order["status"], order["side"], order["price"], order["size"]) == (
        "open",
        "sell",
        "9000",
        "0.001",
    )


# ------------------------------------------------------------------------------------------
# 6. Health, metrics and the OpenRPC document.


def documented_methods() -> set[str]:
    text = DOCS_API.read_text()
    section = text.split("## Methods", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([\w.]+)` \|", section, re.MULTILINE))


def test_health_metrics_and_openrpc(node: NodeProcess, api: Api) -> None:
    """/health, /metrics, and one OpenRPC document (/openrpc.json, rpc.discover over HTTP and
    WebSocket) listing exactly the methods of docs/api.md."""
    health = api.http.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and isinstance(body["height"], int)
    assert body["height"] <= api.height()

    metrics = api.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in metrics.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    for name in (
        "strata_height",
        "strata_mempool_depth",
        "strata_block_build_seconds_count",
        "strata_block_hot_market_share_count",
        "strata_block_parallel_bound_count",
        "strata_block_markets_active",
        "strata_block_cross_market_accounts",
    ):
        assert name in samples, name
    assert samples["strata_height"] >= body["height"]
    assert samples["strata_block_build_seconds_count"] >= 1

    document = api.http.get("/openrpc.json")
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/json")
    assert api.call("rpc.discover") == document.json()

    async def over_ws(ws: WsRpc) -> None:
        assert (await ws.request("rpc.discover"))["result"] == document.json()

    asyncio.run(with_ws(node.ws_url, over_ws))

    listed = {m["name"] for m in document.json()["methods"]}
    documented = documented_methods()
    assert len(documented) >= 20
    assert listed == documented


# ------------------------------------------------------------------------------------------
# 5. Graceful stop and restart (own node).


def _log_heights(log_path: Path, message: str) -> list[int]:
    heights = []
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("msg") == message:
            heights.append(entry["height"])
    return heights


def test_graceful_stop_and_restart(tmp_path: Path) -> None:
    """SIGTERM exits 0; a restart resumes at the height it stopped at, on the same chain, and
    every included transaction (and one pending at the stop) is reported included."""
    data_dir = tmp_path / "node"
    who, other = wallet(7), wallet(8)
    included: dict[str, tuple[int, int]] = {}
    headers: dict[int, str] = {}
    with running(data_dir) as (node, api):
        for i in range(3):
            tx = sign(who, place(BTC, True, 550_000 + i, 10, client_id=700 + i))
            found = api.wait_included(api.send_raw(tx))
            included[tx_hash(tx)] = (found["height"], found["index"])
        seen = api.height()
        headers = {h: api.call("strata_getHeader", h)["hash"] for h in range(seen + 1)}
        # One more transaction admitted right before the stop: pending, or in the last block.
        late = sign(other, place(ETH, True, 100_000, 10, client_id=800))
        api.send_raw(late)
        assert node.terminate(30) == 0
        assert node.proc is not None and node.proc.returncode == 0

    stopped = _log_heights(node.log_path, "stopped")
    assert len(stopped) == 1 and stopped[0] >= seen

    with running(data_dir) as (node, api):
        assert _log_heights(node.log_path, "resumed") == [0, stopped[0]]
        now = api.wait_height(stopped[0])  # it produces blocks again, on top of the old chain
        for height, hash_ in headers.items():
            assert api.call("strata_getHeader", height)["hash"] == hash_
        above = api.call("strata_getHeader", stopped[0] + 1)
        assert above["parent_hash"] == api.call("strata_getHeader", stopped[0])["hash"]
        assert now > stopped[0]
        for hash_, (height, index) in included.items():
            status = api.call("strata_getTransaction", hash_)
            assert (status["status"], status["height"], status["index"]) == (
                "included",
                height,
                index,
            )
        assert api.wait_included(tx_hash(late))["status"] == "included"
        account = api.call("strata_getAccount", addr(who))
        assert sorted(o["client_id"] for o in account["open_orders"]) == [700, 701, 702]


def test_book_feed_resume_across_restart(tmp_path: Path) -> None:
    """``seq`` is the block height, so it survives a restart: a client that held seq S before
    the restart and resumes with ``since_seq = S`` gets the deltas after S or a fresh snapshot,
    and then a gap-free feed whose book equals ``strata_getBook``."""
    data_dir = tmp_path / "node"
    maker = wallet(9)
    book = LocalBook()
    with running(data_dir) as (node, api):
        for i in range(3):
            api.wait_included(api.send_raw(sign(maker, place(ETH, True, 250_000 + i, 10))))

        async def before(ws: WsRpc) -> None:
            sub = await ws.subscribe("book", {"market": "ETH-PERP"})
            book.apply(await ws.next(sub))
            await catch_up(ws, sub, book, api, "ETH-PERP")

        asyncio.run(with_ws(node.ws_url, before))
        held = book.seq
        assert held is not None and len(book.side("bids")) == 3

    with running(data_dir) as (node, api):
        restarted = api.book("ETH-PERP")
        assert restarted["seq"] >= held
        assert restarted["bids"] == book.side("bids")

        async def after(ws: WsRpc) -> None:
            sub = await ws.subscribe("book", {"market": "ETH-PERP", "since_seq": held})
            first = await ws.next(sub)
            assert first["type"] == "snapshot" or first["seq"] == held + 1, (
                f"resumed with since_seq={held} after a restart, got {first}"
            )
            book.apply(first)
            await catch_up(ws, sub, book, api, "ETH-PERP")
            api.wait_included(api.send_raw(sign(maker, place(ETH, True, 260_000, 10))))
            await catch_up(ws, sub, book, api, "ETH-PERP")
            assert book.side("bids")[0] == ["2600", "0.001"]

        asyncio.run(with_ws(node.ws_url, after))


# ------------------------------------------------------------------------------------------
# 2 (continued). Resume from a seq older than the node keeps (own node, 10 ms blocks).

RING = feeds.RING
"""Book messages a node keeps per market (docs: "about the last 256 blocks")."""


def test_book_feed_since_seq_older_than_kept(tmp_path: Path) -> None:
    """Once the node no longer keeps the messages after ``since_seq`` (1 or 0), a resume gets
    a snapshot equal to ``strata_getBook``; a kept ``since_seq`` gets a replay; and the feed then
    goes on without a gap."""
    with running(tmp_path / "node", block_time_ms=10) as (node, api):
        makers = [wallet(0), wallet(1)]
        for i in range(3):
            api.send_raw(sign(makers[0], place(ETH, True, 290_000 - 100 * i, 10 * (i + 1))))
            api.wait_included(
                api.send_raw(sign(makers[1], place(ETH, False, 310_000 + 100 * i, 10 * (i + 1))))
            )
        api.wait_height(RING + 5, timeout=60)  # one book message per block: the ring is full

        async def resume(ws: WsRpc) -> None:
            books = []
            for since in (1, 0):
                sub = await ws.subscribe("book", {"market": "ETH-PERP", "since_seq": since})
                first = await ws.next(sub)
                assert first["type"] == "snapshot", (since, first["type"], first["seq"])
                book = LocalBook()
                book.apply(first)
                await catch_up(ws, sub, book, api, "ETH-PERP")
                assert len(book.side("bids")) == len(book.side("asks")) == 3
                books.append((sub, book))
            # A since_seq still kept replays exactly the messages after it.
            kept = api.book("ETH-PERP")["seq"] - 3
            sub = await ws.subscribe("book", {"market": "ETH-PERP", "since_seq": kept})
            replay = [await ws.next(sub) for _ in range(3)]
            assert [(m["type"], m["seq"]) for m in replay] == [
                ("delta", kept + 1),
                ("delta", kept + 2),
                ("delta", kept + 3),
            ]
            # No gap after a snapshot: the live feed goes on, and shows the next change.
            api.wait_included(api.send_raw(sign(makers[0], place(ETH, True, 295_000, 10))))
            for sub, book in books:
                await catch_up(ws, sub, book, api, "ETH-PERP")
                assert book.side("bids")[0] == ["2950", "0.001"]

        asyncio.run(with_ws(node.ws_url, resume))


# ------------------------------------------------------------------------------------------
# Account feeds rendered in the index process, with resumes while texts are on their way.


def test_account_feed_resumes_exactly_once_while_orders_flow(tmp_path: Path) -> None:
    """A node with an index process renders subscribed accounts' messages there (docs/node.md,
    "Using both cores"), so a block's message may still be on its way when a client resumes
    from just before it. While one account places an order every few milliseconds, a client
    resumes (``since_seq`` = the latest height it has) every few milliseconds: each resumed
    subscription gets every message after its ``since_seq`` exactly once, in height order, each
    ``prev_seq`` the one before it, and the same text as a client that followed from the start.
    (Without the node's per-subscriber check, some resumes get a message twice.)"""
    trader = wallet(7)
    address = addr(trader)
    orders = 120
    resumes = 90  # on one connection (at most 100 subscriptions each)

    async def scenario(node: NodeProcess, api: Api) -> None:
        async with aiohttp.ClientSession() as session:
            follower_ws = await session.ws_connect(node.ws_url)
            follower = WsRpc(follower_ws)
            feed = await follower.subscribe("account", {"address": address})
            resumer_ws = await session.ws_connect(node.ws_url)
            resumer = WsRpc(resumer_ws)

            def flow() -> str:
                last = ""
                for i in range(orders):
                    last = api.send_raw(sign(trader, place(BTC, True, 500_000 + i, 10)))
                    time.sleep(0.01)
                return last

            flowing = asyncio.create_task(asyncio.to_thread(flow))
            resumed: list[tuple[int, str]] = []
            seen: list[dict[str, Any]] = []
            while not flowing.done():
                with suppress(TimeoutError):
                    seen.append(await follower.next(feed, timeout=0.005))
                if seen and len(resumed) < resumes:
                    since = seen[-1]["seq"]
                    options = {"address": address, "since_seq": since}
                    resumed.append((since, await resumer.subscribe("account", options)))
            final = api.wait_included(await flowing)["height"]
            while not seen or seen[-1]["seq"] < final:
                seen.append(await follower.next(feed))
            assert len(resumed) >= 20, f"the flow ended after {len(resumed)} resumes"

            seqs = [m["seq"] for m in seen]
            assert seqs == sorted(set(seqs)), "the follower got a message twice or out of order"
            for before, after in itertools.pairwise(seen):
                assert after["prev_seq"] == before["seq"]
            assert sum(len(m["orders"]) for m in seen) == orders
            for since, sub in resumed:
                got: list[dict[str, Any]] = []
                while not got or got[-1]["seq"] < final:
                    got.append(await resumer.next(sub))
                expected = [m for m in seen if m["seq"] > since]
                assert got == expected, f"resumed after {since}: {[m['seq'] for m in got]}"
            await resumer_ws.close()
            await follower_ws.close()

    with running(tmp_path / "node") as (node, api):
        asyncio.run(scenario(node, api))

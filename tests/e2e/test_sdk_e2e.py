"""End-to-end tests of the public Python SDK (``strata.client``) against a real ``strata devnet``.

Everything goes through the SDK as a user would write it: :class:`Client` and :class:`Trader`
(blocking), :class:`AsyncClient` and :class:`AsyncTrader`, :class:`FeedClient` with its verified
:class:`L2Book`. The node is one process for the whole module (100 ms blocks), started with
``tests/helpers/node_process.py``; each test uses its own devnet accounts (funded at genesis with
10,000,000 USDC each), so the tests do not disturb each other:

1. a bot of about twenty lines: devnet-2 approves an Ed25519 agent key and the agent quotes,
   modifies and cancels by client id; devnet-3 takes the quote with an IOC; positions, collateral
   and fees are checked to the last 1e-6 USDC;
2. exactness at the edge: an off-tick price, an off-lot size, a 7-decimal USDC amount raise
   ``OFF_GRID`` in the SDK and nothing reaches the node (its metrics, mempool and blocks prove it);
3. ``FeedClient``: book, trades and account feeds while trading; the node is killed with SIGKILL
   and restarted on the same data directory and port; the same ``FeedClient`` reconnects and
   resumes (``since_seq``), and the feeds are whole (compared with ``strata_getTrades``, the
   receipts and ``strata_getBook``); a second ``FeedClient`` resumes from a given ``since_seq``;
4. ``AsyncClient``/``AsyncTrader``: the same place/cancel round trip, concurrent orders, and a batch
   of queries in one HTTP request;
5. idempotence: ``send_raw`` of the same signed bytes returns the same hash, before and after
   inclusion; ``send_raw_many`` reports a bad item's error in its place only.

Test 3 restarts the node on the port it had (``--rpc-port`` given again), so the URLs every test
uses stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest

from strata.client import (
    AsyncClient,
    AsyncTrader,
    Client,
    FeedClient,
    OrderSpec,
    RpcError,
    Trader,
    agent_from_seed,
    wallet_from_seed,
)
from strata.client.feeds import Subscription
from strata.stf.transactions import compute_transaction_hash, decode_transaction
from tests.helpers.node_process import NodeProcess

BTC, ETH = "BTC-PERP", "ETH-PERP"
TIMEOUT = 10.0
"""Seconds any single wait may take (blocks come every 100 ms)."""
TAKER_PPM, MAKER_PPM = 400, 100
USDC = Decimal("0.000001")


# ------------------------------------------------------------------------------------ the node


class Devnet:
    """The module's node: one data directory, one port, restartable after a ``kill -9``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.node = NodeProcess(data_dir, block_time_ms=100).start()
        port = urlsplit(self.node.url).port
        assert port is not None
        self.port = port

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def ws_url(self) -> str:
        return self.node.ws_url

    def kill(self) -> None:
        self.node.kill()
        self.node.__exit__(None, None, None)

    def restart(self) -> None:
        """Start a new process on the same data directory and the same port."""
        url = self.node.url
        extra = ["--rpc-port", str(self.port)]  # the last --rpc-port wins over the helper's 0
        self.node = NodeProcess(self.data_dir, block_time_ms=100, extra=extra).start()
        assert self.node.url == url

    def ensure_running(self) -> None:
        """Restart the node if a failed test left it dead, so that the next tests can run."""
        if self.node.proc is None or self.node.proc.poll() is not None:
            self.restart()

    def stop(self) -> int:
        code = self.node.terminate(30)
        self.node.__exit__(None, None, None)
        return code


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("sdk") / "node")
    try:
        yield net
    finally:
        code = net.stop()
        assert code == 0, f"the node exited with {code} on SIGTERM: see {net.node.log_path}"


@pytest.fixture
def client(devnet: Devnet) -> Iterator[Client]:
    with Client(devnet.url, timeout=TIMEOUT) as c:
        yield c


# ------------------------------------------------------------------------------------ helpers


def addr(account: bytes) -> str:
    return "0x" + account.hex()


def tx_hash_of(raw: bytes) -> str:
    return "0x" + compute_transaction_hash(raw).hex()


def fee(notional: Decimal, ppm: int) -> Decimal:
    """``ceil(notional * ppm / 1e6)``, in units of 1e-6 USDC
    (src/strata/modules/clearing/README.md)."""
    units = notional / USDC
    assert units == units.to_integral_value(), notional
    return Decimal(-(-int(units) * ppm // 1_000_000)) * USDC


def dec(value: str) -> Decimal:
    return Decimal(value)


def collateral_delta(before: dict[str, Any], after: dict[str, Any]) -> Decimal:
    return dec(after["collateral"]) - dec(before["collateral"])


def position(account: dict[str, Any], market: str) -> dict[str, Any] | None:
    found = [p for p in account["positions"] if p["market"] == market]
    return found[0] if found else None


def events(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in result["receipt"]["events"] if e["type"] == kind]


def metric(url: str, name: str, label: str | None = None) -> float:
    """The sum of a Prometheus sample family (``name``, optionally one label set) at /metrics."""
    text = httpx.get(url + "metrics", timeout=TIMEOUT).text
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if match and (label is None or match.group(1) == "{" + label + "}"):
            total += float(match.group(2))
    return total


# ============================================================================= 1. a bot


def test_agent_bot_quotes_modifies_cancels_and_is_taken(devnet: Devnet, client: Client) -> None:
    """devnet-2's agent quotes a post-only bid and ask with client ids, moves the ask, cancels
    the bid by client id; devnet-3 takes the ask with an IOC. Exact positions, collateral, fees
    and order statuses; every transaction ``included``."""
    owner = Trader(client, wallet_from_seed("devnet-2"))
    taker = Trader(client, wallet_from_seed("devnet-3"))
    agent = agent_from_seed("sdk-e2e-bot")
    maker_before = client.account(owner.account)
    taker_before = client.account(taker.account)
    assert position(maker_before, BTC) is None and position(taker_before, BTC) is None
    mark = next(m["mark_price"] for m in client.markets() if m["symbol"] == BTC)
    assert mark == "60000"

    valid_until_ms = int(time.time() * 1000) + 3_600_000
    approved = owner.approve_agent(agent, valid_until_ms, wait=True)
    assert approved["status"] == "included" and approved["receipt"]["status"] == 0
    assert {"public_key": addr(agent.public_key), "valid_until_ms": valid_until_ms} in (
        client.account(owner.account)["agents"]
    )

    # ---- the bot: an agent-only trader (no wallet) acting for devnet-2
    bot = Trader(client, None, agent, account=owner.account)
    bid = bot.place(BTC, "buy", "59990.5", "0.015", tif="post_only", client_id=1001, wait=True)
    ask = bot.place(BTC, "sell", "60010", "0.01", tif="post_only", client_id=1002, wait=True)
    moved = bot.modify(BTC, "sell", "60005.5", "0.0123", client_id=1002, tif="post_only", wait=True)
    canceled = bot.cancel(BTC, client_id=1001, wait=True)
    book = client.book(BTC, 5)
    taken = taker.place(BTC, "buy", "60005.5", "0.02", tif="ioc", client_id=2001, wait=True)
    # ---- end of the bot

    with pytest.raises(ValueError):
        bot.transfer(taker.account, "1")  # wallet-only: refused before anything is signed

    results = {"bid": bid, "ask": ask, "modify": moved, "cancel": canceled, "ioc": taken}
    for name, result in results.items():
        assert result["status"] == "included", (name, result)
        assert result["receipt"]["status"] == 0, (name, result)
        assert client.transaction(result["hash"])["status"] == "included", name
    # The bot's transactions are signed by the agent key for devnet-2's account.
    for name in ("bid", "ask", "modify", "cancel"):
        result = results[name]
        raw_hex = client.block(result["height"], full=True)["transactions"][result["index"]]
        tx = decode_transaction(bytes.fromhex(raw_hex[2:]))
        assert (tx.account, tx.agent) == (owner.account, agent.public_key), name

    (bid_update,) = events(bid, "order_update")
    (ask_update,) = events(ask, "order_update")
    replaced, new_ask = events(moved, "order_update")
    bid_id, old_ask_id, new_ask_id = (
        bid_update["order_id"],
        ask_update["order_id"],
        new_ask["order_id"],
    )
    assert (replaced["order_id"], replaced["reason"]) == (old_ask_id, "replaced")
    assert book["asks"][0] == ["60005.5", "0.0123"]
    assert ["59990.5", "0.015"] not in book["bids"]

    (fill,) = events(taken, "fill")
    notional = dec("60005.5") * dec("0.0123")
    maker_fee, taker_fee = fee(notional, MAKER_PPM), fee(notional, TAKER_PPM)
    assert (maker_fee, taker_fee) == (dec("0.073807"), dec("0.295228"))  # both rounded up
    assert fill == {
        **fill,
        "maker": addr(owner.account),
        "taker": addr(taker.account),
        "maker_order_id": new_ask_id,
        "side": "buy",
        "price": "60005.5",
        "size": "0.0123",
        "maker_fee": "0.073807",
        "taker_fee": "0.295228",
    }

    maker_after = client.account(owner.account)
    taker_after = client.account(taker.account)
    assert collateral_delta(maker_before, maker_after) == notional - maker_fee
    assert collateral_delta(taker_before, taker_after) == -notional - taker_fee
    assert maker_after["collateral"] == "10000737.993843"
    assert taker_after["collateral"] == "9999261.637122"
    assert position(maker_after, BTC) == {
        "market": BTC,
        "size": "-0.0123",
        "entry_price": "60005.5",
        "entry_cost": "-738.06765",
        "mark_price": "60000",
        "unrealized_pnl": "0.06765",
        "isolated": False,
        "isolated_margin": None,
    }
    assert position(taker_after, BTC) == {
        "market": BTC,
        "size": "0.0123",
        "entry_price": "60005.5",
        "entry_cost": "738.06765",
        "mark_price": "60000",
        "unrealized_pnl": "-0.06765",
        "isolated": False,
        "isolated_margin": None,
    }
    # equity = collateral + position at mark: each side lost its fee and the 5.5 USDC spread
    assert dec(maker_after["equity"]) - dec(maker_before["equity"]) == (-maker_fee + dec("0.06765"))
    assert dec(taker_after["equity"]) - dec(taker_before["equity"]) == (-taker_fee - dec("0.06765"))
    assert maker_after["open_orders"] == [] and taker_after["open_orders"] == []

    def order(**query: Any) -> dict[str, Any]:
        return client.order(BTC, **query)

    assert order(account=owner.account, client_id=1001) == {
        "market": BTC,
        "order_id": bid_id,
        "account": addr(owner.account),
        "client_id": 1001,
        "status": "canceled",
        "reason": "canceled_by_user",
        "side": "buy",
        "price": "59990.5",
        "size": "0.015",
        "remaining": "0.015",
        "filled": "0",
        "height": canceled["height"],
        "origin": "transaction",
        "trigger_id": None,
    }
    old_ask = order(order_id=old_ask_id)
    assert (old_ask["status"], old_ask["reason"], old_ask["price"]) == (
        "canceled",
        "replaced",
        "60010",
    )
    assert old_ask["height"] == moved["height"]
    # The client id now names the replacement, filled by the IOC.
    assert order(account=owner.account, client_id=1002) == {
        "market": BTC,
        "order_id": new_ask_id,
        "account": addr(owner.account),
        "client_id": 1002,
        "status": "filled",
        "reason": "filled",
        "side": "sell",
        "price": "60005.5",
        "size": "0.0123",
        "remaining": "0",
        "filled": "0.0123",
        "height": taken["height"],
        "origin": "transaction",
        "trigger_id": None,
    }
    ioc = order(account=taker.account, client_id=2001)
    assert ioc == order(order_id=fill["taker_order_id"])
    assert {k: v for k, v in ioc.items() if k != "price"} == {
        "market": BTC,
        "order_id": fill["taker_order_id"],
        "account": addr(taker.account),
        "client_id": 2001,
        "status": "canceled",
        "reason": "ioc_remainder",
        "side": "buy",
        "size": "0.02",
        "remaining": "0.0077",
        "filled": "0.0123",
        "height": taken["height"],
        "origin": "transaction",
        "trigger_id": None,
    }
    # Checked last, so that everything above is checked even if this fails: the taker order's
    # limit price is a documented field of strata_getOrder (docs/api.md).
    assert ioc["price"] == "60005.5", f"strata_getOrder of a filled IOC taker: {ioc}"


# ============================================================================= 2. exactness


class RecordingClient(Client):
    """A :class:`Client` that records the JSON-RPC method of everything it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(url, timeout=TIMEOUT)
        self.sent: list[str] = []

    def _post(self, payload: Any) -> Any:
        for request in payload if isinstance(payload, list) else [payload]:
            self.sent.append(request["method"])
        return super()._post(payload)


def test_off_grid_values_are_refused_before_anything_is_sent(devnet: Devnet) -> None:
    """A price off the tick, a size off the lot, a USDC amount with 7 decimals: ``RpcError``
    ``OFF_GRID`` in the SDK; no transaction request leaves it and the node admits, refuses and
    includes nothing."""
    client = RecordingClient(devnet.url)
    with client:
        who = wallet_from_seed("devnet-7")
        other = wallet_from_seed("devnet-8")
        trader = Trader(client, who)
        trader.load()
        account_before = client.account(who.address)
        sends_before = metric(
            devnet.url, "strata_rpc_requests_total", 'method="strata_sendRawTransaction"'
        )
        admitted_before = metric(devnet.url, "strata_admitted_transactions_total")
        refused_before = metric(devnet.url, "strata_refused_transactions_total")
        height_before = client.block_number()
        client.sent.clear()

        attempts: dict[str, Callable[[], Any]] = {
            "price off the BTC tick": lambda: trader.place(BTC, "buy", "60000.05", "0.01"),
            "Decimal price off the tick": lambda: trader.place(
                BTC, "buy", Decimal("60000.05"), "0.01"
            ),
            "size off the BTC lot": lambda: trader.place(BTC, "buy", "60000", "0.00005"),
            "price off the ETH tick": lambda: trader.place(ETH, "sell", "3000.001", "0.01"),
            "modify to an off-tick price": lambda: trader.modify(
                BTC, "buy", "59000.01", "0.01", client_id=7001
            ),
            "one off-lot order in a bulk": lambda: trader.bulk_place(
                [
                    OrderSpec(BTC, "buy", "59000", "0.01", client_id=7002),
                    OrderSpec(BTC, "buy", "59000", "0.010001", client_id=7003),
                ]
            ),
            "transfer of 7 decimals": lambda: trader.transfer(other.address, "1.0000001"),
            "withdraw of 7 decimals": lambda: trader.withdraw("0.0000001", other.address),
        }
        for what, attempt in attempts.items():
            with pytest.raises(RpcError) as raised:
                attempt()
            assert (raised.value.code, raised.value.name) == (4006, "OFF_GRID"), what
        with pytest.raises(RpcError) as as_float:
            trader.place(BTC, "buy", 60000.0, "0.01")  # type: ignore[arg-type]
        assert as_float.value.name == "INVALID_PARAMS"

        assert client.sent == [], "the SDK sent requests for off-grid values"
        time.sleep(0.25)  # a couple of blocks, in which nothing may appear
        height_after = client.block_number()
        assert client.status()["mempool"] == 0
        assert (
            metric(devnet.url, "strata_rpc_requests_total", 'method="strata_sendRawTransaction"')
            == sends_before
        )
        assert metric(devnet.url, "strata_admitted_transactions_total") == admitted_before
        assert metric(devnet.url, "strata_refused_transactions_total") == refused_before
        blocks = client.batch(
            [("strata_getBlock", [h]) for h in range(height_before + 1, height_after + 1)]
        )
        assert [b["transactions"] for b in blocks] == [[]] * len(blocks)
        account_after = client.account(who.address)
        for field in ("collateral", "nonces", "open_orders", "positions"):
            assert account_after[field] == account_before[field], field

        # The smallest amounts on the grid go through, exactly.
        receiver_before = client.account(other.address)
        sent = trader.transfer(other.address, "0.000001", wait=True)
        assert sent["status"] == "included" and sent["receipt"]["status"] == 0
        assert collateral_delta(account_before, client.account(who.address)) == -USDC
        assert collateral_delta(receiver_before, client.account(other.address)) == USDC


# ============================================================================= 3. feeds


class Gate:
    """Stands in for the ``FeedClient``'s aiohttp session: while closed, the node cannot be
    reached (``ws_connect`` fails as a refused connection would), so the test decides when the
    client gets back to the restarted node."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.is_open = True
        self.refused = 0

    async def ws_connect(self, url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        if not self.is_open:
            self.refused += 1
            raise aiohttp.ClientConnectionError("node unreachable (test gate closed)")
        ws: aiohttp.ClientWebSocketResponse = await self.session.ws_connect(url, **kwargs)
        return ws


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def trade_key(trade: dict[str, Any], height: int) -> tuple[Any, ...]:
    return (
        height,
        trade["price"],
        trade["size"],
        trade["side"],
        trade["maker"],
        trade["taker"],
        trade["maker_order_id"],
        trade["taker_order_id"],
    )


def test_feeds_stay_whole_across_a_node_kill(devnet: Devnet) -> None:
    """Book, trades and account (devnet-3) feeds while devnet-4 quotes and devnet-3 takes; the
    node is killed (SIGKILL) and restarted on the same data directory; trades happen while the
    client cannot reach it; the same ``FeedClient`` resumes and every feed is whole."""
    maker_wallet, taker_wallet = wallet_from_seed("devnet-4"), wallet_from_seed("devnet-3")

    async def scenario() -> None:
        async with (
            aiohttp.ClientSession() as session,
            AsyncClient(devnet.url, timeout=TIMEOUT) as api,
        ):
            gate = Gate(session)
            feeds = FeedClient(
                devnet.ws_url,
                backoff_initial=0.05,
                backoff_max=0.2,
                session=cast(aiohttp.ClientSession, gate),
            )
            maker = AsyncTrader(api, maker_wallet)
            taker = AsyncTrader(api, taker_wallet)
            book_sub = feeds.subscribe("book", market=BTC)
            trades_sub = feeds.subscribe("trades", market=BTC)
            account_sub = feeds.subscribe("account", address=addr(taker_wallet.address))

            # Each book message: the local book as it stands after it (all levels, best first).
            book_at: dict[int, tuple[list[list[str]], list[list[str]], int, int]] = {}
            trade_msgs: list[dict[str, Any]] = []
            account_msgs: list[dict[str, Any]] = []

            async def pump_book() -> None:
                async for message in book_sub:
                    local = book_sub.book
                    assert local is not None and local.seq is not None
                    book_at[local.seq] = (
                        [list(level) for level in local.bids],
                        [list(level) for level in local.asks],
                        local.checksum(),
                        message["checksum"],
                    )

            async def pump(sub: Subscription, into: list[dict[str, Any]]) -> None:
                async for message in sub:
                    into.append(message)

            pumps = [
                asyncio.create_task(pump_book()),
                asyncio.create_task(pump(trades_sub, trade_msgs)),
                asyncio.create_task(pump(account_sub, account_msgs)),
            ]
            fills: list[dict[str, Any]] = []  # from the receipts of the IOCs, in block order
            rounds = iter(range(100))

            async def trade_round() -> int:
                """devnet-4 quotes two asks and a bid (post-only); devnet-3 lifts with an IOC
                that takes the asks (and any leftover of the previous round)."""
                i = next(rounds)
                base = Decimal("60100") + i
                quotes = [
                    OrderSpec(BTC, "sell", base, "0.01", "post_only", client_id=4000 + 10 * i),
                    OrderSpec(BTC, "sell", base + Decimal("0.5"), "0.02", "post_only"),
                    OrderSpec(BTC, "buy", Decimal("59900") - i, "0.01", "post_only"),
                ]
                placed = await maker.bulk_place(quotes, wait=True)
                assert placed["receipt"]["status"] == 0, placed
                ioc = await taker.place(
                    BTC, "buy", base + Decimal("0.5"), "0.025", "ioc", wait=True
                )
                got = events(ioc, "fill")
                assert got and sum(dec(f["size"]) for f in got) == dec("0.025"), ioc
                fills.extend({**f, "height": ioc["height"]} for f in got)
                return int(ioc["height"])

            async def book_matches_node() -> int:
                """``strata_getBook`` (depth 50) equals the local book at the same seq."""
                node_book = await api.book(BTC, 50)
                seq = node_book["seq"]
                assert node_book["height"] == seq
                await wait_until(lambda: seq in book_at, f"book seq {seq} on the feed")
                bids, asks, local_checksum, feed_checksum = book_at[seq]
                assert (bids[:50], asks[:50]) == (node_book["bids"], node_book["asks"]), seq
                assert local_checksum == feed_checksum == node_book["checksum"], seq
                return int(seq)

            try:
                await feeds.wait_connected(TIMEOUT)
                await wait_until(lambda: bool(book_at) and bool(trade_msgs), "the first messages")
                await trade_round()
                await book_matches_node()
                last_before_kill = await trade_round()
                await book_matches_node()
                await wait_until(
                    lambda: trade_msgs[-1]["seq"] >= last_before_kill, "the trades before the kill"
                )

                # kill -9; the client cannot reach the node again until the gate opens.
                gate.is_open = False
                await asyncio.to_thread(devnet.kill)
                await wait_until(lambda: not feeds.connected, "the feed connection to drop")
                await asyncio.sleep(0.2)
                held_trades = trade_msgs[-1]["seq"]
                held_account = account_msgs[-1]["seq"]
                await asyncio.to_thread(devnet.restart)
                restarted_at = await api.block_number()
                assert restarted_at >= last_before_kill
                missed = [await trade_round(), await trade_round()]  # feeds disconnected
                assert not feeds.connected and gate.refused > 0
                gate.is_open = True
                await feeds.wait_connected(TIMEOUT)
                final = await trade_round()
                await book_matches_node()
                await wait_until(lambda: trade_msgs[-1]["seq"] >= final, "the last trades")
                await wait_until(
                    lambda: bool(account_msgs) and account_msgs[-1]["seq"] >= final,
                    "the last account message",
                )
                await book_matches_node()
                assert all(not task.done() for task in pumps), [t for t in pumps if t.done()]
            finally:
                await feeds.close()
                for task in pumps:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            for task in pumps:
                assert task.cancelled() or task.exception() is None

            # --- trades: one message per block, seq = last + 1 throughout, across the kill
            assert all("type" not in m for m in trade_msgs), [m for m in trade_msgs if "type" in m]
            seqs = [m["seq"] for m in trade_msgs]
            assert seqs == list(range(seqs[0], seqs[-1] + 1)), "trades seq not contiguous"
            assert held_trades + 1 in seqs and all(h in seqs for h in missed)
            assert all(t["height"] == m["seq"] for m in trade_msgs for t in m["trades"])
            feed_trades = [trade_key(t, m["seq"]) for m in trade_msgs for t in m["trades"]]
            # ... equal to the node's trade list over the same heights (newest first there)
            node_trades = [
                trade_key(t, t["height"])
                for t in reversed(await api.trades(BTC, 1000))
                if seqs[0] <= t["height"] <= seqs[-1]
            ]
            assert feed_trades == node_trades
            # ... and to the fills in the IOCs' receipts: nothing missing, nothing extra
            receipt_trades = [trade_key(f, f["height"]) for f in fills]
            assert feed_trades == receipt_trades
            assert any(h > held_trades for h, *_ in feed_trades[-len(fills) :])

            # --- account: each message's prev_seq is the previous message, across the kill
            assert all("type" not in m for m in account_msgs)
            for previous, message in itertools.pairwise(account_msgs):
                assert message["prev_seq"] == previous["seq"], (previous["seq"], message)
            account_fills = [
                (m["seq"], f["maker_order_id"], f["taker_order_id"], f["size"])
                for m in account_msgs
                for f in m["fills"]
            ]
            assert account_fills == [
                (f["height"], f["maker_order_id"], f["taker_order_id"], f["size"]) for f in fills
            ]

            # --- counters: one reconnect, nothing lost, no checksum mismatch
            assert feeds.reconnects == 1
            assert feeds.checksum_mismatches == 0
            assert feeds.gaps == 0 and feeds.unrecovered_gaps == 0
            assert feeds.unverified == 0
            # the book may resume from a fresh snapshot (the node keeps no book messages from
            # before its restart); trades and account are replayed, never reset
            assert feeds.resets <= 1

            # --- a new FeedClient resumes from the seqs the first one held at the kill
            async with FeedClient(devnet.ws_url) as again:
                t_sub = again.subscribe("trades", market=BTC, since_seq=held_trades)
                a_sub = again.subscribe(
                    "account", address=addr(taker_wallet.address), since_seq=held_account
                )
                replayed_trades: list[dict[str, Any]] = []
                replayed_account: list[dict[str, Any]] = []
                t_task = asyncio.create_task(pump(t_sub, replayed_trades))
                a_task = asyncio.create_task(pump(a_sub, replayed_account))
                try:
                    await wait_until(
                        lambda: bool(replayed_trades) and replayed_trades[-1]["seq"] >= seqs[-1],
                        "the replayed trades",
                    )
                    await wait_until(
                        lambda: (
                            bool(replayed_account)
                            and replayed_account[-1]["seq"] >= account_msgs[-1]["seq"]
                        ),
                        "the replayed account messages",
                    )
                finally:
                    t_task.cancel()
                    a_task.cancel()
                assert [m for m in replayed_trades if m["seq"] <= seqs[-1]] == [
                    m for m in trade_msgs if m["seq"] > held_trades
                ]
                assert [m for m in replayed_account if m["seq"] <= account_msgs[-1]["seq"]] == [
                    m for m in account_msgs if m["seq"] > held_account
                ]
                assert again.gaps == again.resets == again.checksum_mismatches == 0

            await maker.cancel_all(BTC, wait=True)

    try:
        asyncio.run(scenario())
    finally:
        devnet.ensure_running()


# ============================================================================= 4. asyncio


def test_async_client_round_trip_and_batch(devnet: Devnet) -> None:
    """``AsyncTrader`` places and cancels (one by client id, concurrent orders by cancel-all);
    ``AsyncClient.batch`` sends several queries in one HTTP request, errors in place."""

    async def scenario() -> None:
        async with AsyncClient(devnet.url, timeout=TIMEOUT) as api:
            trader = AsyncTrader(api, wallet_from_seed("devnet-5"))
            placed = await trader.place(
                BTC, "buy", "55000.1", "0.0042", tif="post_only", client_id=5001, wait=True
            )
            assert placed["status"] == "included" and placed["receipt"]["status"] == 0
            (update,) = events(placed, "order_update")
            order_id = update["order_id"]
            resting = await api.order(BTC, account=trader.account, client_id=5001)
            assert resting == {
                "market": BTC,
                "order_id": order_id,
                "account": addr(trader.account),
                "client_id": 5001,
                "status": "open",
                "reason": "none",
                "side": "buy",
                "price": "55000.1",
                "size": "0.0042",
                "remaining": "0.0042",
                "filled": "0",
                "height": placed["height"],
                "origin": "transaction",
                "trigger_id": None,
            }
            assert ["55000.1", "0.0042"] in (await api.book(BTC, 100))["bids"]

            # Concurrent orders from one trader: distinct nonces, all admitted and included.
            hashes = await asyncio.gather(
                *(
                    trader.place(
                        ETH, "buy", f"{2500 + i}.25", "0.05", "post_only", client_id=5100 + i
                    )
                    for i in range(4)
                )
            )
            assert len(set(hashes)) == 4
            included = await asyncio.gather(*(api.wait_for_transaction(h, TIMEOUT) for h in hashes))
            assert [r["status"] for r in included] == ["included"] * 4
            account = await api.account(trader.account)
            assert sorted(o["client_id"] for o in account["open_orders"]) == [
                5001,
                5100,
                5101,
                5102,
                5103,
            ]

            canceled = await trader.cancel(BTC, client_id=5001, wait=True)
            assert canceled["status"] == "included"
            (update,) = events(canceled, "order_update")
            assert (update["order_id"], update["status"], update["reason"]) == (
                order_id,
                "canceled",
                "canceled_by_user",
            )
            cleared = await trader.cancel_all(ETH, wait=True)
            assert {(e["status"], e["reason"]) for e in events(cleared, "order_update")} == {
                ("canceled", "canceled_all")
            }

            # One HTTP request for the whole batch.
            posted: list[Any] = []
            real_post = api._post

            async def counting_post(payload: Any) -> Any:
                posted.append(payload)
                return await real_post(payload)

            api._post = counting_post  # type: ignore[method-assign]
            calls: list[tuple[str, list[Any]]] = [
                ("strata_blockNumber", []),
                ("strata_getStatus", []),
                ("strata_getAccount", [addr(trader.account)]),
                ("strata_getOrder", [BTC, {"order_id": order_id}]),
                ("strata_getBook", [BTC, 5]),
                ("strata_getTransaction", [canceled["hash"]]),
                ("strata_getOrder", [BTC, {"order_id": 10**15}]),
            ]
            height, status, account, order, book, tx, missing = await api.batch(
                calls, return_errors=True
            )
            api._post = real_post  # type: ignore[method-assign]
            assert len(posted) == 1 and isinstance(posted[0], list) and len(posted[0]) == 7
            assert [r["method"] for r in posted[0]] == [m for m, _ in calls]
            assert isinstance(height, int) and height >= canceled["height"]
            assert status["chain_id"] == trader.chain_id and status["devnet"] is True
            assert account["open_orders"] == []
            assert (order["status"], order["reason"], order["remaining"]) == (
                "canceled",
                "canceled_by_user",
                "0.0042",
            )
            assert ["55000.1", "0.0042"] not in book["bids"]
            assert (tx["status"], tx["height"]) == ("included", canceled["height"])
            assert isinstance(missing, RpcError) and missing.name == "NOT_FOUND"
            with pytest.raises(RpcError) as raised:
                await api.batch(calls[-1:])
            assert raised.value.name == "NOT_FOUND"

    asyncio.run(scenario())


# ============================================================================= 5. idempotence


def test_send_raw_is_idempotent_and_send_raw_many_reports_per_item(
    devnet: Devnet, client: Client
) -> None:
    """The same signed bytes sent again (pending, then included) give the same hash and one
    order; in ``send_raw_many`` a forged and a malformed item get their own ``RpcError`` and the
    other items go through."""
    who = wallet_from_seed("devnet-6")
    trader = Trader(client, who)
    trader.load()
    raw = trader.sign_action(
        trader.place_action(ETH, "buy", "2000", "0.01", "post_only", client_id=6001)
    )
    first, second = client.send_raw(raw), client.send_raw(raw)
    assert first == second == tx_hash_of(raw)
    included = client.wait_for_transaction(first, TIMEOUT)
    assert included["status"] == "included"
    assert client.send_raw(raw) == first  # after inclusion: the same hash, nothing new
    time.sleep(0.25)
    again = client.transaction(first)
    assert (again["status"], again["height"], again["index"]) == (
        "included",
        included["height"],
        included["index"],
    )
    nonce = decode_transaction(raw).nonce
    assert client.account(who.address)["nonces"]["recent"].count(nonce) == 1

    good_a = trader.sign_action(
        trader.place_action(ETH, "buy", "2001", "0.01", "post_only", client_id=6002)
    )
    # devnet-9's key signing for devnet-6's account: WRONG_SIGNER at admission
    forger = Trader(client, wallet_from_seed("devnet-9"), account=who.address)
    forger.load()
    forged = forger.sign_action(
        forger.place_action(ETH, "buy", "2002", "0.01", "post_only", client_id=6003)
    )
    malformed = b"\x93\x01\x02"
    good_b = trader.sign_action(
        trader.place_action(ETH, "buy", "2003", "0.01", "post_only", client_id=6004)
    )
    outcomes = client.send_raw_many([good_a, forged, good_b, malformed, good_a, raw])
    assert outcomes[0] == tx_hash_of(good_a)
    assert isinstance(outcomes[1], RpcError) and outcomes[1].name == "WRONG_SIGNER", outcomes[1]
    assert outcomes[2] == tx_hash_of(good_b)
    assert isinstance(outcomes[3], RpcError) and outcomes[3].code // 1000 == 2, outcomes[3]
    assert outcomes[4] == tx_hash_of(good_a) and outcomes[5] == first
    for good in (good_a, good_b):
        assert client.wait_for_transaction(tx_hash_of(good), TIMEOUT)["status"] == "included"
    refused = client.transaction(tx_hash_of(forged))
    assert refused["status"] == "rejected" and refused["error"]["data"]["name"] == "WRONG_SIGNER"

    account = client.account(who.address)
    assert sorted(o["client_id"] for o in account["open_orders"]) == [6001, 6002, 6004]
    trader.cancel_all(ETH, wait=True)

    # Checked last: the markets "come from strata_getMarkets on first use" (Trader's docstring),
    # as they do for market() and sign_action(); an action builder is a first use too, and
    # ETH-PERP exists, so UNKNOWN_MARKET would be the wrong answer.
    fresh = Trader(client, who)
    action, error = None, None
    try:
        action = fresh.place_action(ETH, "buy", "2000", "0.01", "post_only", client_id=6005)
    except RpcError as exc:
        error = exc
    assert error is None, f"Trader.place_action before load() raised {error}"
    assert action is not None
    assert (action.market_id, action.price_ticks, action.size_lots) == (2, 200_000, 100)

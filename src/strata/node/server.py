"""The node's HTTP and WebSocket server (aiohttp) and its process lifecycle.

Routes: ``POST /`` (JSON-RPC), ``GET /ws`` (JSON-RPC and subscriptions), ``GET /health``,
``GET /metrics`` (Prometheus), ``GET /openrpc.json``. Limits (docs/api.md): body size, batch size,
WebSocket frame size, subscriptions per connection, connections per IP, request rate per IP.

SIGTERM or SIGINT: the producer finishes the block in hand, the server stops accepting, the
stores are flushed and closed, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import sys
from collections import Counter as CounterDict
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from strata.adapters.lifetime import tune_collector
from strata.client.errors import RpcCode, RpcError
from strata.node.feeds import Subscriber, dumps
from strata.node.node import Node
from strata.node.rpc import Context, _hex, _int, _market, _object, handle_body, openrpc_document

log = logging.getLogger("strata.node")
_JSON = "application/json"
WS_MAX_FRAME = 64 * 1024


class Session:
    """One WebSocket connection: its subscriptions and its bounded outbound queue."""

    _ids = itertools.count(1)

    def __init__(self, node: Node, ws: web.WebSocketResponse) -> None:
        self.node = node
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(
            node.config.max_subscriptions_per_connection * 64
        )
        self.subs: dict[str, Subscriber] = {}
        self.after_reply: list[Callable[[], None]] = []
        self.overflowed = False

    def send(self, message: dict[str, Any]) -> None:
        self._put(dumps(message))

    def _put(self, text: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            self.node.metrics.dropped_subscribers.inc()
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)  # the writer closes the connection

    def notify(self, sub_id: str, result: dict[str, Any]) -> None:
        self.notify_text(sub_id, dumps(result))

    def notify_text(self, sub_id: str, result: str) -> None:
        """A notification whose result is already JSON text (``sub_id`` is digits)."""
        self._put(
            '{"jsonrpc":"2.0","method":"strata_subscription","params":{"subscription":"'
            + sub_id
            + '","result":'
            + result
            + "}}"
        )

    async def subscribe(self, kind: Any, options: Any) -> str:
        node = self.node
        if len(self.subs) >= node.config.max_subscriptions_per_connection:
            raise RpcError(
                RpcCode.TOO_MANY_SUBSCRIPTIONS,
                f"at most {node.config.max_subscriptions_per_connection} per connection",
            )
        feeds = node.feeds
        since: int | None = None
        key: Any = None
        if kind == "blocks":
            _object(options, "options", set())
        elif kind in ("trades", "book"):
            allowed = {"market", "since_seq"} | ({"depth"} if kind == "book" else set())
            opts = _object(options, "options", allowed)
            key = _market(node, opts.get("market")).market_id
            if "depth" in opts:
                _int(opts["depth"], "depth", 50, 50)  # the book feed has one depth: 50 levels
            if "since_seq" in opts:
                since = _int(opts["since_seq"], "since_seq", 0, (1 << 63) - 1)
        elif kind == "account":
            opts = _object(options, "options", {"address", "since_seq"})
            key = _hex(opts.get("address"), "address", 20)
            if "since_seq" in opts:
                since = _int(opts["since_seq"], "since_seq", 0, (1 << 63) - 1)
        else:
            raise RpcError(
                RpcCode.INVALID_PARAMS, "kind must be one of blocks, trades, book, account"
            )
        sub_id = str(next(self._ids))
        sub = _SessionSubscriber(sub_id, kind, key, self)
        self.subs[sub_id] = sub
        node.metrics.subscriptions.inc()

        def start() -> None:
            """After the reply (and after the whole batch, however long its other requests
            took): live messages from now on, after what the subscriber missed or a snapshot.
            Nothing runs between the two, so nothing is delivered twice or out of order."""
            if sub_id not in self.subs:
                return  # unsubscribed in the same batch
            node.feeds.add_subscriber(sub)
            replay = None if since is None else feeds.resume(kind, key, since)
            if replay is not None:
                for text in replay:
                    self.notify_text(sub_id, text)
            elif kind == "book":
                self.notify(sub_id, feeds.book_snapshot(key))
            elif since is not None:
                self.notify(sub_id, feeds.reset_message(kind))

        self.after_reply.append(start)
        return sub_id

    def unsubscribe(self, sub_id: str) -> bool:
        sub = self.subs.pop(sub_id, None)
        if sub is None:
            return False
        self.node.feeds.remove_subscriber(sub)
        self.node.metrics.subscriptions.dec()
        return True

    def close(self) -> None:
        for sub_id in list(self.subs):
            self.unsubscribe(sub_id)


class _SessionSubscriber(Subscriber):
    def __init__(self, sub_id: str, kind: str, key: Any, session: Session) -> None:
        super().__init__(sub_id, kind, key)
        self.session = session

    def push(self, text: str) -> None:
        self.session.notify_text(self.sub_id, text)


class Server:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.app = web.Application(client_max_size=node.config.max_body_bytes + 1024)
        self.app.router.add_post("/", self.rpc)
        self.app.router.add_get("/ws", self.websocket)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_get("/openrpc.json", self.openrpc)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.sessions: set[Session] = set()
        self.connections: CounterDict[str] = CounterDict()
        self.ready = False

    def _ip(self, request: web.Request) -> str:
        return request.remote or "unknown"

    async def rpc(self, request: web.Request) -> web.Response:
        limit = self.node.config.max_body_bytes
        if request.content_type != _JSON:
            error = RpcError(RpcCode.INVALID_REQUEST, f"Content-Type must be {_JSON}")
            return self._json({"jsonrpc": "2.0", "id": None, "error": error.to_json()}, 415)
        if (request.content_length or 0) > limit:
            return self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():  # the whole body, however it arrives
            size += len(chunk)
            if size > limit:
                return self._too_large(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
        ctx = Context(self.node, self._ip(request))
        response = await handle_body(ctx, body)
        if response is None:
            return web.Response(status=204)
        return self._json(response, 200)

    def _too_large(self, limit: int) -> web.Response:
        self.node.metrics.rpc_errors.labels("BODY_TOO_LARGE").inc()
        error = RpcError(RpcCode.BODY_TOO_LARGE, f"the body is over {limit} bytes")
        return self._json({"jsonrpc": "2.0", "id": None, "error": error.to_json()}, 413)

    @staticmethod
    def _json(value: Any, status: int) -> web.Response:
        return web.Response(text=dumps(value), status=status, content_type=_JSON)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        node = self.node
        ip = self._ip(request)
        if self.connections[ip] >= node.config.max_connections_per_ip:
            error = RpcError(RpcCode.RATE_LIMITED, f"too many WebSocket connections from {ip}")
            return self._json({"jsonrpc": "2.0", "id": None, "error": error.to_json()}, 429)
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_FRAME, heartbeat=20)
        await ws.prepare(request)
        session = Session(node, ws)
        self.sessions.add(session)
        self.connections[ip] += 1
        node.metrics.ws_connections.inc()
        writer = asyncio.create_task(self._write(session))
        ctx = Context(node, ip, session)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    body = message.data.encode("utf-8", "surrogatepass")
                elif message.type == WSMsgType.BINARY:
                    body = message.data
                else:
                    break
                if not node.ip_limits.allow(ip):
                    error = RpcError(RpcCode.RATE_LIMITED, f"too many requests from {ip}")
                    session.send({"jsonrpc": "2.0", "id": None, "error": error.to_json()})
                    continue
                response = await handle_body(ctx, body)
                if response is not None:
                    session.send(response)
                pending, session.after_reply = session.after_reply, []
                for start in pending:
                    start()
        finally:
            session.close()
            self.sessions.discard(session)
            self.connections[ip] -= 1
            if self.connections[ip] <= 0:
                del self.connections[ip]
            node.metrics.ws_connections.dec()
            writer.cancel()
            await ws.close()
        return ws

    async def _write(self, session: Session) -> None:
        ws = session.ws
        try:
            while True:
                text = await session.queue.get()
                if text is None:
                    await ws.close(code=1008, message=b"too slow: resubscribe with since_seq")
                    return
                await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return

    async def health(self, request: web.Request) -> web.Response:
        node = self.node
        ok = self.ready and not node.stopping
        body = {"status": "ok" if ok else "unavailable", "height": node.store.tip.height}
        return self._json(body, 200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        data = generate_latest(self.node.metrics.registry)
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openrpc(self, request: web.Request) -> web.Response:
        return self._json(openrpc_document(), 200)

    async def start(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self.ready = True
        return self.port

    async def stop(self) -> None:
        self.ready = False
        for session in list(self.sessions):
            await session.ws.close(code=1001, message=b"node stopping")
        if self.runner is not None:
            await self.runner.cleanup()


async def serve(node: Node, announce: Callable[[str], None] | None = None) -> None:
    """Run the node until it stops (SIGTERM, SIGINT or ``exit_after_blocks``)."""
    # The state loaded at start is long-lived: frozen out of the cyclic collector's reach, and the
    # young generation collected less often. Measured: fewer and shorter pauses, more tx/s.
    tune_collector()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop)
    server = Server(node)
    host = node.config.rpc_host
    port = await server.start(host, node.config.rpc_port)
    base = f"http://{host}:{port}"
    lines = [
        f"strata node: chain {node.params.chain_id}, height {node.store.tip.height}, "
        f"data dir {node.config.data_dir}",
        f"  JSON-RPC   {base}/",
        f"  WebSocket  ws://{host}:{port}/ws",
        f"  health     {base}/health",
        f"  metrics    {base}/metrics",
        f"  OpenRPC    {base}/openrpc.json",
        f"rpc_url={base}/",
    ]
    for line in lines:
        (announce or _print)(line)
    posting = None
    if node.poster is not None:
        poster = node.poster
        posting = asyncio.create_task(poster.run(lambda: node.store, lambda: node.stopping))
    demo = None
    if node.config.demo:
        from strata.node.demo import run_demo

        demo = asyncio.create_task(run_demo(node))
    try:
        await node.run()
    finally:
        if demo is not None:
            demo.cancel()
        if posting is not None:  # post what is committed, for a while, then go
            try:
                await asyncio.wait_for(posting, timeout=15)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("stopped with blocks not yet posted", extra={"fields": {}})
        await server.stop()
        node.close()
        log.info("stopped", extra={"fields": {"height": node.store.tip.height}})


def _print(line: str) -> None:
    print(line, file=sys.stdout, flush=True)

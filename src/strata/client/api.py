"""Clients of a Strata node's JSON-RPC API (docs/api.md) and traders that sign for an account.

- :class:`Client` (blocking, ``httpx``) and :class:`AsyncClient` (``aiohttp``): :meth:`call`,
  :meth:`batch` and one typed helper per method of the API. An error reply raises
  :class:`~strata.client.errors.RpcError` (its ``code`` and ``name`` are the API's); a network
  failure raises the HTTP library's own exception (``httpx.HTTPError``, ``aiohttp.ClientError``).
- :class:`Trader` and :class:`AsyncTrader`: build actions from decimal strings (converted exactly
  by the market's tick and lot: an off-grid price raises ``RpcError(OFF_GRID)`` before anything
  is sent), sign them with a wallet (or an approved agent key) and send the canonical bytes with
  ``strata_sendRawTransaction``.

Prices, sizes and amounts are decimal strings (``"50010.5"``); ``Decimal`` and ``int`` are
accepted and converted exactly; a ``float`` is refused (``RpcError(INVALID_PARAMS)``).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urljoin

import aiohttp
import httpx
import msgspec

from strata.client.errors import RpcCode, RpcError
from strata.client.markets import MarketInfo, find_market, market_info_from_json
from strata.client.signing import AgentKey, Wallet
from strata.client.wire import action_from_json, read_hex, to_hex
from strata.core.signatures import ADDRESS_LENGTH, ZERO_ADDRESS, compute_transaction_digest
from strata.stf.transactions import (
    Action,
    ApproveAgent,
    BulkCancel,
    BulkModify,
    BulkPlace,
    CancelAll,
    CancelOrder,
    CancelTrigger,
    ModifyOrder,
    MoveIsolatedMargin,
    PlaceOrder,
    PlaceTrigger,
    RevokeAgent,
    ScheduleCancel,
    SetMarginMode,
    SignedTransaction,
    Transfer,
    Withdraw,
    encode_action,
    encode_transaction,
)

DEFAULT_URL: Final = "http://127.0.0.1:8545"
MAX_BATCH_REQUESTS: Final = 50
"""Requests per HTTP batch the node accepts; :meth:`Client.batch` splits longer lists."""
MAX_TRANSACTIONS_PER_CALL: Final = 1000
MAX_BODY_BYTES: Final = 256 * 1024
_BODY_BUDGET: Final = 240 * 1024
"""Bytes of transaction hex per ``strata_sendRawTransactions`` call (under the body limit)."""

WALLET_ONLY_ACTIONS: Final = (ApproveAgent, RevokeAgent, Transfer, Withdraw)
"""Actions an agent key may not sign: a trader signs them with its wallet."""

FINAL_STATUSES: Final = ("included", "rejected")

DecimalLike = str | Decimal | int
"""A price, size or amount: a decimal string, or a ``Decimal`` or ``int`` (never a float)."""

Bytesish = bytes | str
"""Bytes, or the same as ``0x`` hex."""


# --- helpers shared by both clients --------------------------------------------------------------


def _hex_arg(value: Bytesish) -> str:
    if isinstance(value, bytes | bytearray):
        return to_hex(bytes(value))
    if isinstance(value, str) and value.startswith("0x"):
        return value
    raise ValueError(f"expected bytes or 0x-prefixed hex, got {value!r}")


def _decimal_text(value: object, what: str) -> object:
    """A price, size or amount as the decimal string the wire format wants (floats refused)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be finite, got {value}")
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise RpcError(
            RpcCode.INVALID_PARAMS, f"{what} must be a decimal string, not a float ({value!r})"
        )
    return value  # a string, or something the wire parser refuses with a clear message


def _order_params(
    order_id: int | None, account: Bytesish | None, client_id: int | None
) -> dict[str, Any]:
    if order_id is not None and account is None and client_id is None:
        return {"order_id": order_id}
    if order_id is None and account is not None and client_id is not None:
        return {"account": _hex_arg(account), "client_id": client_id}
    raise ValueError("pass either order_id, or account and client_id")


def _request(request_id: int, method: str, params: Sequence[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def _decode_body(status: int, body: bytes) -> Any:
    """The JSON of a reply; a body that is not JSON raises ``RpcError(INTERNAL_ERROR)``."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body[:200].decode("utf-8", "replace")
        raise RpcError(
            RpcCode.INTERNAL_ERROR, f"HTTP {status}, not JSON-RPC: {text}", {"http_status": status}
        ) from None


def _result(reply: Any) -> Any:
    if not isinstance(reply, dict):
        raise RpcError(RpcCode.INTERNAL_ERROR, f"malformed reply {reply!r}")
    error = reply.get("error")
    if error is not None:
        raise RpcError.from_json(error if isinstance(error, dict) else {"message": error})
    return reply.get("result")


def _batch_results(requests: list[dict[str, Any]], replies: Any, return_errors: bool) -> list[Any]:
    if not isinstance(replies, list):
        _result(replies)  # one error object for the whole batch: raise it
        raise RpcError(RpcCode.INTERNAL_ERROR, "a batch reply must be a list")
    by_id = {reply.get("id"): reply for reply in replies if isinstance(reply, dict)}
    results: list[Any] = []
    for request in requests:
        reply = by_id.get(request["id"])
        try:
            if reply is None:
                raise RpcError(RpcCode.INTERNAL_ERROR, f"no reply to {request['method']}")
            results.append(_result(reply))
        except RpcError as exc:
            if not return_errors:
                raise
            results.append(exc)
    return results


def _send_outcomes(entries: Any) -> list[str | RpcError]:
    if not isinstance(entries, list):
        raise RpcError(RpcCode.INTERNAL_ERROR, f"malformed reply {entries!r}")
    outcomes: list[str | RpcError] = []
    for entry in entries:
        error = entry.get("error") if isinstance(entry, dict) else None
        if isinstance(error, dict):
            outcomes.append(RpcError.from_json(error))
        else:
            outcomes.append(str(entry["hash"]))
    return outcomes


def _tx_chunks(txs: Sequence[str]) -> list[list[str]]:
    """Split hex transactions into calls under the node's count and body-size limits."""
    chunks: list[list[str]] = [[]]
    size = 0
    for tx in txs:
        if chunks[-1] and (
            len(chunks[-1]) >= MAX_TRANSACTIONS_PER_CALL or size + len(tx) > _BODY_BUDGET
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(tx)
        size += len(tx) + 3
    return chunks if chunks[-1] else []


def _check_final(tx_hash: str, result: dict[str, Any]) -> dict[str, Any]:
    """A final ``strata_getTransaction`` result; a rejected transaction raises its error."""
    if result.get("status") == "rejected":
        error = result.get("error")
        if isinstance(error, dict):
            raise RpcError.from_json(error)
        raise RpcError(RpcCode.INTERNAL_ERROR, f"transaction {tx_hash} rejected: {error!r}")
    return result


def _timeout_error(tx_hash: str, timeout: float, last: Any) -> TimeoutError:
    status = last.get("status") if isinstance(last, dict) else None
    return TimeoutError(f"transaction {tx_hash} still {status!r} after {timeout} s")


# --- the blocking client ---------------------------------------------------------------------


class Client:
    """A blocking JSON-RPC client over HTTP (one keep-alive ``httpx.Client``; thread-safe).

    ``url`` is the node's base URL (default ``http://127.0.0.1:8545``); ``timeout`` is seconds
    per HTTP request. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10) -> None:
        self.url = url
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout, headers={"Content-Type": "application/json"})
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, payload: Any) -> Any:
        response = self._http.post(self.url, content=msgspec.json.encode(payload))
        return _decode_body(response.status_code, response.content)

    def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params``; return its ``result``.

        Raises :class:`RpcError` if the node answers with an error.
        """
        return _result(self._post(_request(next(self._ids), method, params)))

    def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """Call several methods at once; results in the order of ``calls``.

        Sent as JSON-RPC batches of at most 50. The first error (in call order) is raised, unless
        ``return_errors`` puts each error (:class:`RpcError`) in its place in the list.
        """
        results: list[Any] = []
        for start in range(0, len(calls), MAX_BATCH_REQUESTS):
            chunk = calls[start : start + MAX_BATCH_REQUESTS]
            requests = [_request(next(self._ids), method, params) for method, params in chunk]
            results.extend(_batch_results(requests, self._post(requests), return_errors))
        return results

    # --- typed helpers, one per method of docs/api.md ---

    def markets(self) -> list[dict[str, Any]]:
        """``strata_getMarkets``: every market with its units and ``mark_price``."""
        result: list[dict[str, Any]] = self.call("strata_getMarkets")
        return result

    def market_infos(self) -> dict[int, MarketInfo]:
        """The markets as :class:`MarketInfo` by id (for :mod:`strata.client.wire`)."""
        return {info.market_id: info for info in map(market_info_from_json, self.markets())}

    def book(self, market: str | int, depth: int = 20) -> dict[str, Any]:
        """``strata_getBook``: the top ``depth`` (at most 100) levels of each side."""
        result: dict[str, Any] = self.call("strata_getBook", market, depth)
        return result

    def trades(self, market: str | int, limit: int = 100) -> list[dict[str, Any]]:
        """``strata_getTrades``: the last ``limit`` (at most 1000) trades, newest first."""
        result: list[dict[str, Any]] = self.call("strata_getTrades", market, limit)
        return result

    def account(self, address: Bytesish) -> dict[str, Any]:
        """``strata_getAccount``: collateral, margins and ``margin_ratio``, positions, open
        orders, triggers, the dead-man switch (``cancel_at_ms``), agents, nonces."""
        result: dict[str, Any] = self.call("strata_getAccount", _hex_arg(address))
        return result

    def risk(self) -> dict[str, Any]:
        """``strata_getRisk``: the insurance fund (cash, positions, equity), recorded bad debt,
        and each market's open interest and cap."""
        result: dict[str, Any] = self.call("strata_getRisk")
        return result

    def transaction(self, tx_hash: Bytesish) -> dict[str, Any]:
        """``strata_getTransaction``: ``status`` pending, included, rejected or unknown."""
        result: dict[str, Any] = self.call("strata_getTransaction", _hex_arg(tx_hash))
        return result

    def order(
        self,
        market: str | int,
        order_id: int | None = None,
        account: Bytesish | None = None,
        client_id: int | None = None,
    ) -> dict[str, Any]:
        """``strata_getOrder`` by ``order_id``, or by ``account`` and ``client_id``
        (``ValueError`` for any other combination; ``RpcError(NOT_FOUND)`` if none)."""
        query = _order_params(order_id, account, client_id)
        result: dict[str, Any] = self.call("strata_getOrder", market, query)
        return result

    def block_number(self) -> int:
        """``strata_blockNumber``: the committed height."""
        return int(self.call("strata_blockNumber"))

    def header(self, height: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("strata_getHeader", height)
        return result

    def block(self, height: int, full: bool = False) -> dict[str, Any]:
        """``strata_getBlock``: transaction hashes, or raw transactions with ``full``."""
        result: dict[str, Any] = self.call("strata_getBlock", height, full)
        return result

    def receipts(self, height: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("strata_getReceipts", height)
        return result

    def proof(self, key: Bytesish, height: int | None = None) -> dict[str, Any]:
        """``strata_getProof`` of a state key at ``height`` (default: the latest)."""
        params: list[Any] = [_hex_arg(key)] if height is None else [_hex_arg(key), height]
        result: dict[str, Any] = self.call("strata_getProof", *params)
        return result

    def status(self) -> dict[str, Any]:
        """``strata_getStatus``: ``chain_id``, ``height``, ``mempool``, ``bridge_address``, ..."""
        result: dict[str, Any] = self.call("strata_getStatus")
        return result

    def faucet(self, address: Bytesish, amount: DecimalLike) -> dict[str, Any]:
        """``strata_faucet`` (devnet only): deposit ``amount`` USDC, credited next block."""
        amount_text = _decimal_text(amount, "amount")
        result: dict[str, Any] = self.call("strata_faucet", _hex_arg(address), amount_text)
        return result

    def discover(self) -> dict[str, Any]:
        """``rpc.discover``: the OpenRPC document."""
        result: dict[str, Any] = self.call("rpc.discover")
        return result

    def health(self) -> dict[str, Any]:
        """``GET /health``: ``{"status", "height"}`` (also while the node answers 503)."""
        response = self._http.get(urljoin(self.url, "/health"))
        result: dict[str, Any] = _decode_body(response.status_code, response.content)
        return result

    def send_raw(self, tx: bytes) -> str:
        """``strata_sendRawTransaction`` of canonical transaction bytes; returns the 0x hash."""
        return str(self.call("strata_sendRawTransaction", to_hex(tx))["hash"])

    def send_raw_many(self, txs: Sequence[bytes]) -> list[str | RpcError]:
        """``strata_sendRawTransactions``: per transaction its hash or its :class:`RpcError`.

        Split into calls of at most 1000 transactions and under the node's body limit.
        """
        outcomes: list[str | RpcError] = []
        for chunk in _tx_chunks([to_hex(tx) for tx in txs]):
            outcomes.extend(_send_outcomes(self.call("strata_sendRawTransactions", chunk)))
        return outcomes

    def send_transaction(self, tx_json: Mapping[str, Any]) -> str:
        """``strata_sendTransaction`` of a JSON transaction (:func:`wire.transaction_to_json`)."""
        return str(self.call("strata_sendTransaction", dict(tx_json))["hash"])

    def send_transactions(self, txs: Sequence[Mapping[str, Any]]) -> list[str | RpcError]:
        outcomes: list[str | RpcError] = []
        for start in range(0, len(txs), MAX_TRANSACTIONS_PER_CALL):
            chunk = [dict(tx) for tx in txs[start : start + MAX_TRANSACTIONS_PER_CALL]]
            outcomes.extend(_send_outcomes(self.call("strata_sendTransactions", chunk)))
        return outcomes

    def wait_for_transaction(
        self, tx_hash: Bytesish, timeout: float = 30, poll_interval: float = 0.1
    ) -> dict[str, Any]:
        """Poll ``strata_getTransaction`` until ``status`` is ``included`` or ``rejected``;
        return that result. Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        result: dict[str, Any] = {}
        while True:
            result = self.transaction(tx_hash)
            if result.get("status") in FINAL_STATUSES:
                return result
            if time.monotonic() >= deadline:
                raise _timeout_error(str(tx_hash), timeout, result)
            time.sleep(poll_interval)


# --- the asynchronous client -------------------------------------------------------------------


class AsyncClient:
    """The asynchronous twin of :class:`Client` (one ``aiohttp.ClientSession``, created on first
    use inside the running loop). Use as ``async with AsyncClient(url) as client:`` or await
    :meth:`close`."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10) -> None:
        self.url = url
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "application/json"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _post(self, payload: Any) -> Any:
        async with self._http().post(self.url, data=msgspec.json.encode(payload)) as response:
            return _decode_body(response.status, await response.read())

    async def call(self, method: str, *params: Any) -> Any:
        """As :meth:`Client.call`."""
        return _result(await self._post(_request(next(self._ids), method, params)))

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """As :meth:`Client.batch`."""
        results: list[Any] = []
        for start in range(0, len(calls), MAX_BATCH_REQUESTS):
            chunk = calls[start : start + MAX_BATCH_REQUESTS]
            requests = [_request(next(self._ids), method, params) for method, params in chunk]
            results.extend(_batch_results(requests, await self._post(requests), return_errors))
        return results

    async def markets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("strata_getMarkets")
        return result

    async def market_infos(self) -> dict[int, MarketInfo]:
        return {info.market_id: info for info in map(market_info_from_json, await self.markets())}

    async def book(self, market: str | int, depth: int = 20) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getBook", market, depth)
        return result

    async def trades(self, market: str | int, limit: int = 100) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.call("strata_getTrades", market, limit)
        return result

    async def account(self, address: Bytesish) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getAccount", _hex_arg(address))
        return result

    async def risk(self) -> dict[str, Any]:
        """As :meth:`Client.risk`."""
        result: dict[str, Any] = await self.call("strata_getRisk")
        return result

    async def transaction(self, tx_hash: Bytesish) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getTransaction", _hex_arg(tx_hash))
        return result

    async def order(
        self,
        market: str | int,
        order_id: int | None = None,
        account: Bytesish | None = None,
        client_id: int | None = None,
    ) -> dict[str, Any]:
        query = _order_params(order_id, account, client_id)
        result: dict[str, Any] = await self.call("strata_getOrder", market, query)
        return result

    async def block_number(self) -> int:
        return int(await self.call("strata_blockNumber"))

    async def header(self, height: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getHeader", height)
        return result

    async def block(self, height: int, full: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getBlock", height, full)
        return result

    async def receipts(self, height: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getReceipts", height)
        return result

    async def proof(self, key: Bytesish, height: int | None = None) -> dict[str, Any]:
        params: list[Any] = [_hex_arg(key)] if height is None else [_hex_arg(key), height]
        result: dict[str, Any] = await self.call("strata_getProof", *params)
        return result

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("strata_getStatus")
        return result

    async def faucet(self, address: Bytesish, amount: DecimalLike) -> dict[str, Any]:
        amount_text = _decimal_text(amount, "amount")
        result: dict[str, Any] = await self.call("strata_faucet", _hex_arg(address), amount_text)
        return result

    async def discover(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("rpc.discover")
        return result

    async def health(self) -> dict[str, Any]:
        async with self._http().get(urljoin(self.url, "/health")) as response:
            result: dict[str, Any] = _decode_body(response.status, await response.read())
            return result

    async def send_raw(self, tx: bytes) -> str:
        return str((await self.call("strata_sendRawTransaction", to_hex(tx)))["hash"])

    async def send_raw_many(self, txs: Sequence[bytes]) -> list[str | RpcError]:
        outcomes: list[str | RpcError] = []
        for chunk in _tx_chunks([to_hex(tx) for tx in txs]):
            outcomes.extend(_send_outcomes(await self.call("strata_sendRawTransactions", chunk)))
        return outcomes

    async def send_transaction(self, tx_json: Mapping[str, Any]) -> str:
        return str((await self.call("strata_sendTransaction", dict(tx_json)))["hash"])

    async def send_transactions(self, txs: Sequence[Mapping[str, Any]]) -> list[str | RpcError]:
        outcomes: list[str | RpcError] = []
        for start in range(0, len(txs), MAX_TRANSACTIONS_PER_CALL):
            chunk = [dict(tx) for tx in txs[start : start + MAX_TRANSACTIONS_PER_CALL]]
            outcomes.extend(_send_outcomes(await self.call("strata_sendTransactions", chunk)))
        return outcomes

    async def wait_for_transaction(
        self, tx_hash: Bytesish, timeout: float = 30, poll_interval: float = 0.1
    ) -> dict[str, Any]:
        """As :meth:`Client.wait_for_transaction`."""
        deadline = time.monotonic() + timeout
        while True:
            result = await self.transaction(tx_hash)
            if result.get("status") in FINAL_STATUSES:
                return result
            if time.monotonic() >= deadline:
                raise _timeout_error(str(tx_hash), timeout, result)
            await asyncio.sleep(poll_interval)


# --- order specs and the signing core ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """One order of :meth:`Trader.bulk_place` (the fields of :meth:`Trader.place`)."""

    market: str | int
    side: str
    price: DecimalLike
    size: DecimalLike
    tif: str = "gtc"
    reduce_only: bool = False
    client_id: int | None = None
    expires_at_ms: int | None = None
    """Good-til-time: the first block whose timestamp (ms since the epoch) reaches it cancels
    the order if it still rests (reason ``expired``)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "side": self.side,
            "price": _decimal_text(self.price, "price"),
            "size": _decimal_text(self.size, "size"),
            "tif": self.tif,
            "reduce_only": self.reduce_only,
            "client_id": self.client_id,
            "expires_at_ms": self.expires_at_ms,
        }


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """A trigger (:meth:`Trader.place_trigger`): when the mark reaches ``trigger_price`` (at or
    above it with ``trigger_above``, else at or below), the reduce-only order ``side``,
    ``price``, ``size`` is placed in that block, before its transactions: ``tif`` ``"ioc"``
    (a market order, ``price`` its worst price) or ``"gtc"`` (a limit order that may rest)."""

    market: str | int
    side: str
    trigger_price: DecimalLike
    trigger_above: bool
    price: DecimalLike
    size: DecimalLike
    tif: str = "ioc"

    def to_json(self) -> dict[str, Any]:
        return {
            "market": self.market,
            "side": self.side,
            "trigger_price": _decimal_text(self.trigger_price, "trigger_price"),
            "trigger_above": self.trigger_above,
            "price": _decimal_text(self.price, "price"),
            "size": _decimal_text(self.size, "size"),
            "tif": self.tif,
        }


@dataclass(frozen=True, slots=True)
class CancelSpec:
    """One cancel of :meth:`Trader.bulk_cancel`: exactly one of ``order_id``/``client_id``."""

    market: str | int
    order_id: int | None = None
    client_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"market": self.market, **_ids(self.order_id, self.client_id)}


@dataclass(frozen=True, slots=True)
class ModifySpec:
    """One modify of :meth:`Trader.bulk_modify`: the order (by exactly one of ``order_id`` and
    ``client_id``) and its replacement."""

    market: str | int
    side: str
    price: DecimalLike
    size: DecimalLike
    order_id: int | None = None
    client_id: int | None = None
    tif: str = "gtc"
    reduce_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "market": self.market,
            **_ids(self.order_id, self.client_id),
            "side": self.side,
            "price": _decimal_text(self.price, "price"),
            "size": _decimal_text(self.size, "size"),
            "tif": self.tif,
            "reduce_only": self.reduce_only,
        }


def _ids(order_id: int | None, client_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if order_id is not None:
        out["order_id"] = order_id
    if client_id is not None:
        out["client_id"] = client_id
    return out


def _spec_json(spec: OrderSpec | CancelSpec | ModifySpec | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(spec, OrderSpec | CancelSpec | ModifySpec):
        return spec.to_json()
    out = dict(spec)
    for key in ("price", "size"):
        if key in out:
            out[key] = _decimal_text(out[key], key)
    return out


class _TraderCore:
    """What both traders share, without I/O: markets, chain identity, nonces, action building
    and signing."""

    def __init__(
        self,
        wallet: Wallet | None,
        agent: AgentKey | None = None,
        *,
        account: bytes | None = None,
        chain_id: int | None = None,
        bridge_address: bytes | None = None,
        markets: Mapping[int, MarketInfo] | None = None,
    ) -> None:
        if wallet is None and (agent is None or account is None):
            raise ValueError("a trader needs a wallet, or an agent key and the account address")
        self.wallet = wallet
        self.agent = agent
        resolved = account if account is not None else wallet.address if wallet else None
        assert resolved is not None
        self.account: bytes = resolved
        """The 20-byte account the trader acts for."""
        self.chain_id = chain_id
        self.bridge_address: bytes = ZERO_ADDRESS if bridge_address is None else bridge_address
        self.markets: dict[int, MarketInfo] = dict(markets or {})
        self._last_nonce = 0
        self._nonce_lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Whether the chain id and the markets are known (else they are fetched first)."""
        return self.chain_id is not None and bool(self.markets)

    def _configure(self, status: Mapping[str, Any], markets: Sequence[Mapping[str, Any]]) -> None:
        self.chain_id = int(status["chain_id"])
        bridge = status.get("bridge_address")
        self.bridge_address = (
            ZERO_ADDRESS if bridge is None else read_hex(bridge, "bridge_address", ADDRESS_LENGTH)
        )
        infos = [market_info_from_json(dict(entry)) for entry in markets]
        self.markets = {info.market_id: info for info in infos}

    def market(self, name: str | int) -> MarketInfo:
        """A market by symbol or id; ``RpcError(UNKNOWN_MARKET)`` if there is none."""
        return find_market(self.markets, name)

    def _action_markets(self) -> dict[int, MarketInfo]:
        """The markets the ``*_action`` builders convert with (an async trader must have been
        loaded: ``await trader.load()``, which its sending methods do themselves)."""
        if not self.markets:
            raise RuntimeError("the markets are not loaded yet: call load() first")
        return self.markets

    def next_nonce(self) -> int:
        """A fresh nonce: the clock in ms, or one above the last nonce if the clock has not moved
        (so nonces strictly increase, also across threads)."""
        with self._nonce_lock:
            nonce = max(time.time_ns() // 1_000_000, self._last_nonce + 1)
            self._last_nonce = nonce
            return nonce

    def sign_action(self, action: Action, nonce: int | None = None) -> bytes:
        """The canonical bytes of ``action`` signed for :attr:`account` with ``nonce``
        (default :meth:`next_nonce`).

        Signed by the agent key if the trader has one, except wallet-only actions (agents,
        transfers, withdrawals), which the wallet signs. Raises ``RuntimeError`` before the chain
        id is known and ``ValueError`` for a wallet-only action without a wallet.
        """
        if self.chain_id is None:
            raise RuntimeError("chain id unknown: load the trader first (trader.load())")
        if nonce is None:
            nonce = self.next_nonce()
        digest = compute_transaction_digest(
            self.chain_id, self.bridge_address, self.account, nonce, encode_action(action)
        )
        if self.agent is not None and not isinstance(action, WALLET_ONLY_ACTIONS):
            signature = self.agent.sign_digest(digest)
            tx = SignedTransaction(self.account, nonce, action, self.agent.public_key, signature)
        elif self.wallet is not None:
            tx = SignedTransaction(
                self.account, nonce, action, None, self.wallet.sign_digest(digest)
            )
        else:
            raise ValueError(f"{type(action).__name__} must be signed by the wallet")
        return encode_transaction(tx)

    # --- actions from decimal strings (exact: OFF_GRID, never rounded) ---

    def place_action(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        tif: str = "gtc",
        reduce_only: bool = False,
        client_id: int | None = None,
        expires_at_ms: int | None = None,
    ) -> PlaceOrder:
        """The :class:`PlaceOrder` of a limit order (good-til-time with ``expires_at_ms``).
        Raises ``RpcError``: ``OFF_GRID`` for a price off the tick or a size off the lot,
        ``UNKNOWN_MARKET``, ``INVALID_PARAMS``."""
        spec = OrderSpec(market, side, price, size, tif, reduce_only, client_id, expires_at_ms)
        action = action_from_json({"type": "place", **spec.to_json()}, self._action_markets())
        assert isinstance(action, PlaceOrder)
        return action

    def place_trigger_action(self, trigger: TriggerSpec) -> PlaceTrigger:
        """The :class:`PlaceTrigger` of ``trigger`` (``OFF_GRID`` and the like as
        :meth:`place_action`)."""
        obj = {"type": "place_trigger", **trigger.to_json()}
        action = action_from_json(obj, self._action_markets())
        assert isinstance(action, PlaceTrigger)
        return action

    def stop_trigger(
        self,
        kind: str,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        size: DecimalLike,
        price: DecimalLike | None = None,
    ) -> TriggerSpec:
        """A stop-loss (``kind`` ``"stop_loss"``) or take-profit (``"take_profit"``) that
        closes with a ``side`` order: a long's stop-loss sells when the mark falls to
        ``trigger_price``, its take-profit sells when the mark rises to it (a short's buy, the
        other way round). With ``price`` the order is an IOC limited at it; without, a market
        order (worst price: one tick for a sell, the market's highest price for a buy)."""
        if kind not in ("stop_loss", "take_profit"):
            raise ValueError(f"kind must be stop_loss or take_profit, got {kind!r}")
        if side not in ("buy", "sell"):
            raise RpcError(RpcCode.INVALID_PARAMS, f"side must be buy or sell, got {side!r}")
        is_buy = side == "buy"
        above = is_buy if kind == "stop_loss" else not is_buy
        if price is None:
            info = self.market(market)
            ticks = info.max_price_ticks if is_buy else 1
            price = info.ticks_to_price(ticks)
        return TriggerSpec(market, side, trigger_price, above, price, size, "ioc")

    def cancel_trigger_action(self, market: str | int, trigger_id: int) -> CancelTrigger:
        """Cancel one of the account's triggers that has not fired."""
        return CancelTrigger(self.market(market).market_id, trigger_id)

    def schedule_cancel_action(self, at_ms: int | None) -> ScheduleCancel:
        """Set the dead-man switch for ``at_ms`` (ms since the epoch; at least the chain's
        minimum delay after the block, else ``SCHEDULE_TOO_SOON``), or clear it (``None``)."""
        return ScheduleCancel(at_ms)

    def set_margin_mode_action(self, market: str | int, isolated: bool) -> SetMarginMode:
        """Trade ``market`` with isolated margin (``isolated``) or cross margin (the default);
        only without a position there (else the receipt's status is ``POSITION_OPEN``)."""
        obj = {"type": "set_margin_mode", "market": market, "isolated": isolated}
        action = action_from_json(obj, self._action_markets())
        assert isinstance(action, SetMarginMode)
        return action

    def move_isolated_margin_action(
        self, market: str | int, amount: DecimalLike
    ) -> MoveIsolatedMargin:
        """Move ``amount`` USDC from the cross-margin balance into the isolated position in
        ``market`` (negative: out of it, at most its ``isolated_margin.withdrawable``, else the
        receipt's status is ``INSUFFICIENT_FREE_COLLATERAL``; without an isolated position it is
        ``NOT_ISOLATED``). ``OFF_GRID`` beyond 6 decimals, ``INVALID_PARAMS`` for zero."""
        obj = {
            "type": "move_isolated_margin",
            "market": market,
            "amount": _decimal_text(amount, "amount"),
        }
        action = action_from_json(obj, self._action_markets())
        assert isinstance(action, MoveIsolatedMargin)
        return action

    def cancel_action(
        self, market: str | int, order_id: int | None = None, client_id: int | None = None
    ) -> CancelOrder:
        """The :class:`CancelOrder` of one order (exactly one of ``order_id``/``client_id``)."""
        spec = CancelSpec(market, order_id, client_id)
        action = action_from_json({"type": "cancel", **spec.to_json()}, self._action_markets())
        assert isinstance(action, CancelOrder)
        return action

    def cancel_all_action(self, market: str | int | None = None) -> CancelAll:
        """Cancel every open order in ``market``, or in every market (``None``)."""
        market_id = None if market is None else self.market(market).market_id
        return CancelAll(market_id)

    def modify_action(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        order_id: int | None = None,
        client_id: int | None = None,
        tif: str = "gtc",
        reduce_only: bool = False,
    ) -> ModifyOrder:
        """The :class:`ModifyOrder` replacing one order (by ``order_id`` or ``client_id``)."""
        spec = ModifySpec(market, side, price, size, order_id, client_id, tif, reduce_only)
        action = action_from_json({"type": "modify", **spec.to_json()}, self._action_markets())
        assert isinstance(action, ModifyOrder)
        return action

    def bulk_place_action(self, orders: Sequence[OrderSpec | Mapping[str, Any]]) -> BulkPlace:
        """Up to 64 orders, each an :class:`OrderSpec` or a ``place`` JSON object."""
        items = [_spec_json(order) for order in orders]
        action = action_from_json({"type": "bulk_place", "orders": items}, self._action_markets())
        assert isinstance(action, BulkPlace)
        return action

    def bulk_cancel_action(self, cancels: Sequence[CancelSpec | Mapping[str, Any]]) -> BulkCancel:
        items = [_spec_json(cancel) for cancel in cancels]
        action = action_from_json({"type": "bulk_cancel", "cancels": items}, self._action_markets())
        assert isinstance(action, BulkCancel)
        return action

    def bulk_modify_action(self, modifies: Sequence[ModifySpec | Mapping[str, Any]]) -> BulkModify:
        items = [_spec_json(modify) for modify in modifies]
        action = action_from_json(
            {"type": "bulk_modify", "modifies": items}, self._action_markets()
        )
        assert isinstance(action, BulkModify)
        return action

    def transfer_action(self, to: Bytesish, amount: DecimalLike) -> Transfer:
        """Move ``amount`` USDC (at most 6 decimals, else ``OFF_GRID``) to account ``to``."""
        obj = {"type": "transfer", "to": _hex_arg(to), "amount": _decimal_text(amount, "amount")}
        action = action_from_json(obj, self._action_markets())
        assert isinstance(action, Transfer)
        return action

    def withdraw_action(self, amount: DecimalLike, destination: Bytesish) -> Withdraw:
        """Withdraw ``amount`` USDC to ``destination`` on the settlement chain."""
        obj = {
            "type": "withdraw",
            "amount": _decimal_text(amount, "amount"),
            "destination": _hex_arg(destination),
        }
        action = action_from_json(obj, self._action_markets())
        assert isinstance(action, Withdraw)
        return action

    def approve_agent_action(self, agent_key: AgentKey, valid_until_ms: int) -> ApproveAgent:
        """Approve ``agent_key`` until ``valid_until_ms`` (ms since the epoch), with its consent."""
        if self.chain_id is None:
            raise RuntimeError("chain id unknown: load the trader first (trader.load())")
        return agent_key.approve_for(
            self.account, valid_until_ms, self.chain_id, self.bridge_address
        )


def _public_key(agent: AgentKey | Bytesish) -> bytes:
    if isinstance(agent, AgentKey):
        return agent.public_key
    return agent if isinstance(agent, bytes) else bytes.fromhex(_hex_arg(agent)[2:])


class Trader(_TraderCore):
    """Signs and sends transactions for one account over a :class:`Client`.

    ``wallet`` signs (or, with ``agent``, the approved agent key signs for the wallet's account;
    pass ``wallet=None, account=...`` for an agent-only bot, which then cannot sign wallet-only
    actions). The chain id, bridge address and markets come from ``strata_getStatus`` and
    ``strata_getMarkets`` on first use (:meth:`load`), unless given.

    Every sending method returns the transaction hash (``str``, ``0x`` hex) once the node has
    admitted it; with ``wait=True`` it waits (up to ``timeout`` seconds) for the block and returns
    the ``strata_getTransaction`` result (``status == "included"``; the receipt tells whether it
    executed), raising ``RpcError`` with the chain's code if the transaction was rejected.
    Admission errors raise ``RpcError`` at once (``OFF_GRID`` before anything is sent).
    """

    def __init__(
        self,
        client: Client,
        wallet: Wallet | None,
        agent: AgentKey | None = None,
        *,
        account: bytes | None = None,
        chain_id: int | None = None,
        bridge_address: bytes | None = None,
        markets: Mapping[int, MarketInfo] | None = None,
    ) -> None:
        super().__init__(
            wallet,
            agent,
            account=account,
            chain_id=chain_id,
            bridge_address=bridge_address,
            markets=markets,
        )
        self.client = client

    def load(self) -> None:
        """Fetch the chain id, bridge address and markets (again)."""
        status, markets = self.client.batch([("strata_getStatus", []), ("strata_getMarkets", [])])
        self._configure(status, markets)

    def _ready(self) -> None:
        if not self.ready:
            self.load()

    def market(self, name: str | int) -> MarketInfo:
        """A market by symbol or id (loading the markets first if needed); ``RpcError``
        ``UNKNOWN_MARKET`` if there is none."""
        self._ready()
        return super().market(name)

    def _action_markets(self) -> dict[int, MarketInfo]:
        self._ready()
        return self.markets

    def sign_action(self, action: Action, nonce: int | None = None) -> bytes:
        """As :meth:`_TraderCore.sign_action`, loading the chain id first if needed: the canonical
        signed bytes, ready for :meth:`Client.send_raw` (the load generator pre-signs with it)."""
        self._ready()
        return super().sign_action(action, nonce)

    def submit(self, action: Action, *, wait: bool = False, timeout: float = 30) -> Any:
        """Sign ``action`` with a fresh nonce and send it; see the class docstring for the
        result."""
        tx_hash = self.client.send_raw(self.sign_action(action))
        if not wait:
            return tx_hash
        return _check_final(tx_hash, self.client.wait_for_transaction(tx_hash, timeout))

    def place(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        tif: str = "gtc",
        reduce_only: bool = False,
        client_id: int | None = None,
        *,
        expires_at_ms: int | None = None,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Place a limit order: ``side`` ``"buy"``/``"sell"``, ``price`` in USDC per unit,
        ``size`` in base units, ``tif`` ``gtc``/``ioc``/``fok``/``post_only``; with
        ``expires_at_ms`` (ms since the epoch, after the block's timestamp, else
        ``ORDER_EXPIRED``) a resting order is canceled by the first block that reaches it."""
        self._ready()
        action = self.place_action(
            market, side, price, size, tif, reduce_only, client_id, expires_at_ms
        )
        return self.submit(action, wait=wait, timeout=timeout)

    def place_trigger(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        trigger_above: bool,
        price: DecimalLike,
        size: DecimalLike,
        tif: str = "ioc",
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Place a trigger (see :class:`TriggerSpec`); its id is in the receipt's
        ``trigger_update`` event (``status`` ``placed``)."""
        self._ready()
        spec = TriggerSpec(market, side, trigger_price, trigger_above, price, size, tif)
        return self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    def stop_loss(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        size: DecimalLike,
        price: DecimalLike | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """A stop-loss closing with a ``side`` order (``"sell"`` for a long: fires when the
        mark falls to ``trigger_price``); see :meth:`stop_trigger`."""
        spec = self.stop_trigger("stop_loss", market, side, trigger_price, size, price)
        return self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    def take_profit(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        size: DecimalLike,
        price: DecimalLike | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """A take-profit closing with a ``side`` order (``"sell"`` for a long: fires when the
        mark rises to ``trigger_price``); see :meth:`stop_trigger`."""
        spec = self.stop_trigger("take_profit", market, side, trigger_price, size, price)
        return self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    def cancel_trigger(
        self, market: str | int, trigger_id: int, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Cancel a trigger that has not fired."""
        self._ready()
        action = self.cancel_trigger_action(market, trigger_id)
        return self.submit(action, wait=wait, timeout=timeout)

    def schedule_cancel(self, at_ms: int | None, *, wait: bool = False, timeout: float = 30) -> Any:
        """Set (or, with ``None``, clear) the dead-man switch: unless renewed, the first block
        whose timestamp reaches ``at_ms`` cancels every open order and trigger of the account."""
        return self.submit(self.schedule_cancel_action(at_ms), wait=wait, timeout=timeout)

    def set_margin_mode(
        self, market: str | int, isolated: bool, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Trade ``market`` isolated (``True``) or cross (``False``): an isolated position keeps
        its own cash, is margined and liquidated alone, and loses at most that cash (docs/api.md,
        "Isolated margin"). Only without a position in the market (else ``POSITION_OPEN``)."""
        self._ready()
        action = self.set_margin_mode_action(market, isolated)
        return self.submit(action, wait=wait, timeout=timeout)

    def move_isolated_margin(
        self, market: str | int, amount: DecimalLike, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Move ``amount`` USDC into the isolated position in ``market`` (negative: out of it);
        see :meth:`move_isolated_margin_action`."""
        self._ready()
        action = self.move_isolated_margin_action(market, amount)
        return self.submit(action, wait=wait, timeout=timeout)

    def cancel(
        self,
        market: str | int,
        order_id: int | None = None,
        client_id: int | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Cancel one order by ``order_id`` or by ``client_id`` (exactly one)."""
        self._ready()
        action = self.cancel_action(market, order_id, client_id)
        return self.submit(action, wait=wait, timeout=timeout)

    def cancel_all(
        self, market: str | int | None = None, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Cancel every open order in ``market``, or in every market."""
        self._ready()
        return self.submit(self.cancel_all_action(market), wait=wait, timeout=timeout)

    def modify(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        order_id: int | None = None,
        client_id: int | None = None,
        tif: str = "gtc",
        reduce_only: bool = False,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Replace an order (by ``order_id`` or ``client_id``) with a new price, size and side."""
        self._ready()
        action = self.modify_action(
            market, side, price, size, order_id, client_id, tif, reduce_only
        )
        return self.submit(action, wait=wait, timeout=timeout)

    def bulk_place(
        self,
        orders: Sequence[OrderSpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Place up to 64 orders under one signature."""
        self._ready()
        return self.submit(self.bulk_place_action(orders), wait=wait, timeout=timeout)

    def bulk_cancel(
        self,
        cancels: Sequence[CancelSpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Cancel up to 64 orders under one signature."""
        self._ready()
        return self.submit(self.bulk_cancel_action(cancels), wait=wait, timeout=timeout)

    def bulk_modify(
        self,
        modifies: Sequence[ModifySpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Modify up to 64 orders under one signature."""
        self._ready()
        return self.submit(self.bulk_modify_action(modifies), wait=wait, timeout=timeout)

    def transfer(
        self, to: Bytesish, amount: DecimalLike, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Transfer ``amount`` USDC to account ``to`` (wallet-signed)."""
        self._ready()
        return self.submit(self.transfer_action(to, amount), wait=wait, timeout=timeout)

    def withdraw(
        self,
        amount: DecimalLike,
        destination: Bytesish,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Withdraw ``amount`` USDC to ``destination`` (wallet-signed)."""
        self._ready()
        action = self.withdraw_action(amount, destination)
        return self.submit(action, wait=wait, timeout=timeout)

    def approve_agent(
        self,
        agent_key: AgentKey,
        valid_until_ms: int,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """Approve ``agent_key`` to trade for the account until ``valid_until_ms``."""
        self._ready()
        action = self.approve_agent_action(agent_key, valid_until_ms)
        return self.submit(action, wait=wait, timeout=timeout)

    def revoke_agent(
        self, agent: AgentKey | Bytesish, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """Revoke an agent key (an :class:`AgentKey` or its 32-byte public key)."""
        self._ready()
        return self.submit(RevokeAgent(_public_key(agent)), wait=wait, timeout=timeout)


class AsyncTrader(_TraderCore):
    """The asynchronous twin of :class:`Trader` over an :class:`AsyncClient`.

    Await :meth:`load` before calling :meth:`sign_action` directly (the sending methods load on
    first use).
    """

    def __init__(
        self,
        client: AsyncClient,
        wallet: Wallet | None,
        agent: AgentKey | None = None,
        *,
        account: bytes | None = None,
        chain_id: int | None = None,
        bridge_address: bytes | None = None,
        markets: Mapping[int, MarketInfo] | None = None,
    ) -> None:
        super().__init__(
            wallet,
            agent,
            account=account,
            chain_id=chain_id,
            bridge_address=bridge_address,
            markets=markets,
        )
        self.client = client

    async def load(self) -> None:
        """Fetch the chain id, bridge address and markets (again)."""
        status, markets = await self.client.batch(
            [("strata_getStatus", []), ("strata_getMarkets", [])]
        )
        self._configure(status, markets)

    async def _ready(self) -> None:
        if not self.ready:
            await self.load()

    async def submit(self, action: Action, *, wait: bool = False, timeout: float = 30) -> Any:
        """As :meth:`Trader.submit`."""
        await self._ready()
        tx_hash = await self.client.send_raw(self.sign_action(action))
        if not wait:
            return tx_hash
        return _check_final(tx_hash, await self.client.wait_for_transaction(tx_hash, timeout))

    async def place(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        tif: str = "gtc",
        reduce_only: bool = False,
        client_id: int | None = None,
        *,
        expires_at_ms: int | None = None,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """As :meth:`Trader.place`."""
        await self._ready()
        action = self.place_action(
            market, side, price, size, tif, reduce_only, client_id, expires_at_ms
        )
        return await self.submit(action, wait=wait, timeout=timeout)

    async def place_trigger(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        trigger_above: bool,
        price: DecimalLike,
        size: DecimalLike,
        tif: str = "ioc",
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """As :meth:`Trader.place_trigger`."""
        await self._ready()
        spec = TriggerSpec(market, side, trigger_price, trigger_above, price, size, tif)
        return await self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    async def stop_loss(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        size: DecimalLike,
        price: DecimalLike | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """As :meth:`Trader.stop_loss`."""
        await self._ready()
        spec = self.stop_trigger("stop_loss", market, side, trigger_price, size, price)
        return await self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    async def take_profit(
        self,
        market: str | int,
        side: str,
        trigger_price: DecimalLike,
        size: DecimalLike,
        price: DecimalLike | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        """As :meth:`Trader.take_profit`."""
        await self._ready()
        spec = self.stop_trigger("take_profit", market, side, trigger_price, size, price)
        return await self.submit(self.place_trigger_action(spec), wait=wait, timeout=timeout)

    async def cancel_trigger(
        self, market: str | int, trigger_id: int, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        await self._ready()
        action = self.cancel_trigger_action(market, trigger_id)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def schedule_cancel(
        self, at_ms: int | None, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        return await self.submit(self.schedule_cancel_action(at_ms), wait=wait, timeout=timeout)

    async def set_margin_mode(
        self, market: str | int, isolated: bool, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """As :meth:`Trader.set_margin_mode`."""
        await self._ready()
        action = self.set_margin_mode_action(market, isolated)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def move_isolated_margin(
        self, market: str | int, amount: DecimalLike, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        """As :meth:`Trader.move_isolated_margin`."""
        await self._ready()
        action = self.move_isolated_margin_action(market, amount)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def cancel(
        self,
        market: str | int,
        order_id: int | None = None,
        client_id: int | None = None,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        action = self.cancel_action(market, order_id, client_id)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def cancel_all(
        self, market: str | int | None = None, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        await self._ready()
        return await self.submit(self.cancel_all_action(market), wait=wait, timeout=timeout)

    async def modify(
        self,
        market: str | int,
        side: str,
        price: DecimalLike,
        size: DecimalLike,
        order_id: int | None = None,
        client_id: int | None = None,
        tif: str = "gtc",
        reduce_only: bool = False,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        action = self.modify_action(
            market, side, price, size, order_id, client_id, tif, reduce_only
        )
        return await self.submit(action, wait=wait, timeout=timeout)

    async def bulk_place(
        self,
        orders: Sequence[OrderSpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        return await self.submit(self.bulk_place_action(orders), wait=wait, timeout=timeout)

    async def bulk_cancel(
        self,
        cancels: Sequence[CancelSpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        return await self.submit(self.bulk_cancel_action(cancels), wait=wait, timeout=timeout)

    async def bulk_modify(
        self,
        modifies: Sequence[ModifySpec | Mapping[str, Any]],
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        return await self.submit(self.bulk_modify_action(modifies), wait=wait, timeout=timeout)

    async def transfer(
        self, to: Bytesish, amount: DecimalLike, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        await self._ready()
        return await self.submit(self.transfer_action(to, amount), wait=wait, timeout=timeout)

    async def withdraw(
        self,
        amount: DecimalLike,
        destination: Bytesish,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        action = self.withdraw_action(amount, destination)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def approve_agent(
        self,
        agent_key: AgentKey,
        valid_until_ms: int,
        *,
        wait: bool = False,
        timeout: float = 30,
    ) -> Any:
        await self._ready()
        action = self.approve_agent_action(agent_key, valid_until_ms)
        return await self.submit(action, wait=wait, timeout=timeout)

    async def revoke_agent(
        self, agent: AgentKey | Bytesish, *, wait: bool = False, timeout: float = 30
    ) -> Any:
        await self._ready()
        return await self.submit(RevokeAgent(_public_key(agent)), wait=wait, timeout=timeout)


__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "AsyncTrader",
    "CancelSpec",
    "Client",
    "ModifySpec",
    "OrderSpec",
    "Trader",
    "TriggerSpec",
]

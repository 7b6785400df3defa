"""JSON-RPC 2.0: strict parsing, the method table, and every method's handler (docs/api.md).

Parsing refuses what a lenient parser would guess at: invalid UTF-8, duplicate keys, nesting
deeper than 8, and any non-integer number (``1.0``, ``1e3``, ``NaN``, ``-0.0``): amounts travel as
decimal strings and ids as integers. Each handler validates its params and raises
:class:`RpcError` with a stable code; nothing a request does can change state except admitting a
transaction (or, on a devnet, queueing a faucet deposit).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from strata.adapters.chain_store import StoreError
from strata.client.errors import RpcCode, RpcError
from strata.client.feeds import book_checksum
from strata.client.markets import (
    MarketInfo,
    find_market,
    format_units,
    quote_to_usdc,
    usdc_to_quote,
)
from strata.client.wire import TIF_BY_CODE, event_to_json, transaction_from_json
from strata.core.units import PPM
from strata.modules import clearing, collateral, liquidation, oracle, triggers
from strata.modules.accounts.state import get_account_agents, get_agent, get_nonces
from strata.modules.book.types import OrderReason, OrderStatus
from strata.modules.clearing import get_positions
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.margin import AccountRisk
from strata.modules.markets import MarketStatus
from strata.node.feeds import TRADES_KEPT
from strata.node.index import OrderOrigin
from strata.node.node import Node
from strata.state.store import State
from strata.stf.block import Header, compute_header_hash
from strata.stf.transactions import (
    Deposit,
    OraclePrice,
    compute_transaction_hash,
    encode_transaction,
)
from strata.stf.transition import get_account_risk, get_isolated_risk

MAX_DEPTH = 8
MAX_INT = 1 << 127
Handler = Callable[["Context", list[Any]], Awaitable[Any]]


@dataclass
class Context:
    """Who is calling: the node, the caller's IP, and the WebSocket session if any."""

    node: Node
    ip: str
    session: Any = None


# ---------------------------------------------------------------------- parsing


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text}: use an integer or a decimal string")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > deepest:
                deepest = level
                if deepest > MAX_DEPTH:
                    return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_body(body: bytes) -> Any:
    """Parse a request body strictly; ``RpcError(PARSE_ERROR)`` with the reason."""
    try:
        text = body.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError:
        raise RpcError(RpcCode.PARSE_ERROR, "the body is not valid UTF-8") from None
    except RecursionError:
        raise RpcError(RpcCode.PARSE_ERROR, f"JSON nested deeper than {MAX_DEPTH}") from None
    except ValueError as error:
        raise RpcError(RpcCode.PARSE_ERROR, f"invalid JSON: {error}") from None
    if _depth(value) > MAX_DEPTH:
        raise RpcError(RpcCode.PARSE_ERROR, f"JSON nested deeper than {MAX_DEPTH}")
    return value


# ---------------------------------------------------------------------- params


def _params(params: list[Any], low: int, high: int) -> list[Any]:
    if not low <= len(params) <= high:
        want = str(low) if low == high else f"{low} to {high}"
        raise RpcError(RpcCode.INVALID_PARAMS, f"expected {want} params, got {len(params)}")
    return params + [None] * (high - len(params))


def _int(value: Any, what: str, low: int = 0, high: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be in [{low}, {high}], got {value}")
    return value


def _hex(value: Any, what: str, length: int | None = None, max_length: int = 65_536) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be a 0x-prefixed hex string")
    if len(value) > 2 + 2 * max_length:
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} is longer than {max_length} bytes")
    try:
        data = bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} is not valid hex") from None
    if length is not None and len(data) != length:
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be {length} bytes, got {len(data)}")
    return data


def _list(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be a list")
    if len(value) > limit:
        raise RpcError(RpcCode.BATCH_TOO_LARGE, f"{what}: at most {limit} items, got {len(value)}")
    return value


def _object(value: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise RpcError(RpcCode.INVALID_PARAMS, f"{what}: unknown field(s) {sorted(unknown)}")
    return value


def _market(node: Node, value: Any) -> MarketInfo:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RpcError(RpcCode.INVALID_PARAMS, "market must be a symbol or an integer id")
    return find_market(node.markets, value)


def _height(node: Node, value: Any) -> int:
    height = _int(value, "height", 0, (1 << 63) - 1)
    if height > node.store.tip.height or height < node.store.base_height:
        raise RpcError(
            RpcCode.HEIGHT_UNAVAILABLE,
            f"height {height} is not available (committed: {node.store.base_height}.."
            f"{node.store.tip.height})",
        )
    return height


def _hexs(data: bytes) -> str:
    return "0x" + data.hex()


# ---------------------------------------------------------------------- methods

METHODS: dict[str, Handler] = {}
DESCRIPTIONS: dict[str, tuple[str, list[tuple[str, str, bool]], str]] = {}
"""method -> (summary, [(param, JSON schema type, required)], result description): the source
of the OpenRPC document."""


def method(
    name: str, summary: str, params: list[tuple[str, str, bool]], result: str
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name] = handler
        DESCRIPTIONS[name] = (summary, params, result)
        return handler

    return register


async def _submit(ctx: Context, datas: list[bytes]) -> list[dict[str, Any]]:
    if not ctx.node.ip_limits.allow(ctx.ip, 1 + len(datas) / 40):
        raise RpcError(RpcCode.RATE_LIMITED, f"too many requests from {ctx.ip}")
    return await ctx.node.submit(datas)


def _single(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        raise RpcError.from_json(result["error"])
    return result


@method(
    "strata_sendRawTransaction",
    "Submit one signed transaction (canonical bytes, hex).",
    [("transaction", "string", True)],
    "{hash}",
)
async def send_raw_transaction(ctx: Context, params: list[Any]) -> Any:
    (raw,) = _params(params, 1, 1)
    return _single((await _submit(ctx, [_hex(raw, "transaction", max_length=16_384)]))[0])


@method(
    "strata_sendRawTransactions",
    "Submit up to 1000 signed transactions; one result per transaction.",
    [("transactions", "array", True)],
    "[{hash} | {error}]",
)
async def send_raw_transactions(ctx: Context, params: list[Any]) -> Any:
    (raws,) = _params(params, 1, 1)
    items = _list(raws, "transactions", ctx.node.config.max_batch_transactions)
    return await _submit(ctx, [_hex(r, "transaction", max_length=16_384) for r in items])


def _from_json(ctx: Context, obj: Any) -> bytes:
    return encode_transaction(transaction_from_json(obj, ctx.node.markets))


@method(
    "strata_sendTransaction",
    "Submit one signed transaction in JSON form (decimal strings, converted exactly).",
    [("transaction", "object", True)],
    "{hash}",
)
async def send_transaction(ctx: Context, params: list[Any]) -> Any:
    (obj,) = _params(params, 1, 1)
    return _single((await _submit(ctx, [_from_json(ctx, obj)]))[0])


@method(
    "strata_sendTransactions",
    "Submit up to 1000 signed transactions in JSON form; one result per transaction.",
    [("transactions", "array", True)],
    "[{hash} | {error}]",
)
async def send_transactions(ctx: Context, params: list[Any]) -> Any:
    (objs,) = _params(params, 1, 1)
    items = _list(objs, "transactions", ctx.node.config.max_batch_transactions)
    results: list[dict[str, Any] | None] = []
    datas: list[bytes] = []
    for obj in items:
        try:
            datas.append(_from_json(ctx, obj))
            results.append(None)
        except RpcError as error:
            results.append({"error": error.to_json()})
    submitted = iter(await _submit(ctx, datas)) if datas else iter(())
    return [r if r is not None else next(submitted) for r in results]


def _receipt_json(node: Node, receipt: Any) -> dict[str, Any]:
    return {
        "tx_hash": _hexs(receipt.tx_hash),
        "status": receipt.status,
        "gas_used": receipt.gas_used,
        "events": [event_to_json(e, node.markets) for e in receipt.events],
    }


@method(
    "strata_getTransaction",
    "A transaction's definitive status: pending, included (with its receipt), rejected, unknown.",
    [("hash", "string", True)],
    "{hash, status, height, index, receipt, error}",
)
async def get_transaction(ctx: Context, params: list[Any]) -> Any:
    (raw,) = _params(params, 1, 1)
    tx_hash = _hex(raw, "hash", 32)
    node = ctx.node
    result: dict[str, Any] = {"hash": raw.lower(), "status": "unknown"}
    await node.index_synced()
    indexed = node.index.transaction(tx_hash)
    # An index still behind the chain after the wait (busy, starting) does not make an included
    # transaction unknown: the node remembers where the blocks it has not indexed put theirs.
    where = (
        (indexed.height, indexed.index) if indexed is not None else node.unindexed_location(tx_hash)
    )
    if where is not None:
        height, index = where
        receipts, _ = node.store.get_receipts(height)
        result.update(
            status="included",
            height=height,
            index=index,
            receipt=_receipt_json(node, receipts[index]),
        )
    elif tx_hash in node.mempool:
        result["status"] = "pending"
    else:
        code = node.index.left_out(tx_hash)
        if code is not None:
            result.update(status="rejected", error=RpcError(code, "left out of a block").to_json())
        elif tx_hash in node.refused:
            error = RpcError(node.refused[tx_hash], "refused at admission")
            result.update(status="rejected", error=error.to_json())
    return result


def _order_json(node: Node, info: MarketInfo, order_id: int, record: Any) -> dict[str, Any]:
    book = node.store.state.books[info.market_id]
    resting = book.get_order(order_id)
    is_buy = resting.is_buy if resting is not None else record.is_buy
    price = resting.price_ticks if resting is not None else record.price_ticks
    size = record.remaining_lots + record.filled_lots
    return {
        "market": info.symbol,
        "order_id": order_id,
        "account": _hexs(record.account),
        "client_id": record.client_id,
        "status": OrderStatus(record.status).name.lower(),
        "reason": OrderReason(record.reason).name.lower(),
        "side": None if is_buy is None else ("buy" if is_buy else "sell"),
        "price": None if price is None else info.ticks_to_price(price),
        "size": info.lots_to_size(size),
        "remaining": info.lots_to_size(record.remaining_lots),
        "filled": info.lots_to_size(record.filled_lots),
        "height": record.height,
        "origin": OrderOrigin(record.origin).name.lower(),
        "trigger_id": record.trigger_id,
    }


@method(
    "strata_getOrder",
    "An order's status by id, or by account and client id.",
    [("market", "string", True), ("which", "object", True)],
    "{market, order_id, account, client_id, status, reason, side, price, size, remaining, "
    "filled, height, origin, trigger_id}",
)
async def get_order(ctx: Context, params: list[Any]) -> Any:
    market, which = _params(params, 2, 2)
    node = ctx.node
    info = _market(node, market)
    which = _object(which, "which", {"order_id", "account", "client_id"})
    synced = await node.index_synced()
    if "order_id" in which:
        if set(which) != {"order_id"}:
            raise RpcError(RpcCode.INVALID_PARAMS, "give order_id alone, or account and client_id")
        order_id = _int(which["order_id"], "order_id", 1, (1 << 63) - 1)
        record = node.index.order(info.market_id, order_id)
    else:
        if set(which) != {"account", "client_id"}:
            raise RpcError(RpcCode.INVALID_PARAMS, "give order_id alone, or account and client_id")
        account = _hex(which["account"], "account", 20)
        client_id = _int(which["client_id"], "client_id", 0, (1 << 63) - 1)
        found = node.index.order_by_client_id(account, info.market_id, client_id)
        order_id, record = found if found is not None else (0, None)
    if record is None:
        if not synced:  # not "no such order": the order may be in a block not indexed yet
            raise RpcError(
                RpcCode.HEIGHT_UNAVAILABLE,
                f"the order index is behind the chain (at {node.indexer_tip()} of "
                f"{node.store.tip.height}): retry",
            )
        raise RpcError(RpcCode.NOT_FOUND, f"no such order in {info.symbol}")
    return _order_json(node, info, order_id, record)


@method(
    "strata_getAccount",
    "An account: cross-margin collateral, equity, margin and its ratio, positions (an isolated "
    "one with its own cash and margin), isolated markets, open orders, triggers, dead-man "
    "switch, agents, nonces.",
    [("address", "string", True)],
    "{address, height, collateral, equity, free_collateral, withdrawable, reserved, "
    "initial_margin, maintenance_margin, margin_ratio, liquidatable, positions: [{market, size, "
    "entry_price, entry_cost, mark_price, unrealized_pnl, isolated, isolated_margin: {cash, "
    "equity, free_collateral, withdrawable, initial_margin, maintenance_margin, margin_ratio, "
    "liquidatable} | null}], isolated_markets, open_orders, triggers, cancel_at_ms, agents, "
    "nonces}",
)
async def get_account(ctx: Context, params: list[Any]) -> Any:
    (raw,) = _params(params, 1, 1)
    account = _hex(raw, "address", 20)
    node = ctx.node
    state = node.store.state
    risk = get_account_risk(state, account)
    open_orders = []
    for market_id, info in node.markets.items():
        for order in state.books[market_id].orders_of(account):
            open_orders.append(
                {
                    "market": info.symbol,
                    "order_id": order.order_id,
                    "client_id": order.client_id,
                    "side": "buy" if order.is_buy else "sell",
                    "price": info.ticks_to_price(order.price_ticks),
                    "remaining": info.lots_to_size(order.size_lots),
                    "reduce_only": order.reduce_only,
                    "expires_at_ms": order.expires_at_ms,
                }
            )
    agents = []
    for public_key in get_account_agents(state, account):
        record = get_agent(state, public_key)
        if record is not None:
            agents.append(
                {"public_key": _hexs(public_key), "valid_until_ms": record.valid_until_ms}
            )
    nonces = get_nonces(state, account)
    return {
        "address": _hexs(account),
        "height": node.state_height,
        "collateral": quote_to_usdc(collateral.get_balance(state, account)),
        **_margin_json(risk),
        "reserved": quote_to_usdc(risk.reserved_quote),
        "positions": _positions_json(node, state, account),
        "isolated_markets": [
            info.symbol
            for market_id, info in sorted(node.markets.items())
            if collateral.is_isolated(state, account, market_id)
        ],
        "open_orders": open_orders,
        "triggers": _triggers_json(node, state, account),
        "cancel_at_ms": triggers.get_cancel_schedule(state, account),
        "agents": agents,
        "nonces": {"floor": nonces.floor, "recent": list(nonces.recent)},
    }


def _margin_json(risk: AccountRisk) -> dict[str, Any]:
    """Margin figures of the cross-margin account, or of one isolated position (each is
    margined and liquidated on its own, ``modules/collateral``).

    ``margin_ratio`` is ``equity / maintenance_margin`` (6 decimals, rounded down as the chain
    ranks liquidations; ``null`` without a requirement): below 1 it is ``liquidatable``, and the
    next block's risk phase liquidates it unless the marks move first (positions in a market
    whose index is stale are frozen). ``withdrawable`` is free collateral less unrealized profit,
    at least 0: what a withdrawal or transfer may take from the account (withdrawals also wait
    while bad debt is recorded), or what ``move_isolated_margin`` may take out of a position."""
    maintenance = risk.maintenance_quote
    ratio = None
    if maintenance > 0:
        ratio = format_units(risk.equity_quote * PPM // maintenance, "0.000001")
    return {
        "equity": quote_to_usdc(risk.equity_quote),
        "free_collateral": quote_to_usdc(risk.free_collateral_quote),
        "withdrawable": quote_to_usdc(max(0, risk.withdrawable_quote)),
        "initial_margin": quote_to_usdc(risk.initial_quote),
        "maintenance_margin": quote_to_usdc(maintenance),
        "margin_ratio": ratio,
        "liquidatable": risk.equity_quote < maintenance,
    }


def _positions_json(node: Node, state: State, account: bytes) -> list[dict[str, Any]]:
    """The account's positions; an isolated one (``isolated``) carries its own cash and margin
    figures in ``isolated_margin`` (``null`` for a cross-margin position)."""
    positions = []
    for position in get_positions(state, account):
        info = node.markets[position.market_id]
        mark = oracle.get_mark_price(state, position.market_id) or 0
        value = position.size_lots * mark * info.quote_per_tick_lot
        entry = _entry_price(info, position) if position.size_lots else None
        isolated = get_isolated_risk(state, account, position.market_id)
        isolated_margin = None
        if isolated is not None:
            cash = collateral.get_isolated_cash(state, account, position.market_id)
            isolated_margin = {"cash": quote_to_usdc(cash), **_margin_json(isolated)}
        positions.append(
            {
                "market": info.symbol,
                "size": info.lots_to_size(position.size_lots),
                "entry_price": entry,
                "entry_cost": quote_to_usdc(position.entry_cost_quote),
                "mark_price": info.ticks_to_price(mark),
                "unrealized_pnl": quote_to_usdc(value - position.entry_cost_quote),
                "isolated": isolated is not None,
                "isolated_margin": isolated_margin,
            }
        )
    return positions


def _triggers_json(node: Node, state: State, account: bytes) -> list[dict[str, Any]]:
    """The account's triggers that have not fired, by market and trigger id."""
    shown = []
    for trigger in triggers.get_triggers(state, account):
        info = node.markets[trigger.market_id]
        shown.append(
            {
                "market": info.symbol,
                "trigger_id": trigger.trigger_id,
                "side": "buy" if trigger.is_buy else "sell",
                "trigger_price": info.ticks_to_price(trigger.trigger_price_ticks),
                "trigger_above": trigger.trigger_above,
                "price": info.ticks_to_price(trigger.price_ticks),
                "size": info.lots_to_size(trigger.size_lots),
                "tif": TIF_BY_CODE.get(trigger.tif, str(trigger.tif)),
            }
        )
    return shown


def _entry_price(info: MarketInfo, position: Any) -> str:
    """The average entry price, to the decimal (a display value: rounded to 1e-12)."""
    per_lot = Decimal(position.entry_cost_quote) / Decimal(position.size_lots)
    price = per_lot / Decimal(info.quote_per_tick_lot) * info.tick
    return format(price.quantize(Decimal("1e-12")).normalize(), "f")


@method(
    "strata_getMarkets",
    "Every market with its units (tick_size, lot_size), mark price, margin schedule and "
    "open interest with its cap.",
    [],
    "[{market_id, symbol, tick_size, lot_size, min_size, max_size, mark_price, status, "
    "margin_schedule, open_interest, max_open_interest, ...}]",
)
async def get_markets(ctx: Context, params: list[Any]) -> Any:
    _params(params, 0, 0)
    state = ctx.node.store.state
    result = []
    for market_id, info in sorted(ctx.node.markets.items()):
        mark = oracle.get_mark_price(state, market_id)
        entry = info.to_json()
        entry["min_size"] = info.lots_to_size(info.min_size_lots)
        entry["max_size"] = info.lots_to_size(info.max_size_lots)
        entry["mark_price"] = None if mark is None else info.ticks_to_price(mark)
        entry["status_code"] = info.status
        entry["status"] = MarketStatus(info.status).name.lower()
        entry["margin_schedule"] = _margin_schedule(info)
        entry.update(_open_interest_json(state, info))
        result.append(entry)
    return result


def _margin_schedule(info: MarketInfo) -> list[dict[str, Any]]:
    """The margin rates by notional: the market's own rates from 0, then each tier's from its
    threshold (each rate applies to the part of a position's notional in its band)."""
    schedule = [
        {
            "from_notional": "0",
            "initial_margin_ppm": info.initial_margin_ppm,
            "maintenance_margin_ppm": info.maintenance_margin_ppm,
        }
    ]
    for tier in info.margin_tiers:
        schedule.append(
            {
                "from_notional": quote_to_usdc(tier.from_notional_quote),
                "initial_margin_ppm": tier.initial_margin_ppm,
                "maintenance_margin_ppm": tier.maintenance_margin_ppm,
            }
        )
    return schedule


def _open_interest_json(state: State, info: MarketInfo) -> dict[str, Any]:
    """Open interest (total long size) and its cap (``null``: none)."""
    cap = info.max_open_interest_lots
    return {
        "open_interest": info.lots_to_size(clearing.get_open_interest(state, info.market_id)),
        "max_open_interest": info.lots_to_size(cap) if cap else None,
    }


@method(
    "strata_getRisk",
    "The chain's risk state: the insurance fund (cash, positions, equity, margin), recorded "
    "bad debt, and per market the mark, open interest and its cap.",
    [],
    "{height, insurance_fund: {address, cash, equity, maintenance_margin, free, positions}, "
    "bad_debt, markets: [{market, mark_price, open_interest, max_open_interest}]}",
)
async def get_risk(ctx: Context, params: list[Any]) -> Any:
    _params(params, 0, 0)
    node = ctx.node
    state = node.store.state
    fund = INSURANCE_FUND_ACCOUNT
    risk = get_account_risk(state, fund)
    markets = []
    for market_id, info in sorted(node.markets.items()):
        mark = oracle.get_mark_price(state, market_id)
        markets.append(
            {
                "market": info.symbol,
                "mark_price": None if mark is None else info.ticks_to_price(mark),
                **_open_interest_json(state, info),
            }
        )
    return {
        "height": node.state_height,
        "insurance_fund": {
            "address": _hexs(fund),
            "cash": quote_to_usdc(collateral.get_insurance_fund(state)),
            "equity": quote_to_usdc(risk.equity_quote),
            "maintenance_margin": quote_to_usdc(risk.maintenance_quote),
            "free": quote_to_usdc(risk.equity_quote - risk.maintenance_quote),
            "positions": _positions_json(node, state, fund),
        },
        "bad_debt": quote_to_usdc(liquidation.get_bad_debt(state)),
        "markets": markets,
    }


@method(
    "strata_getBook",
    "The L2 book of a market (decimal strings), with its feed seq and checksum.",
    [("market", "string", True), ("depth", "integer", False)],
    "{market, height, seq, checksum, bids, asks}",
)
async def get_book(ctx: Context, params: list[Any]) -> Any:
    market, depth = _params(params, 1, 2)
    node = ctx.node
    info = _market(node, market)
    depth = 20 if depth is None else _int(depth, "depth", 1, 100)
    bids, asks = node.feeds.book_view(node.store.state, info.market_id, depth)
    return {
        "market": info.symbol,
        "height": node.state_height,
        "seq": node.state_height,
        "checksum": book_checksum(bids, asks),
        "bids": bids,
        "asks": asks,
    }


@method(
    "strata_getTrades",
    "Recent trades of a market, newest first.",
    [("market", "string", True), ("limit", "integer", False)],
    "[{height, price, size, side, maker, taker, maker_order_id, taker_order_id}]",
)
async def get_trades(ctx: Context, params: list[Any]) -> Any:
    market, limit = _params(params, 1, 2)
    info = _market(ctx.node, market)
    limit = 100 if limit is None else _int(limit, "limit", 1, TRADES_KEPT)
    return ctx.node.feeds.recent_trades(info.market_id, limit)


@method("strata_blockNumber", "The committed height.", [], "integer")
async def block_number(ctx: Context, params: list[Any]) -> Any:
    _params(params, 0, 0)
    return ctx.node.store.tip.height


def header_json(header: Header) -> dict[str, Any]:
    return {
        "chain_id": header.chain_id,
        "height": header.height,
        "hash": _hexs(compute_header_hash(header)),
        "parent_hash": _hexs(header.parent_hash),
        "timestamp_ms": header.timestamp_ms,
        "gas_used": header.gas_used,
        "state_root": _hexs(header.state_root),
        "transactions_root": _hexs(header.transactions_root),
        "receipts_root": _hexs(header.receipts_root),
        "withdrawals_root": _hexs(header.withdrawals_root),
    }


@method("strata_getHeader", "A block header.", [("height", "integer", True)], "header")
async def get_header(ctx: Context, params: list[Any]) -> Any:
    (height,) = _params(params, 1, 1)
    return header_json(ctx.node.store.get_header(_height(ctx.node, height)))


def _system_json(item: Any) -> dict[str, Any]:
    if isinstance(item, Deposit):
        return {
            "type": "deposit",
            "index": item.index,
            "account": _hexs(item.account),
            "amount": quote_to_usdc(item.amount_quote),
        }
    assert isinstance(item, OraclePrice)
    return {
        "type": "oracle_price",
        "market_id": item.market_id,
        "price_ticks": item.price_ticks,
        "timestamp_ms": item.timestamp_ms,
        "signer": _hexs(item.signer),
    }


@method(
    "strata_getBlock",
    "A block: header, system inputs, and transaction hashes (or raw transactions if full).",
    [("height", "integer", True), ("full", "boolean", False)],
    "{header, system, transactions}",
)
async def get_block(ctx: Context, params: list[Any]) -> Any:
    height, full = _params(params, 1, 2)
    if full is not None and not isinstance(full, bool):
        raise RpcError(RpcCode.INVALID_PARAMS, "full must be a boolean")
    node = ctx.node
    h = _height(node, height)
    if h == 0:
        return {"header": header_json(node.store.get_header(0)), "system": [], "transactions": []}
    block = node.store.get_block(h)
    txs = [
        _hexs(data) if full else _hexs(compute_transaction_hash(data))
        for data in block.transactions
    ]
    return {
        "header": header_json(block.header),
        "system": [_system_json(s) for s in block.system],
        "transactions": txs,
    }


@method(
    "strata_getReceipts",
    "A block's receipts and its own events (prologue, matching, settlement, risk).",
    [("height", "integer", True)],
    "{height, receipts, block_events: {prologue, matching, settlement, risk}}",
)
async def get_receipts(ctx: Context, params: list[Any]) -> Any:
    (height,) = _params(params, 1, 1)
    node = ctx.node
    h = _height(node, height)
    phases = ("prologue", "matching", "settlement", "risk")
    if h == 0:
        return {"height": 0, "receipts": [], "block_events": {p: [] for p in phases}}
    receipts, block_events = node.store.get_receipts(h)
    return {
        "height": h,
        "receipts": [_receipt_json(node, r) for r in receipts],
        "block_events": {
            phase: [event_to_json(e, node.markets) for e in getattr(block_events, phase)]
            for phase in phases
        },
    }


@method(
    "strata_getProof",
    "A state key's value with its Merkle proof against the state root of a recent height.",
    [("key", "string", True), ("height", "integer", False)],
    "{key, value, height, state_root, proof}",
)
async def get_proof(ctx: Context, params: list[Any]) -> Any:
    raw, height = _params(params, 1, 2)
    key = _hex(raw, "key", max_length=256)
    node = ctx.node
    h = node.store.tip.height if height is None else _height(node, height)
    try:
        value, proof, root = node.store.read(key, h)
    except StoreError as error:
        raise RpcError(RpcCode.HEIGHT_UNAVAILABLE, str(error)) from None
    leaf = None if proof.leaf is None else [_hexs(proof.leaf[0]), _hexs(proof.leaf[1])]
    return {
        "key": _hexs(key),
        "value": None if value is None else _hexs(value),
        "height": h,
        "state_root": _hexs(root),
        "proof": {"siblings": [_hexs(s) for s in proof.siblings], "leaf": leaf},
    }


@method(
    "strata_getStatus",
    "The chain id, bridge address, height, mempool depth and block time.",
    [],
    "{chain_id, bridge_address, height, mempool, block_time_ms, devnet}",
)
async def get_status(ctx: Context, params: list[Any]) -> Any:
    _params(params, 0, 0)
    node = ctx.node
    return {
        "chain_id": node.params.chain_id,
        "bridge_address": _hexs(node.params.bridge_address),
        "height": node.store.tip.height,
        "mempool": len(node.mempool),
        "block_time_ms": node.config.block_time_ms,
        "devnet": node.config.devnet,
    }


@method(
    "strata_faucet",
    "Devnet only: credit USDC to an account in the next block (a Deposit system input).",
    [("address", "string", True), ("amount", "string", True)],
    "{index}",
)
async def faucet(ctx: Context, params: list[Any]) -> Any:
    raw, amount = _params(params, 2, 2)
    if not ctx.node.config.devnet:
        raise RpcError(RpcCode.DEVNET_ONLY, "strata_faucet exists only on a devnet")
    account = _hex(raw, "address", 20)
    quote = usdc_to_quote(amount)
    if not 0 < quote <= 1_000_000 * 1_000_000:
        raise RpcError(RpcCode.INVALID_PARAMS, "amount must be in (0, 1000000] USDC")
    return {"index": ctx.node.faucet(account, quote)}


@method(
    "strata_subscribe",
    "WebSocket only: subscribe to blocks, trades, book or account.",
    [("kind", "string", True), ("options", "object", False)],
    "subscription id",
)
async def subscribe(ctx: Context, params: list[Any]) -> Any:
    if ctx.session is None:
        raise RpcError(RpcCode.WEBSOCKET_ONLY, "subscriptions need a WebSocket (GET /ws)")
    kind, options = _params(params, 1, 2)
    return await ctx.session.subscribe(kind, {} if options is None else options)


@method(
    "strata_unsubscribe",
    "WebSocket only: end a subscription.",
    [("subscription", "string", True)],
    "boolean",
)
async def unsubscribe(ctx: Context, params: list[Any]) -> Any:
    if ctx.session is None:
        raise RpcError(RpcCode.WEBSOCKET_ONLY, "subscriptions need a WebSocket (GET /ws)")
    (sub_id,) = _params(params, 1, 1)
    if not isinstance(sub_id, str):
        raise RpcError(RpcCode.INVALID_PARAMS, "subscription must be a string")
    return ctx.session.unsubscribe(sub_id)


@method("rpc.discover", "The OpenRPC document of this API.", [], "OpenRPC document")
async def discover(ctx: Context, params: list[Any]) -> Any:
    _params(params, 0, 0)
    return openrpc_document()


def openrpc_document() -> dict[str, Any]:
    """The OpenRPC document, generated from the method table (committed as docs/openrpc.json;
    a test keeps the two equal)."""
    methods = []
    for name in sorted(DESCRIPTIONS):
        summary, params, result = DESCRIPTIONS[name]
        methods.append(
            {
                "name": name,
                "summary": summary,
                "paramStructure": "by-position",
                "params": [
                    {"name": p, "required": required, "schema": {"type": kind}}
                    for p, kind, required in params
                ],
                "result": {"name": "result", "schema": {"description": result}},
            }
        )
    return {
        "openrpc": "1.2.6",
        "info": {
            "title": "Strata node API",
            "version": "1.0.0",
            "description": "JSON-RPC 2.0 over HTTP (POST /) and WebSocket (GET /ws), see "
            "docs/api.md",
        },
        "methods": methods,
    }


# ---------------------------------------------------------------------- dispatch


async def handle_request(ctx: Context, request: Any) -> dict[str, Any] | None:
    """One request object -> its response (``None`` for a notification)."""
    if not isinstance(request, dict):
        return _error(None, RpcError(RpcCode.INVALID_REQUEST, "a request must be an object"))
    request_id = request.get("id")
    if isinstance(request_id, bool) or not (
        request_id is None or isinstance(request_id, int | str)
    ):
        return _error(None, RpcError(RpcCode.INVALID_REQUEST, "id must be a string or integer"))
    unknown = set(request) - {"jsonrpc", "id", "method", "params"}
    if request.get("jsonrpc") != "2.0" or unknown or not isinstance(request.get("method"), str):
        reason = f"unknown field(s) {sorted(unknown)}" if unknown else "not a JSON-RPC 2.0 request"
        return _error(request_id, RpcError(RpcCode.INVALID_REQUEST, reason))
    name = request["method"]
    handler = METHODS.get(name)
    node = ctx.node
    if handler is None:
        node.metrics.rpc_errors.labels("METHOD_NOT_FOUND").inc()
        return _error(request_id, RpcError(RpcCode.METHOD_NOT_FOUND, f"no method {name[:64]!r}"))
    node.metrics.requests.labels(name).inc()
    params = request.get("params", [])
    if not isinstance(params, list):
        return _error(
            request_id, RpcError(RpcCode.INVALID_PARAMS, "params must be an array (by position)")
        )
    try:
        result = await handler(ctx, params)
    except RpcError as error:
        node.metrics.rpc_errors.labels(error.name).inc()
        return _error(request_id, error)
    except StoreError as error:
        node.metrics.rpc_errors.labels("HEIGHT_UNAVAILABLE").inc()
        return _error(request_id, RpcError(RpcCode.HEIGHT_UNAVAILABLE, str(error)))
    except Exception:
        logging.getLogger("strata.node").exception("internal error in %s", name)
        node.metrics.rpc_errors.labels("INTERNAL_ERROR").inc()
        return _error(request_id, RpcError(RpcCode.INTERNAL_ERROR, "internal error (logged)"))
    if "id" not in request:
        return None
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


async def handle_body(ctx: Context, body: bytes) -> Any:
    """A whole request body (one request or a batch) -> the response value (``None``: nothing
    to send, all notifications)."""
    try:
        payload = parse_body(body)
    except RpcError as error:
        ctx.node.metrics.rpc_errors.labels(error.name).inc()
        return _error(None, error)
    if isinstance(payload, list):
        if not payload:
            return _error(None, RpcError(RpcCode.INVALID_REQUEST, "empty batch"))
        limit = ctx.node.config.max_batch_requests
        if len(payload) > limit:
            return _error(
                None, RpcError(RpcCode.BATCH_TOO_LARGE, f"at most {limit} requests per batch")
            )
        responses = [await handle_request(ctx, item) for item in payload]
        kept = [r for r in responses if r is not None]
        return kept or None
    return await handle_request(ctx, payload)


if __name__ == "__main__":  # python -m strata.node.rpc > docs/openrpc.json
    print(json.dumps(openrpc_document(), indent=2))

"""The JSON form of transactions and events (docs/api.md), shared by the node and the SDK.

Ring 0 speaks integers (ticks, lots, quote units of 1e-6 USDC); the API speaks decimal strings in
a market's units. This module converts between the two, exactly, in both directions:

- :func:`action_from_json` / :func:`transaction_from_json` parse what a client sent. They are
  strict: an unknown ``type`` or field, a JSON value of the wrong type (a float, a bool where an
  integer is expected, an integer where a bool is), an integer outside ``0 .. 2**63 - 1``, hex
  without ``0x`` or of the wrong length all raise ``RpcError(INVALID_PARAMS)`` with a message
  naming the field; a decimal that is not a whole number of ticks, lots or quote units raises
  ``RpcError(OFF_GRID)``; a market symbol or id not in ``markets`` raises
  ``RpcError(UNKNOWN_MARKET)``. Nothing is ever rounded.
- :func:`action_to_json` / :func:`transaction_to_json` are their inverses:
  ``action_from_json(action_to_json(a, m), m) == a`` for every action whose markets are in ``m``
  and whose cancels name exactly one of ``order_id``/``client_id``.
- :func:`event_to_json` shows a receipt event with decimal strings and named codes.

Rules that need chain state (a market's size bounds, an empty bulk list, nonces, signatures) are
left to the chain, which reports them with its own codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from strata.client.errors import RpcCode, RpcError
from strata.client.markets import MarketInfo, find_market, quote_to_usdc, usdc_to_quote
from strata.core.signatures import (
    ADDRESS_LENGTH,
    AGENT_PUBLIC_KEY_LENGTH,
    AGENT_SIGNATURE_LENGTH,
    WALLET_SIGNATURE_LENGTH,
)
from strata.modules.book.types import OrderReason, OrderStatus, TimeInForce
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.funding import FundingTick
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    FundDeleveraged,
    PositionLiquidated,
)
from strata.modules.oracle import OracleFresh, OracleStale
from strata.modules.triggers import ScheduledCancelFired, TriggerStatus, TriggerUpdate
from strata.stf.events import (
    AgentApproved,
    AgentRevoked,
    CancelScheduled,
    Deposited,
    Event,
    FeeCharged,
    IsolatedMarginMoved,
    MarginModeChanged,
    OraclePriceUpdated,
    Transferred,
    WithdrawalRequested,
)
from strata.stf.transactions import (
    MAX_BULK_ITEMS,
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
)

MAX_JSON_INT: Final = (1 << 63) - 1
"""Largest integer accepted in JSON (ids, nonces, times): the chain's ``U64`` bound."""

_MAX_U32: Final = (1 << 32) - 1
_HEX: Final = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")

TIF_NAMES: Final[dict[str, int]] = {
    "gtc": int(TimeInForce.GTC),
    "ioc": int(TimeInForce.IOC),
    "fok": int(TimeInForce.FOK),
    "post_only": int(TimeInForce.POST_ONLY),
}
TIF_BY_CODE: Final[dict[int, str]] = {code: name for name, code in TIF_NAMES.items()}
SIDES: Final[dict[str, bool]] = {"buy": True, "sell": False}

JsonObject = dict[str, Any]


# --- strict readers ------------------------------------------------------------------------------


def _invalid(message: str) -> RpcError:
    return RpcError(RpcCode.INVALID_PARAMS, message)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a bool", int: "an integer", float: "a float", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _object(
    obj: object, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    """``obj`` as a JSON object with all of ``required`` and nothing beyond ``optional``."""
    if not isinstance(obj, dict):
        raise _invalid(f"{what} must be an object, got {_type_name(obj)}")
    unknown = sorted(str(key) for key in obj if key not in required and key not in optional)
    if unknown:
        raise _invalid(f"{what}: unknown field {unknown[0]!r}")
    for key in required:
        if key not in obj:
            raise _invalid(f"{what}: missing field {key!r}")
    return obj


def read_int(value: object, what: str, maximum: int = MAX_JSON_INT) -> int:
    """A JSON integer (not a bool, not a float) in ``0 .. maximum``; else ``INVALID_PARAMS``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(f"{what} must be an integer, got {_type_name(value)}")
    if not 0 <= value <= maximum:
        raise _invalid(f"{what} {value} is out of range 0..{maximum}")
    return value


def _optional_int(value: object, what: str) -> int | None:
    return None if value is None else read_int(value, what)


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{what} must be true or false, got {_type_name(value)}")
    return value


def read_hex(value: object, what: str, *lengths: int) -> bytes:
    """``0x``-prefixed hex (either case) of one of ``lengths`` bytes; else ``INVALID_PARAMS``."""
    if not isinstance(value, str):
        raise _invalid(f"{what} must be a 0x-prefixed hex string, got {_type_name(value)}")
    if not value.startswith("0x"):
        raise _invalid(f"{what} must start with 0x")
    if not _HEX.match(value):
        raise _invalid(f"{what} is not valid hex (pairs of 0-9a-f after 0x)")
    data = bytes.fromhex(value[2:])
    if len(data) not in lengths:
        expected = " or ".join(str(n) for n in lengths)
        raise _invalid(f"{what} must be {expected} bytes, got {len(data)}")
    return data


def to_hex(data: bytes) -> str:
    """Bytes as ``0x``-prefixed lowercase hex."""
    return "0x" + data.hex()


def _market(value: object, markets: dict[int, MarketInfo]) -> MarketInfo:
    if isinstance(value, int) and not isinstance(value, bool):
        read_int(value, "market", _MAX_U32)
    elif not isinstance(value, str):
        raise _invalid(f"market must be a symbol or an integer id, got {_type_name(value)}")
    return find_market(markets, value)


def _choice(value: object, what: str, choices: Mapping[str, Any]) -> Any:
    if not isinstance(value, str) or value not in choices:
        names = ", ".join(f'"{name}"' for name in choices)
        raise _invalid(f"{what} must be one of {names}, got {value!r}")
    return choices[value]


def _amount(value: object, what: str) -> int:
    amount_quote = usdc_to_quote(value, what)
    if amount_quote <= 0:
        raise _invalid(f"{what} must be positive")
    return _in_range(amount_quote, what)


def _in_range(units: int, what: str) -> int:
    if units > MAX_JSON_INT:
        raise _invalid(f"{what} is out of range (at most {MAX_JSON_INT} units)")
    return units


def _price(info: MarketInfo, value: object) -> int:
    return _in_range(info.price_to_ticks(value), f"{info.symbol} price")


def _size(info: MarketInfo, value: object) -> int:
    return _in_range(info.size_to_lots(value), f"{info.symbol} size")


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(f"{what} must be a list, got {_type_name(value)}")
    if len(value) > MAX_BULK_ITEMS:
        raise _invalid(f"{what}: {len(value)} items, more than MAX_BULK_ITEMS = {MAX_BULK_ITEMS}")
    return value


def _one_id(obj: Mapping[str, Any], what: str) -> tuple[int | None, int | None]:
    order_id = _optional_int(obj.get("order_id"), f"{what}.order_id")
    client_id = _optional_int(obj.get("client_id"), f"{what}.client_id")
    if (order_id is None) == (client_id is None):
        raise _invalid(f"{what} needs exactly one of order_id and client_id")
    return order_id, client_id


# --- actions from JSON ---------------------------------------------------------------------------

_PLACE_FIELDS = ("market", "side", "price", "size")
_PLACE_OPTIONAL = ("tif", "reduce_only", "client_id", "expires_at_ms")
_CANCEL_OPTIONAL = ("order_id", "client_id")
_MODIFY_OPTIONAL = ("order_id", "client_id", "tif", "reduce_only")


def _place(obj: object, what: str, markets: dict[int, MarketInfo]) -> PlaceOrder:
    fields = _object(obj, what, _PLACE_FIELDS, _PLACE_OPTIONAL)
    info = _market(fields["market"], markets)
    return PlaceOrder(
        market_id=info.market_id,
        is_buy=_choice(fields["side"], f"{what}.side", SIDES),
        price_ticks=_price(info, fields["price"]),
        size_lots=_size(info, fields["size"]),
        tif=_choice(fields.get("tif", "gtc"), f"{what}.tif", TIF_NAMES),
        reduce_only=_bool(fields.get("reduce_only", False), f"{what}.reduce_only"),
        client_id=_optional_int(fields.get("client_id"), f"{what}.client_id"),
        expires_at_ms=_optional_int(fields.get("expires_at_ms"), f"{what}.expires_at_ms"),
    )


def _cancel(obj: object, what: str, markets: dict[int, MarketInfo]) -> CancelOrder:
    fields = _object(obj, what, ("market",), _CANCEL_OPTIONAL)
    info = _market(fields["market"], markets)
    order_id, client_id = _one_id(fields, what)
    return CancelOrder(info.market_id, order_id, client_id)


def _modify(obj: object, what: str, markets: dict[int, MarketInfo]) -> ModifyOrder:
    fields = _object(obj, what, _PLACE_FIELDS, _MODIFY_OPTIONAL)
    info = _market(fields["market"], markets)
    order_id, client_id = _one_id(fields, what)
    return ModifyOrder(
        market_id=info.market_id,
        order_id=order_id,
        client_id=client_id,
        is_buy=_choice(fields["side"], f"{what}.side", SIDES),
        price_ticks=_price(info, fields["price"]),
        size_lots=_size(info, fields["size"]),
        tif=_choice(fields.get("tif", "gtc"), f"{what}.tif", TIF_NAMES),
        reduce_only=_bool(fields.get("reduce_only", False), f"{what}.reduce_only"),
    )


def _without_type(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "type"}


def _approve_agent(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "approve_agent", ("public_key", "valid_until_ms", "agent_signature"))
    return ApproveAgent(
        read_hex(f["public_key"], "public_key", AGENT_PUBLIC_KEY_LENGTH),
        read_int(f["valid_until_ms"], "valid_until_ms"),
        read_hex(f["agent_signature"], "agent_signature", AGENT_SIGNATURE_LENGTH),
    )


def _revoke_agent(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "revoke_agent", ("public_key",))
    return RevokeAgent(read_hex(f["public_key"], "public_key", AGENT_PUBLIC_KEY_LENGTH))


def _transfer(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "transfer", ("to", "amount"))
    return Transfer(read_hex(f["to"], "to", ADDRESS_LENGTH), _amount(f["amount"], "amount"))


def _withdraw(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "withdraw", ("amount", "destination"))
    return Withdraw(
        _amount(f["amount"], "amount"), read_hex(f["destination"], "destination", ADDRESS_LENGTH)
    )


def _cancel_all(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "cancel_all", (), ("market",))
    market = f.get("market")
    return CancelAll(None if market is None else _market(market, markets).market_id)


def _bulk_place(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "bulk_place", ("orders",))
    items = _list(f["orders"], "orders")
    return BulkPlace(tuple(_place(o, f"orders[{i}]", markets) for i, o in enumerate(items)))


def _bulk_cancel(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "bulk_cancel", ("cancels",))
    items = _list(f["cancels"], "cancels")
    return BulkCancel(tuple(_cancel(c, f"cancels[{i}]", markets) for i, c in enumerate(items)))


def _bulk_modify(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "bulk_modify", ("modifies",))
    items = _list(f["modifies"], "modifies")
    return BulkModify(tuple(_modify(m, f"modifies[{i}]", markets) for i, m in enumerate(items)))


def _schedule_cancel(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "schedule_cancel", (), ("at_ms",))
    return ScheduleCancel(_optional_int(f.get("at_ms"), "at_ms"))


_TRIGGER_FIELDS = ("market", "side", "trigger_price", "trigger_above", "price", "size")
_TRIGGER_TIFS: Final = {"gtc": TimeInForce.GTC, "ioc": TimeInForce.IOC}


def _place_trigger(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "place_trigger", _TRIGGER_FIELDS, ("tif",))
    info = _market(f["market"], markets)
    return PlaceTrigger(
        market_id=info.market_id,
        is_buy=_choice(f["side"], "side", SIDES),
        trigger_price_ticks=_price(info, f["trigger_price"]),
        trigger_above=_bool(f["trigger_above"], "trigger_above"),
        price_ticks=_price(info, f["price"]),
        size_lots=_size(info, f["size"]),
        tif=_choice(f.get("tif", "ioc"), "tif", _TRIGGER_TIFS),
    )


def _cancel_trigger(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "cancel_trigger", ("market", "trigger_id"))
    info = _market(f["market"], markets)
    return CancelTrigger(info.market_id, read_int(f["trigger_id"], "trigger_id"))


def _set_margin_mode(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "set_margin_mode", ("market", "isolated"))
    info = _market(f["market"], markets)
    return SetMarginMode(info.market_id, _bool(f["isolated"], "isolated"))


def _move_isolated_margin(obj: Mapping[str, Any], markets: dict[int, MarketInfo]) -> Action:
    f = _object(obj, "move_isolated_margin", ("market", "amount"))
    info = _market(f["market"], markets)
    amount_quote = usdc_to_quote(f["amount"], "amount")  # a decimal string, signed
    if amount_quote == 0:
        raise _invalid("amount must not be zero")
    _in_range(abs(amount_quote), "amount")
    return MoveIsolatedMargin(info.market_id, amount_quote)


_ACTION_READERS: Final[dict[str, Callable[[Mapping[str, Any], dict[int, MarketInfo]], Action]]] = {
    "approve_agent": _approve_agent,
    "revoke_agent": _revoke_agent,
    "transfer": _transfer,
    "withdraw": _withdraw,
    "place": lambda obj, markets: _place(obj, "place", markets),
    "cancel": lambda obj, markets: _cancel(obj, "cancel", markets),
    "cancel_all": _cancel_all,
    "modify": lambda obj, markets: _modify(obj, "modify", markets),
    "bulk_place": _bulk_place,
    "bulk_cancel": _bulk_cancel,
    "bulk_modify": _bulk_modify,
    "schedule_cancel": _schedule_cancel,
    "place_trigger": _place_trigger,
    "cancel_trigger": _cancel_trigger,
    "set_margin_mode": _set_margin_mode,
    "move_isolated_margin": _move_isolated_margin,
}
ACTION_TYPES: Final = tuple(_ACTION_READERS)
"""The names of every action ``type``, in the order of their chain tags."""


def action_from_json(obj: Any, markets: dict[int, MarketInfo]) -> Action:
    """The integer action of a JSON action object (``{"type": "place", ...}``), exactly.

    Raises
    ------
    RpcError
        ``INVALID_PARAMS``: not an object, unknown ``type`` or field, missing field, wrong JSON
        type, integer out of ``0 .. 2**63 - 1``, bad hex, a non-positive price, size or amount,
        a cancel or modify without exactly one of ``order_id``/``client_id``, more than
        ``MAX_BULK_ITEMS`` (64) items in a bulk list.
        ``OFF_GRID``: a price, size or amount that is not a whole number of ticks, lots or
        1e-6 USDC. ``UNKNOWN_MARKET``: a market symbol or id not in ``markets``.
    """
    if not isinstance(obj, dict):
        raise _invalid(f"action must be an object, got {_type_name(obj)}")
    kind = obj.get("type")
    reader = _ACTION_READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise _invalid(f"unknown action type {kind!r} (one of {', '.join(ACTION_TYPES)})")
    return reader(_without_type(obj), markets)


# --- actions to JSON -----------------------------------------------------------------------------


def _market_info(markets: dict[int, MarketInfo], market_id: int) -> MarketInfo:
    info = markets.get(market_id)  # the common case, first: this runs for every event rendered
    return info if info is not None else find_market(markets, market_id)


def _place_json(order: PlaceOrder, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, order.market_id)
    return {
        "market": info.symbol,
        "side": "buy" if order.is_buy else "sell",
        "price": info.ticks_to_price(order.price_ticks),
        "size": info.lots_to_size(order.size_lots),
        "tif": TIF_BY_CODE[order.tif],
        "reduce_only": order.reduce_only,
        "client_id": order.client_id,
        "expires_at_ms": order.expires_at_ms,
    }


def _ids_json(order_id: int | None, client_id: int | None) -> JsonObject:
    out: JsonObject = {}
    if order_id is not None:
        out["order_id"] = order_id
    if client_id is not None:
        out["client_id"] = client_id
    return out


def _cancel_json(cancel: CancelOrder, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, cancel.market_id)
    return {"market": info.symbol, **_ids_json(cancel.order_id, cancel.client_id)}


def _modify_json(modify: ModifyOrder, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, modify.market_id)
    return {
        "market": info.symbol,
        **_ids_json(modify.order_id, modify.client_id),
        "side": "buy" if modify.is_buy else "sell",
        "price": info.ticks_to_price(modify.price_ticks),
        "size": info.lots_to_size(modify.size_lots),
        "tif": TIF_BY_CODE[modify.tif],
        "reduce_only": modify.reduce_only,
    }


def action_to_json(action: Action, markets: dict[int, MarketInfo]) -> JsonObject:
    """The JSON object of an integer action: decimal strings, market symbols, ``0x`` hex.

    Optional fields are always written (``client_id: null``), except that a cancel or modify
    carries only the one of ``order_id``/``client_id`` that is set. Raises
    ``RpcError(UNKNOWN_MARKET)`` if the action names a market not in ``markets``.
    """
    if isinstance(action, ApproveAgent):
        return {
            "type": "approve_agent",
            "public_key": to_hex(action.public_key),
            "valid_until_ms": action.valid_until_ms,
            "agent_signature": to_hex(action.agent_signature),
        }
    if isinstance(action, RevokeAgent):
        return {"type": "revoke_agent", "public_key": to_hex(action.public_key)}
    if isinstance(action, Transfer):
        return {
            "type": "transfer",
            "to": to_hex(action.to),
            "amount": quote_to_usdc(action.amount_quote),
        }
    if isinstance(action, Withdraw):
        return {
            "type": "withdraw",
            "amount": quote_to_usdc(action.amount_quote),
            "destination": to_hex(action.destination),
        }
    if isinstance(action, PlaceOrder):
        return {"type": "place", **_place_json(action, markets)}
    if isinstance(action, CancelOrder):
        return {"type": "cancel", **_cancel_json(action, markets)}
    if isinstance(action, CancelAll):
        market = None
        if action.market_id is not None:
            market = _market_info(markets, action.market_id).symbol
        return {"type": "cancel_all", "market": market}
    if isinstance(action, ModifyOrder):
        return {"type": "modify", **_modify_json(action, markets)}
    if isinstance(action, BulkPlace):
        return {"type": "bulk_place", "orders": [_place_json(o, markets) for o in action.orders]}
    if isinstance(action, BulkCancel):
        cancels = [_cancel_json(c, markets) for c in action.cancels]
        return {"type": "bulk_cancel", "cancels": cancels}
    if isinstance(action, BulkModify):
        modifies = [_modify_json(m, markets) for m in action.modifies]
        return {"type": "bulk_modify", "modifies": modifies}
    if isinstance(action, ScheduleCancel):
        return {"type": "schedule_cancel", "at_ms": action.at_ms}
    if isinstance(action, PlaceTrigger):
        info = _market_info(markets, action.market_id)
        return {
            "type": "place_trigger",
            "market": info.symbol,
            "side": "buy" if action.is_buy else "sell",
            "trigger_price": info.ticks_to_price(action.trigger_price_ticks),
            "trigger_above": action.trigger_above,
            "price": info.ticks_to_price(action.price_ticks),
            "size": info.lots_to_size(action.size_lots),
            "tif": TIF_BY_CODE[action.tif],
        }
    if isinstance(action, CancelTrigger):
        info = _market_info(markets, action.market_id)
        return {"type": "cancel_trigger", "market": info.symbol, "trigger_id": action.trigger_id}
    if isinstance(action, SetMarginMode):
        info = _market_info(markets, action.market_id)
        return {"type": "set_margin_mode", "market": info.symbol, "isolated": action.isolated}
    if isinstance(action, MoveIsolatedMargin):
        info = _market_info(markets, action.market_id)
        return {
            "type": "move_isolated_margin",
            "market": info.symbol,
            "amount": quote_to_usdc(action.amount_quote),
        }
    raise TypeError(f"not an action: {action!r}")


# --- transactions --------------------------------------------------------------------------------

_SIGNATURE_LENGTHS = (AGENT_SIGNATURE_LENGTH, WALLET_SIGNATURE_LENGTH)


def transaction_from_json(obj: Any, markets: dict[int, MarketInfo]) -> SignedTransaction:
    """The :class:`SignedTransaction` of a JSON transaction, its action converted exactly.

    Fields: ``account`` (20-byte hex), ``nonce`` (integer), ``agent`` (32-byte hex or null,
    optional), ``signature`` (64- or 65-byte hex), ``action``. The signature is not checked here:
    the chain checks it over the canonical bytes of the converted action. Raises ``RpcError`` as
    :func:`action_from_json` does.
    """
    fields = _object(obj, "transaction", ("account", "nonce", "signature", "action"), ("agent",))
    agent = fields.get("agent")
    return SignedTransaction(
        account=read_hex(fields["account"], "account", ADDRESS_LENGTH),
        nonce=read_int(fields["nonce"], "nonce"),
        action=action_from_json(fields["action"], markets),
        agent=None if agent is None else read_hex(agent, "agent", AGENT_PUBLIC_KEY_LENGTH),
        signature=read_hex(fields["signature"], "signature", *_SIGNATURE_LENGTHS),
    )


def transaction_to_json(tx: SignedTransaction, markets: dict[int, MarketInfo]) -> JsonObject:
    """The JSON object of a transaction (the inverse of :func:`transaction_from_json`)."""
    return {
        "account": to_hex(tx.account),
        "nonce": tx.nonce,
        "agent": None if tx.agent is None else to_hex(tx.agent),
        "signature": to_hex(tx.signature),
        "action": action_to_json(tx.action, markets),
    }


# --- events --------------------------------------------------------------------------------------


_ENUM_NAMES: dict[Any, dict[int, str]] = {}


def _enum_name(enum: Any, code: int) -> str:
    names = _ENUM_NAMES.get(enum)
    if names is None:
        names = _ENUM_NAMES[enum] = {int(m): m.name.lower() for m in enum}
    return names.get(code, "unknown")


def _order_update(e: OrderUpdate, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "order_update",
        "market": info.symbol,
        "market_id": e.market_id,
        "order_id": e.order_id,
        "account": to_hex(e.owner),
        "client_id": e.client_id,
        "status": _enum_name(OrderStatus, e.status),
        "status_code": e.status,
        "reason": _enum_name(OrderReason, e.reason),
        "reason_code": e.reason,
        "remaining": info.lots_to_size(e.remaining_lots),
        "filled": info.lots_to_size(e.filled_lots),
    }


def _fill(e: FillEvent, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "fill",
        "market": info.symbol,
        "market_id": e.market_id,
        "maker_order_id": e.maker_order_id,
        "taker_order_id": e.taker_order_id,
        "maker": to_hex(e.maker),
        "taker": to_hex(e.taker),
        "side": "buy" if e.taker_is_buy else "sell",
        "price": info.ticks_to_price(e.price_ticks),
        "size": info.lots_to_size(e.size_lots),
        "maker_fee": quote_to_usdc(e.maker_fee_quote),
        "taker_fee": quote_to_usdc(e.taker_fee_quote),
    }


def _position_changed(e: PositionChanged, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "position_changed",
        "account": to_hex(e.account),
        "market": info.symbol,
        "market_id": e.market_id,
        "size": info.lots_to_size(e.size_lots),
        "entry_cost": quote_to_usdc(e.entry_cost_quote),
        "realized_pnl": quote_to_usdc(e.realized_pnl_quote),
        "fees": quote_to_usdc(e.fees_quote),
        "funding": quote_to_usdc(e.funding_quote),
    }


def _funding_tick(e: FundingTick, markets: dict[int, MarketInfo]) -> JsonObject:
    """A funding tick: ``rate_ppm`` per interval of the mark notional; a lot long pays
    ``index_step_micro`` micro-quote units (receives it if negative)."""
    info = _market_info(markets, e.market_id)
    return {
        "type": "funding_tick",
        "market": info.symbol,
        "market_id": e.market_id,
        "timestamp_ms": e.timestamp_ms,
        "premium_avg_ppm": e.premium_avg_ppm,
        "samples": e.samples,
        "rate_ppm": e.rate_ppm,
        "mark_price": info.ticks_to_price(e.mark_ticks),
        "index_step_micro": e.index_step_micro,
        "index_micro": e.index_micro,
    }


def _oracle_price_updated(e: OraclePriceUpdated, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "oracle_price_updated",
        "market": info.symbol,
        "market_id": e.market_id,
        "price": info.ticks_to_price(e.price_ticks),
        "timestamp_ms": e.timestamp_ms,
        "signer": to_hex(e.signer),
    }


def _oracle_stale(e: OracleStale, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "oracle_stale",
        "market": info.symbol,
        "market_id": e.market_id,
        "since_ms": e.since_ms,
        "index_price": info.ticks_to_price(e.index_ticks),
    }


def _oracle_fresh(e: OracleFresh, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "oracle_fresh",
        "market": info.symbol,
        "market_id": e.market_id,
        "stale_since_ms": e.stale_since_ms,
        "index_price": info.ticks_to_price(e.index_ticks),
    }


def _agent_approved(e: AgentApproved, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "agent_approved",
        "account": to_hex(e.account),
        "public_key": to_hex(e.public_key),
        "valid_until_ms": e.valid_until_ms,
    }


def _agent_revoked(e: AgentRevoked, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "agent_revoked",
        "account": to_hex(e.account),
        "public_key": to_hex(e.public_key),
    }


def _transferred(e: Transferred, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "transferred",
        "sender": to_hex(e.sender),
        "recipient": to_hex(e.recipient),
        "amount": quote_to_usdc(e.amount_quote),
    }


def _withdrawal_requested(e: WithdrawalRequested, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "withdrawal_requested",
        "withdrawal_id": e.withdrawal_id,
        "account": to_hex(e.account),
        "destination": to_hex(e.destination),
        "amount": quote_to_usdc(e.amount_quote),
    }


def _deposited(e: Deposited, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "deposited",
        "index": e.index,
        "account": to_hex(e.account),
        "amount": quote_to_usdc(e.amount_quote),
    }


def _fee_charged(e: FeeCharged, markets: dict[int, MarketInfo]) -> JsonObject:
    return {"type": "fee_charged", "account": to_hex(e.account), "fee": quote_to_usdc(e.fee_quote)}


def _account_liquidated(e: AccountLiquidated, markets: dict[int, MarketInfo]) -> JsonObject:
    """Why: ``equity < maintenance``; ``close_ppm`` of each position closes in this block."""
    return {
        "type": "account_liquidated",
        "account": to_hex(e.account),
        "equity": quote_to_usdc(e.equity_quote),
        "maintenance": quote_to_usdc(e.maintenance_quote),
        "close_ppm": e.close_ppm,
        "orders_canceled": e.orders_canceled,
        "isolated_market": (
            None
            if e.isolated_market_id is None
            else _market_info(markets, e.isolated_market_id).symbol
        ),
        "isolated_market_id": e.isolated_market_id,
    }


def _position_liquidated(e: PositionLiquidated, markets: dict[int, MarketInfo]) -> JsonObject:
    """One position's liquidation slice, with its prices, limits and where it went."""
    info = _market_info(markets, e.market_id)
    return {
        "type": "position_liquidated",
        "account": to_hex(e.account),
        "market": info.symbol,
        "market_id": e.market_id,
        "mark_price": info.ticks_to_price(e.mark_ticks),
        "index_price": info.ticks_to_price(e.index_ticks),
        "size_before": info.lots_to_size(e.size_before_lots),
        "wanted_size": info.lots_to_size(e.wanted_lots),
        "budget": quote_to_usdc(e.budget_quote),
        "slice_size": info.lots_to_size(e.slice_lots),
        "equity_share": quote_to_usdc(e.equity_share_quote),
        "bankruptcy_value": quote_to_usdc(e.bankruptcy_value_quote),
        "bankruptcy_price": info.ticks_to_price(e.limit_price_ticks),
        "book_size": info.lots_to_size(e.book_lots),
        "book_value": quote_to_usdc(e.book_value_quote),
        "fee": quote_to_usdc(e.fee_quote),
        "backstop_size": info.lots_to_size(e.backstop_lots),
        "backstop_value": quote_to_usdc(e.backstop_value_quote),
        "fund_loss": quote_to_usdc(e.fund_loss_quote),
        "fund_loss_limit": quote_to_usdc(e.fund_loss_limit_quote),
        "adl_size": info.lots_to_size(e.adl_lots),
        "adl_value": quote_to_usdc(e.adl_value_quote),
    }


def _deleveraged(e: Deleveraged, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "deleveraged",
        "account": to_hex(e.account),
        "counterparty": to_hex(e.counterparty),
        "market": info.symbol,
        "market_id": e.market_id,
        "size": info.lots_to_size(e.size_lots),
        "value": quote_to_usdc(e.value_quote),
        "rank": e.rank,
        "rank_key": e.rank_key,
    }


def _fund_deleveraged(e: FundDeleveraged, markets: dict[int, MarketInfo]) -> JsonObject:
    market = None if e.market_id is None else _market_info(markets, e.market_id).symbol
    return {
        "type": "fund_deleveraged",
        "equity": quote_to_usdc(e.equity_quote),
        "notional": quote_to_usdc(e.notional_quote),
        "target": quote_to_usdc(e.target_quote),
        "close_ppm": e.close_ppm,
        "market": market,
        "market_id": e.market_id,
    }


def _bad_debt_changed(e: BadDebtChanged, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "bad_debt_changed",
        "account": to_hex(e.account),
        "covered_by_fund": quote_to_usdc(e.covered_by_fund_quote),
        "recorded": quote_to_usdc(e.recorded_quote),
        "total": quote_to_usdc(e.total_quote),
    }


_TRIGGER_STATUS_NAMES: Final = {s.value: s.name.lower() for s in TriggerStatus}


def _trigger_update(e: TriggerUpdate, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "trigger_update",
        "account": to_hex(e.account),
        "market": info.symbol,
        "market_id": e.market_id,
        "trigger_id": e.trigger_id,
        "status": _TRIGGER_STATUS_NAMES.get(e.status, "unknown"),
        "status_code": e.status,
        "mark_price": info.ticks_to_price(e.mark_ticks) if e.mark_ticks else None,
    }


def _scheduled_cancel_fired(e: ScheduledCancelFired, markets: dict[int, MarketInfo]) -> JsonObject:
    return {
        "type": "scheduled_cancel_fired",
        "account": to_hex(e.account),
        "at_ms": e.at_ms,
        "orders_canceled": e.orders_canceled,
        "triggers_canceled": e.triggers_canceled,
    }


def _cancel_scheduled(e: CancelScheduled, markets: dict[int, MarketInfo]) -> JsonObject:
    return {"type": "cancel_scheduled", "account": to_hex(e.account), "at_ms": e.at_ms}


def _margin_mode_changed(e: MarginModeChanged, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "margin_mode_changed",
        "account": to_hex(e.account),
        "market": info.symbol,
        "market_id": e.market_id,
        "isolated": e.isolated,
    }


def _isolated_margin_moved(e: IsolatedMarginMoved, markets: dict[int, MarketInfo]) -> JsonObject:
    info = _market_info(markets, e.market_id)
    return {
        "type": "isolated_margin_moved",
        "account": to_hex(e.account),
        "market": info.symbol,
        "market_id": e.market_id,
        "amount": quote_to_usdc(e.amount_quote),
        "cash": quote_to_usdc(e.cash_quote),
    }


_EVENT_WRITERS: Final[dict[type, Callable[[Any, dict[int, MarketInfo]], JsonObject]]] = {
    AgentApproved: _agent_approved,
    AgentRevoked: _agent_revoked,
    Transferred: _transferred,
    WithdrawalRequested: _withdrawal_requested,
    Deposited: _deposited,
    OraclePriceUpdated: _oracle_price_updated,
    FeeCharged: _fee_charged,
    OrderUpdate: _order_update,
    FillEvent: _fill,
    PositionChanged: _position_changed,
    OracleStale: _oracle_stale,
    OracleFresh: _oracle_fresh,
    FundingTick: _funding_tick,
    AccountLiquidated: _account_liquidated,
    PositionLiquidated: _position_liquidated,
    Deleveraged: _deleveraged,
    BadDebtChanged: _bad_debt_changed,
    FundDeleveraged: _fund_deleveraged,
    TriggerUpdate: _trigger_update,
    ScheduledCancelFired: _scheduled_cancel_fired,
    CancelScheduled: _cancel_scheduled,
    MarginModeChanged: _margin_mode_changed,
    IsolatedMarginMoved: _isolated_margin_moved,
}


def event_to_json(event: Event, markets: dict[int, MarketInfo]) -> JsonObject:
    """A receipt event as JSON: ``{"type": "<snake_case name>", ...}``.

    Bytes as ``0x`` hex; prices, sizes and money as decimal strings in the market's units (sizes
    and money may be negative: a short position, a rebate, a loss); every event of a market also
    carries ``market`` (symbol) and ``market_id``. An ``order_update`` carries ``status`` and
    ``reason`` as lowercase names (``"open"``, ``"ioc_remainder"``; ``"unknown"`` for a code this
    SDK does not know) and their integer ``status_code``/``reason_code``.

    Types: ``agent_approved``, ``agent_revoked``, ``transferred``, ``withdrawal_requested``,
    ``deposited``, ``oracle_price_updated``, ``fee_charged``, ``order_update``, ``fill``,
    ``position_changed``, ``oracle_stale``, ``oracle_fresh``, ``funding_tick``,
    ``account_liquidated``, ``position_liquidated``, ``deleveraged``, ``fund_deleveraged``,
    ``bad_debt_changed``,
    ``trigger_update``, ``scheduled_cancel_fired``, ``cancel_scheduled``,
    ``margin_mode_changed``, ``isolated_margin_moved``. Raises
    ``RpcError(UNKNOWN_MARKET)`` for a market not in ``markets`` and ``TypeError`` for an object
    that is not an event.
    """
    writer = _EVENT_WRITERS.get(type(event))
    if writer is None:
        raise TypeError(f"not an event: {event!r}")
    return writer(event, markets)


__all__ = [
    "ACTION_TYPES",
    "MAX_JSON_INT",
    "SIDES",
    "TIF_NAMES",
    "action_from_json",
    "action_to_json",
    "event_to_json",
    "read_hex",
    "read_int",
    "to_hex",
    "transaction_from_json",
    "transaction_to_json",
]

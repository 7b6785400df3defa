"""The API's error codes (docs/api.md), shared by the node and the SDK.

JSON-RPC's own codes for malformed requests, the chain's codes (``core.errors.ErrorCode``) for
transactions refused at admission, and the node's codes in the 4000s. Every error carries a
stable ``name`` in ``data.name``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from strata.core.errors import ErrorCode


class RpcCode(IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    BODY_TOO_LARGE = 4001
    BATCH_TOO_LARGE = 4002
    MEMPOOL_FULL = 4003
    RATE_LIMITED = 4004
    TOO_MANY_SUBSCRIPTIONS = 4005
    OFF_GRID = 4006
    UNKNOWN_MARKET = 4007
    HEIGHT_UNAVAILABLE = 4008
    NOT_FOUND = 4009
    DEVNET_ONLY = 4010
    WEBSOCKET_ONLY = 4011
    SHUTTING_DOWN = 4012
    NONCE_ALREADY_PENDING = 4013


def code_name(code: int) -> str:
    """The stable name of an API or chain error code (``"UNKNOWN"`` if it has none)."""
    for enum in (RpcCode, ErrorCode):
        try:
            return enum(code).name
        except ValueError:
            continue
    return "UNKNOWN"


class RpcError(Exception):
    """An error the API returns (server side) or returned (client side)."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {code_name(code)}: {message}")
        self.code = int(code)
        self.message = message
        self.name = code_name(code)
        self.data = {"name": self.name} if data is None else {"name": self.name, **data}

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}

    @classmethod
    def from_json(cls, error: dict[str, Any]) -> RpcError:
        data = error.get("data")
        extra = {k: v for k, v in data.items() if k != "name"} if isinstance(data, dict) else None
        return cls(int(error.get("code", RpcCode.INTERNAL_ERROR)), str(error.get("message")), extra)

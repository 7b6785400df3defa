"""``strata keys|account|order|book|tail``: the node's API for people, over the public SDK.

Commands
--------
``strata keys new [--out FILE]``                    a new wallet key (file written mode 0600)
``strata account ADDRESS``                          cross margin, positions (isolated ones with
                                                    their own margin), orders, triggers
``strata order place MARKET buy|sell SIZE PRICE``   sign and send a limit order (``--key FILE``;
                                                    ``--expires-in SECONDS``: good-til-time)
``strata order cancel MARKET --order-id N``         cancel by order id or ``--client-id``
``strata book MARKET [--depth N]``                  the order book
``strata tail trades MARKET``                       follow the trades feed until Ctrl-C

Every command takes ``--url`` (default ``$STRATA_URL`` or ``http://127.0.0.1:8545``) and
``--json`` (machine-readable output: one JSON document, or for ``tail`` one per line: the feed
message of each block with trades, and any ``reset``). Sizes and prices are decimal strings in
the market's units (``0.25`` BTC at ``50010.5`` USDC); a value off the market's tick or lot is
refused, never rounded. Exit status: 0 on success, 1 when the node refuses or cannot be reached,
2 for a usage error.

:func:`register` adds these commands to an ``argparse`` parser; :func:`main` runs them alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from strata.client import Client, FeedClient, RpcError, Trader, Wallet, wallet_from_seed
from strata.client.feeds import to_ws_url

DEFAULT_URL = "http://127.0.0.1:8545"
URL_ENV = "STRATA_URL"

Handler = Callable[[argparse.Namespace], int]


# --- output --------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)  # only to decide the alignment of a column
    except ValueError:
        return False
    return True


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned columns; columns whose values are all numbers are right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [
        bool(cells) and all(_is_number(row[i]) or row[i] == "" for row in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _dict_table(rows: Sequence[dict[str, Any]], preferred: Sequence[str]) -> str:
    keys = [k for k in preferred if any(k in row for row in rows)]
    keys += sorted({k for row in rows for k in row} - set(keys))
    return format_table(keys, [[_cell(row.get(k)) for k in keys] for row in rows])


def _cell(value: object) -> object:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return str(value).lower()
    return value


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


# --- keys ----------------------------------------------------------------------------------------


def new_wallet() -> tuple[Wallet, bytes]:
    """A fresh random wallet and its 32-byte private key."""
    while True:
        private_key = secrets.token_bytes(32)
        try:
            return Wallet(private_key), private_key
        except ValueError:  # outside [1, n - 1]: probability about 2**-128
            continue


def write_key_file(path: Path, wallet: Wallet, private_key: bytes) -> None:
    """Write ``{"address", "private_key"}`` to a new file readable by its owner only (0600).

    Raises ``FileExistsError`` rather than overwrite a key.
    """
    document = {"address": "0x" + wallet.address.hex(), "private_key": "0x" + private_key.hex()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")


def load_key_file(path: Path) -> Wallet:
    """The wallet of a key file written by ``strata keys new --out``.

    Raises ``ValueError`` if the file is malformed or its address does not match its key.
    """
    document = json.loads(path.read_text())
    key_hex = str(document.get("private_key", ""))
    if not key_hex.startswith("0x"):
        raise ValueError(f"{path}: private_key must be 0x-prefixed hex")
    wallet = Wallet(bytes.fromhex(key_hex[2:]))
    address = document.get("address")
    if address is not None and str(address).lower() != "0x" + wallet.address.hex():
        raise ValueError(f"{path}: the address does not match the private key")
    return wallet


def _wallet(args: argparse.Namespace) -> Wallet:
    if args.seed is not None:
        return wallet_from_seed(args.seed)
    return load_key_file(Path(args.key))


def _cmd_keys_new(args: argparse.Namespace) -> int:
    wallet, private_key = new_wallet()
    address = "0x" + wallet.address.hex()
    if args.out is not None:
        write_key_file(Path(args.out), wallet, private_key)
        if args.json:
            _print_json({"address": address, "key_file": str(args.out)})
        else:
            print(f"address   {address}\nkey file  {args.out} (mode 0600)")
        return 0
    if args.json:
        _print_json({"address": address, "private_key": "0x" + private_key.hex()})
    else:
        print(f"address      {address}\nprivate key  0x{private_key.hex()}")
        print("keep the private key secret; --out FILE writes it to a 0600 file", file=sys.stderr)
    return 0


# --- queries -------------------------------------------------------------------------------------

_SUMMARY_FIELDS = (
    "collateral",
    "equity",
    "free_collateral",
    "withdrawable",
    "reserved",
    "initial_margin",
    "maintenance_margin",
    "margin_ratio",
    "liquidatable",
    "isolated_markets",
    "cancel_at_ms",
    "height",
)
"""The account's summary: the cross-margin figures (isolated positions have their own)."""

_ISOLATED_FIELDS = (
    "cash",
    "equity",
    "withdrawable",
    "initial_margin",
    "maintenance_margin",
    "margin_ratio",
    "liquidatable",
)


def _isolated_rows(positions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per isolated position: its market and size, then its own margin figures."""
    rows = []
    for position in positions:
        figures = position.get("isolated_margin")
        if isinstance(figures, dict):
            row = {"market": position.get("market"), "size": position.get("size")}
            row.update((key, figures.get(key)) for key in _ISOLATED_FIELDS if key in figures)
            rows.append(row)
    return rows


def _cmd_account(args: argparse.Namespace) -> int:
    with Client(args.url) as client:
        account = client.account(args.address)
    if args.json:
        _print_json(account)
        return 0
    print(f"account {account.get('address', args.address)}")
    summary = [[key, _cell(account.get(key))] for key in _SUMMARY_FIELDS if key in account]
    print(format_table(["cross margin", "value"], summary))
    positions = account.get("positions") or []
    tables = (
        (
            "positions",
            [{k: v for k, v in p.items() if k != "isolated_margin"} for p in positions],
            ("market", "size", "entry_price", "mark_price", "unrealized_pnl", "isolated"),
        ),
        ("isolated positions", _isolated_rows(positions), ("market", "size", *_ISOLATED_FIELDS)),
        (
            "open orders",
            account.get("open_orders") or [],
            ("market", "order_id", "client_id", "side", "price"),
        ),
        (
            "triggers",
            account.get("triggers") or [],
            ("market", "trigger_id", "side", "trigger_price", "size"),
        ),
        ("agents", account.get("agents") or [], ("public_key", "valid_until_ms")),
    )
    for title, rows, preferred in tables:
        if title == "isolated positions" and not rows:
            continue
        print(f"\n{title}")
        print(_dict_table(rows, preferred) if rows else "  (none)")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    with Client(args.url) as client:
        book = client.book(args.market, args.depth)
    if args.json:
        _print_json(book)
        return 0
    asks = [["ask", price, size] for price, size in reversed(book.get("asks", []))]
    bids = [["bid", price, size] for price, size in book.get("bids", [])]
    print(f"{book.get('market', args.market)}  height {book.get('height')}  seq {book.get('seq')}")
    print(format_table(["side", "price", "size"], [*asks, *bids]))
    return 0


# --- orders --------------------------------------------------------------------------------------


def _submitted(args: argparse.Namespace, outcome: Any) -> int:
    if args.json:
        _print_json(outcome if isinstance(outcome, dict) else {"hash": outcome})
    elif isinstance(outcome, dict):
        print(f"{outcome.get('hash')}  {outcome.get('status')} at height {outcome.get('height')}")
        receipt = outcome.get("receipt") or {}
        for event in receipt.get("events", []) if isinstance(receipt, dict) else []:
            print("  " + json.dumps(event, separators=(",", ":")))
    else:
        print(outcome)
    return 0


def _cmd_order_place(args: argparse.Namespace) -> int:
    with Client(args.url) as client:
        trader = Trader(client, _wallet(args))
        outcome = trader.place(
            args.market,
            args.side,
            args.price,
            args.size,
            tif=args.tif,
            reduce_only=args.reduce_only,
            client_id=args.client_id,
            expires_at_ms=_expires_at_ms(args.expires_in),
            wait=args.wait,
        )
    return _submitted(args, outcome)


def _expires_at_ms(seconds: float | None) -> int | None:
    """``--expires-in``: this many seconds from now, as the order's ``expires_at_ms``."""
    if seconds is None:
        return None
    return time.time_ns() // 1_000_000 + round(seconds * 1000)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < 10**9:
        raise argparse.ArgumentTypeError(f"seconds must be positive, got {text}")
    return seconds


def _cmd_order_cancel(args: argparse.Namespace) -> int:
    with Client(args.url) as client:
        trader = Trader(client, _wallet(args))
        outcome = trader.cancel(
            args.market, order_id=args.order_id, client_id=args.client_id, wait=args.wait
        )
    return _submitted(args, outcome)


# --- feeds ---------------------------------------------------------------------------------------


async def _tail_trades(args: argparse.Namespace) -> None:
    async with FeedClient(to_ws_url(args.url)) as feeds:
        async for message in feeds.subscribe("trades", market=args.market):
            # One message per block: most have no trades, and are not shown.
            if message.get("type") == "reset":
                # The feed skipped trades the node no longer keeps (``strata_getTrades``).
                if args.json:
                    print(json.dumps(message), flush=True)
                else:
                    print(
                        f"(feed reset at height {message.get('height', '?')}: "
                        "trades before it may be missing)",
                        file=sys.stderr,
                        flush=True,
                    )
                continue
            if not message.get("trades"):
                continue
            if args.json:
                print(json.dumps(message), flush=True)
                continue
            for trade in message["trades"]:
                print(
                    f"{message.get('height', ''):>10}  {trade.get('side', ''):<4}  "
                    f"{trade.get('size', ''):>14} @ {trade.get('price', ''):<14}  "
                    f"maker {trade.get('maker', '')}  taker {trade.get('taker', '')}",
                    flush=True,
                )


def _cmd_tail_trades(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail_trades(args))
    return 0


# --- wiring --------------------------------------------------------------------------------------


def _guarded(handler: Handler) -> Handler:
    """Turn the errors a person can act on into a message and an exit status."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except RpcError as exc:
            print(f"error: {exc.name} ({exc.code}): {exc.message}", file=sys.stderr)
            return 1
        except (httpx.HTTPError, aiohttp.ClientError, ConnectionError) as exc:
            print(f"error: cannot reach the node at {args.url}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # a key file that cannot be read or written
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


def _common() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the node's URL (default ${URL_ENV} or {DEFAULT_URL})",
    )
    parent.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parent


def _signer() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    who = parent.add_mutually_exclusive_group(required=True)
    who.add_argument("--key", metavar="FILE", help="key file written by `strata keys new --out`")
    who.add_argument("--seed", metavar="LABEL", help="devnet only: the key derived from LABEL")
    parent.add_argument("--wait", action="store_true", help="wait for the block and show it")
    return parent


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys``, ``account``, ``order``, ``book`` and ``tail`` to a ``strata`` parser.

    Each command sets ``func``: call ``args.func(args)`` for its exit status.
    """
    common, signer = _common(), _signer()

    keys = subparsers.add_parser("keys", help="wallet keys").add_subparsers(
        dest="keys_command", required=True
    )
    new = keys.add_parser("new", parents=[common], help="print or save a new wallet key")
    new.add_argument("--out", metavar="FILE", help="write a JSON key file (mode 0600)")
    new.set_defaults(func=_guarded(_cmd_keys_new))

    account = subparsers.add_parser("account", parents=[common], help="show an account")
    account.add_argument("address", help="0x-prefixed 20-byte address")
    account.set_defaults(func=_guarded(_cmd_account))

    order = subparsers.add_parser("order", help="place or cancel orders").add_subparsers(
        dest="order_command", required=True
    )
    place = order.add_parser("place", parents=[common, signer], help="place a limit order")
    place.add_argument("market", help="symbol (BTC-PERP) or id")
    place.add_argument("side", choices=("buy", "sell"))
    place.add_argument("size", help="in units of the base asset, e.g. 0.25")
    place.add_argument("price", help="in USDC per unit, e.g. 50010.5")
    place.add_argument("--tif", default="gtc", choices=("gtc", "ioc", "fok", "post_only"))
    place.add_argument("--reduce-only", action="store_true")
    place.add_argument("--client-id", type=int, default=None)
    place.add_argument(
        "--expires-in",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="good-til-time: canceled by the first block this many seconds from now",
    )
    place.set_defaults(func=_guarded(_cmd_order_place))

    cancel = order.add_parser("cancel", parents=[common, signer], help="cancel an order")
    cancel.add_argument("market")
    which = cancel.add_mutually_exclusive_group(required=True)
    which.add_argument("--order-id", type=int)
    which.add_argument("--client-id", type=int)
    cancel.set_defaults(func=_guarded(_cmd_order_cancel))

    book = subparsers.add_parser("book", parents=[common], help="show a market's book")
    book.add_argument("market")
    book.add_argument("--depth", type=int, default=20, help="levels per side (at most 100)")
    book.set_defaults(func=_guarded(_cmd_book))

    tail = subparsers.add_parser("tail", help="follow a feed").add_subparsers(
        dest="tail_command", required=True
    )
    tail_trades = tail.add_parser("trades", parents=[common], help="follow a market's trades")
    tail_trades.add_argument("market")
    tail_trades.set_defaults(func=_guarded(_cmd_tail_trades))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strata", description="Trade on a Strata node.")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one of these commands (``argv`` without the program name); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    handler: Handler = args.func
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""``strata replay-book``: replay an order stream through the matching engine and measure it.

Two input formats (see ``docs/replay.md`` for usage, the treatment of pre-open orders, unknown
deeper levels and hidden executions, and measured figures):

- ``--format jsonl FILE``: one event a line, ``limit``/``market``/``cancel``/``reduce``; each
  order id is its own owner, so self-trade prevention never triggers. ``--fills`` writes the
  fills.
- ``--format lobster MESSAGE_FILE --initial-book ORDERBOOK_FILE``: a LOBSTER message file,
  starting from LOBSTER's first snapshot with message 0 taken out, one synthetic resting order
  per snapshot level. ``--snapshots`` writes the top ``--levels`` levels after each event in
  LOBSTER's orderbook layout; ``--check-steps`` checks every single step against LOBSTER.

Bad input exits with code 2 and a message naming the file and line. This is ring 2: it reads
files, measures wall time and prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal, TextIO

import msgspec

from strata.modules.book import Book, Order, TimeInForce

__all__ = ["main"]

_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_MARKET_BUY_PRICE = (1 << 63) - 1
"""Limit of a market buy: above any price (a market order is an IOC at the worst price)."""
_MARKET_SELL_PRICE = 1
"""Limit of a market sell: the lowest valid price."""
_OPEN_LIMIT = 1 << 62
"""Per-owner open-order limit in replays (each order is its own owner anyway)."""
LOBSTER_ASK_PAD = 9999999999
LOBSTER_BID_PAD = -9999999999
CHECK_LEVELS = 9
"""Levels compared per step by ``--check-steps``: a 10th level may come into view from below
that LOBSTER's previous snapshot did not show."""
_PROGRESS_EVERY = 1 << 16


class ReplayInputError(Exception):
    """Bad input: reported as ``FILE:LINE: message``, exit code 2."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")


# --------------------------------------------------------------------------- jsonl

_PosInt = Annotated[int, msgspec.Meta(gt=0)]
_Side = Literal["buy", "sell"]


class _Limit(msgspec.Struct, tag="limit", tag_field="op", forbid_unknown_fields=True):
    id: int
    side: _Side
    price: _PosInt
    qty: _PosInt


class _Market(msgspec.Struct, tag="market", tag_field="op", forbid_unknown_fields=True):
    id: int
    side: _Side
    qty: _PosInt


class _Cancel(msgspec.Struct, tag="cancel", tag_field="op", forbid_unknown_fields=True):
    id: int


class _Reduce(msgspec.Struct, tag="reduce", tag_field="op", forbid_unknown_fields=True):
    id: int
    qty: _PosInt


_JsonEvent = _Limit | _Market | _Cancel | _Reduce


class _FillRecord(msgspec.Struct):
    taker: int
    maker: int
    price: int
    qty: int


def _owner(order_id: int) -> bytes:
    """A distinct owner per order id (so self-trade prevention never triggers in a replay)."""
    return order_id.to_bytes(9, "big", signed=True)


def _read_jsonl(path: str) -> list[tuple[int, int, bool, int, int, int]]:
    """Decode and validate every line into ``(kind, id, is_buy, price, qty, line_no)`` with kind
    0 limit, 1 market, 2 cancel, 3 reduce. Blank lines are skipped. Raises
    ``ReplayInputError``."""
    decoder = msgspec.json.Decoder(_JsonEvent)
    out: list[tuple[int, int, bool, int, int, int]] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                ev = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise ReplayInputError(path, line_no, str(exc)) from None
            if not -(1 << 63) <= ev.id < (1 << 63):
                raise ReplayInputError(path, line_no, f"id {ev.id} out of int64 range")
            if isinstance(ev, _Limit):
                out.append((0, ev.id, ev.side == "buy", ev.price, ev.qty, line_no))
            elif isinstance(ev, _Market):
                is_buy = ev.side == "buy"
                price = _MARKET_BUY_PRICE if is_buy else _MARKET_SELL_PRICE
                out.append((1, ev.id, is_buy, price, ev.qty, line_no))
            elif isinstance(ev, _Cancel):
                out.append((2, ev.id, False, 0, 0, line_no))
            else:
                out.append((3, ev.id, False, 0, ev.qty, line_no))
    return out


@dataclass
class _Stats:
    events: int = 0
    fills: int = 0
    filled_qty: int = 0
    unknown_ids: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _progress(done: int, total: int) -> None:
    sys.stderr.write(f"\r{done:,}/{total:,} events")
    sys.stderr.flush()


def _replay_jsonl(
    path: str, events: list[tuple[int, int, bool, int, int, int]], fills_out: TextIO | None
) -> _Stats:
    """Run decoded jsonl events through a fresh book. Raises ``ReplayInputError`` if an order
    id is reused while that order rests."""
    book = Book(0, max_open_orders_per_owner=_OPEN_LIMIT)
    place, cancel, reduce, get = book.place, book.cancel, book.reduce, book.get_order
    stats = _Stats(events=len(events))
    encode = msgspec.json.Encoder().encode
    lines: list[bytes] = []
    show = sys.stderr.isatty() and len(events) >= 4 * _PROGRESS_EVERY
    n_fills = filled = unknown = 0
    for i, (kind, order_id, is_buy, price, qty, line_no) in enumerate(events):
        if kind <= 1:
            if get(order_id) is not None:
                raise ReplayInputError(path, line_no, f"order id {order_id} is already resting")
            result = place(
                Order(order_id, _owner(order_id), is_buy, price, qty), _IOC if kind else _GTC
            )
            if result.fills:
                n_fills += len(result.fills)
                filled += result.filled_lots
                if fills_out is not None:
                    for fill in result.fills:
                        lines.append(
                            encode(
                                _FillRecord(
                                    order_id, fill.maker.order_id, fill.price_ticks, fill.size_lots
                                )
                            )
                        )
        elif kind == 2:
            if cancel(order_id) is None:
                unknown += 1
        elif reduce(order_id, qty) is None:
            unknown += 1
        if show and not i % _PROGRESS_EVERY:
            _progress(i, len(events))
    if show:
        _progress(len(events), len(events))
        sys.stderr.write("\n")
    if fills_out is not None:
        fills_out.write("".join(line.decode() + "\n" for line in lines))
    stats.fills, stats.filled_qty, stats.unknown_ids = n_fills, filled, unknown
    return stats


# -------------------------------------------------------------------------- lobster


@dataclass(frozen=True)
class LobsterMessage:
    """One LOBSTER message line: ``type`` 1 new, 2 partial cancel, 3 delete, 4 visible
    execution, 5 hidden execution, 7 halt; ``is_buy`` is the side of the order concerned (for
    executions, the resting order's side)."""

    line: int
    type: int
    order_id: int
    size: int
    price: int
    is_buy: bool


Levels = list[tuple[int, int]]
"""Price levels best first: ``(price_ticks, size_lots)``."""


def read_lobster_messages(path: str) -> list[LobsterMessage]:
    """Parse a LOBSTER message file. Raises ``ReplayInputError`` with the line number."""
    out: list[LobsterMessage] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            parts = raw.strip().split(",")
            if len(parts) != 6:
                raise ReplayInputError(path, line_no, f"expected 6 fields, got {len(parts)}")
            try:
                float(parts[0])  # the timestamp is validated, not used
                kind, order_id, size, price, direction = (int(p) for p in parts[1:])
            except ValueError:
                raise ReplayInputError(path, line_no, f"not a number in {raw.strip()!r}") from None
            if kind not in (1, 2, 3, 4, 5, 7):
                raise ReplayInputError(path, line_no, f"unknown event type {kind}")
            if direction not in (1, -1):
                raise ReplayInputError(path, line_no, f"direction must be 1 or -1: {direction}")
            if kind != 7 and (size <= 0 or price <= 0):
                raise ReplayInputError(path, line_no, "size and price must be positive")
            out.append(LobsterMessage(line_no, kind, order_id, size, price, direction == 1))
    return out


def read_lobster_book(path: str) -> list[tuple[Levels, Levels]]:
    """Parse a LOBSTER orderbook file into ``(asks, bids)`` per row, dummy levels dropped.
    Raises ``ReplayInputError`` with the line number."""
    out: list[tuple[Levels, Levels]] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            parts = raw.strip().split(",")
            if len(parts) % 4:
                raise ReplayInputError(path, line_no, f"field count {len(parts)} not 4 * levels")
            try:
                values = [int(p) for p in parts]
            except ValueError:
                raise ReplayInputError(
                    path, line_no, f"not an integer in {raw.strip()!r}"
                ) from None
            asks: Levels = []
            bids: Levels = []
            for i in range(0, len(values), 4):
                ask_p, ask_s, bid_p, bid_s = values[i : i + 4]
                if ask_s > 0 and ask_p != LOBSTER_ASK_PAD:
                    asks.append((ask_p, ask_s))
                if bid_s > 0 and bid_p != LOBSTER_BID_PAD:
                    bids.append((bid_p, bid_s))
            out.append((asks, bids))
    return out


def lobster_row(book: Book, levels: int) -> list[int]:
    """The book's top ``levels`` in LOBSTER's layout (ask p, ask s, bid p, bid s, ...),
    padded with LOBSTER's dummy levels."""
    bids, asks = book.depth(levels)
    row: list[int] = []
    for i in range(levels):
        ask = asks[i] if i < len(asks) else (LOBSTER_ASK_PAD, 0)
        bid = bids[i] if i < len(bids) else (LOBSTER_BID_PAD, 0)
        row += (ask[0], ask[1], bid[0], bid[1])
    return row


def _levels_row(asks: Levels, bids: Levels, levels: int) -> list[int]:
    row: list[int] = []
    for i in range(levels):
        ask = asks[i] if i < len(asks) else (LOBSTER_ASK_PAD, 0)
        bid = bids[i] if i < len(bids) else (LOBSTER_BID_PAD, 0)
        row += (ask[0], ask[1], bid[0], bid[1])
    return row


def unapply_first(asks: Levels, bids: Levels, msg: LobsterMessage) -> tuple[Levels, Levels]:
    """The book before ``msg`` given the snapshot after it (visible levels only).

    Type 1 (new order) subtracts its size at its price; types 2, 3 and 4 (cancel, delete,
    execution) add the size back at the price on the side of the order concerned; 5 and 7 change
    nothing visible.
    """
    side = dict(bids if msg.is_buy else asks)
    if msg.type == 1:
        side[msg.price] = side.get(msg.price, 0) - msg.size
    elif msg.type in (2, 3, 4):
        side[msg.price] = side.get(msg.price, 0) + msg.size
    rebuilt = sorted(((p, s) for p, s in side.items() if s > 0), reverse=msg.is_buy)
    return (asks, rebuilt) if msg.is_buy else (rebuilt, bids)


class LobsterBook:
    """A book replaying LOBSTER messages, seeded with one synthetic order per snapshot level.

    Synthetic orders have negative ids and stand for the unknown individual orders resting at
    that level (pre-open orders, or every order of a level when rebuilt from a snapshot). A
    message naming an id the book does not hold is applied to the synthetic order at its price
    and side; if there is none (the level was deeper than the snapshot showed), it is counted
    in ``unknown_deeper`` and skipped.
    """

    def __init__(self, asks: Levels, bids: Levels) -> None:
        self.book = Book(0, max_open_orders_per_owner=_OPEN_LIMIT)
        self._synthetic: dict[tuple[bool, int], int] = {}
        self._next_synthetic = -1
        self._next_taker = -(1 << 40)
        self.counts = {"hidden_executions": 0, "halts": 0, "unknown_deeper": 0, "fills": 0}
        for price, size in bids:
            self._add_synthetic(True, price, size)
        for price, size in asks:
            self._add_synthetic(False, price, size)

    def _add_synthetic(self, is_buy: bool, price: int, size: int) -> None:
        order_id = self._next_synthetic
        self._next_synthetic -= 1
        self.book.insert_resting(Order(order_id, _owner(order_id), is_buy, price, size))
        self._synthetic[(is_buy, price)] = order_id

    def _reduce_synthetic(self, is_buy: bool, price: int, size: int) -> None:
        order_id = self._synthetic.get((is_buy, price))
        if order_id is None or self.book.reduce(order_id, size) is None:
            self.counts["unknown_deeper"] += 1

    def apply(self, msg: LobsterMessage) -> list[tuple[int, int, int, int]]:
        """Apply one message; returns fills as ``(taker, maker, price, qty)``."""
        book = self.book
        kind = msg.type
        if kind == 1:
            order = Order(msg.order_id, _owner(msg.order_id), msg.is_buy, msg.price, msg.size)
            if book.get_order(msg.order_id) is not None:
                raise ReplayInputError("message file", msg.line, "order id already resting")
            result = book.place(order, _GTC)
            return self._fills(msg.order_id, result.fills)
        if kind == 2:
            if book.reduce(msg.order_id, msg.size) is None:
                self._reduce_synthetic(msg.is_buy, msg.price, msg.size)
        elif kind == 3:
            if book.cancel(msg.order_id) is None:
                self._reduce_synthetic(msg.is_buy, msg.price, msg.size)
        elif kind == 4:
            # An execution of a resting order on side ``is_buy``: a marketable order from the
            # other side, limited to the execution price, takes it in price-time priority.
            taker = self._next_taker
            self._next_taker -= 1
            order = Order(taker, _owner(taker), not msg.is_buy, msg.price, msg.size)
            return self._fills(taker, book.place(order, _IOC).fills)
        elif kind == 5:
            self.counts["hidden_executions"] += 1
        else:
            self.counts["halts"] += 1
        return []

    def _fills(self, taker: int, fills: Sequence[object]) -> list[tuple[int, int, int, int]]:
        self.counts["fills"] += len(fills)
        return [
            (taker, f.maker.order_id, f.price_ticks, f.size_lots)  # type: ignore[attr-defined]
            for f in fills
        ]


def check_steps(
    messages: list[LobsterMessage], rows: list[tuple[Levels, Levels]]
) -> tuple[int, int, list[int]]:
    """For every step k: rebuild a book from LOBSTER's snapshot before message k (row k-1; for
    k = 0 row 0 with message 0 taken out), apply message k, compare the top ``CHECK_LEVELS``
    levels with row k. Returns ``(steps_checked, steps_matching, mismatching steps)``."""
    checked = matching = 0
    bad: list[int] = []
    for k, msg in enumerate(messages[: len(rows)]):
        before = unapply_first(*rows[0], msg) if k == 0 else rows[k - 1]
        replayer = LobsterBook(*before)
        replayer.apply(msg)
        asks, bids = rows[k]
        checked += 1
        if lobster_row(replayer.book, CHECK_LEVELS) == _levels_row(asks, bids, CHECK_LEVELS):
            matching += 1
        else:
            bad.append(k)
    return checked, matching, bad


# ----------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strata replay-book",
        description="Replay an order stream through the order book and measure it.",
    )
    p.add_argument("--format", choices=("jsonl", "lobster"), required=True)
    p.add_argument("file", help="jsonl event file, or LOBSTER message file")
    p.add_argument("--initial-book", help="LOBSTER orderbook file (required for lobster)")
    p.add_argument("--fills", help="write one fill a line as JSON to this file")
    p.add_argument("--snapshots", help="lobster: write the top levels after each event (CSV)")
    p.add_argument("--levels", type=int, default=10, help="levels per snapshot row (10)")
    p.add_argument("--check-steps", metavar="ORDERBOOK_FILE", help="lobster: check every step")
    p.add_argument("--json", action="store_true", help="print a one-line JSON summary")
    return p


def _write_lines(path: str, lines: Iterable[str]) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.writelines(lines)


def _run_lobster(args: argparse.Namespace, summary: dict[str, object]) -> None:
    if not args.initial_book:
        raise ReplayInputError(args.file, 0, "--format lobster needs --initial-book")
    messages = read_lobster_messages(args.file)
    rows = read_lobster_book(args.initial_book)
    if not messages or not rows:
        raise ReplayInputError(args.file, 1, "empty message or orderbook file")
    start_asks, start_bids = unapply_first(*rows[0], messages[0])
    replayer = LobsterBook(start_asks, start_bids)
    fills: list[tuple[int, int, int, int]] = []
    snapshot_rows: list[list[int]] = []
    top_rows = top_matching = 0
    start = time.perf_counter()
    for k, msg in enumerate(messages):
        try:
            fills += replayer.apply(msg)
        except ReplayInputError:
            raise ReplayInputError(args.file, msg.line, "order id already resting") from None
        if args.snapshots:
            snapshot_rows.append(lobster_row(replayer.book, args.levels))
        if k < len(rows):
            asks, bids = rows[k]
            top_rows += 1
            best_ask = asks[0][0] if asks else None
            best_bid = bids[0][0] if bids else None
            if replayer.book.best_ask() == best_ask and replayer.book.best_bid() == best_bid:
                top_matching += 1
    elapsed = time.perf_counter() - start
    summary.update(events=len(messages), elapsed_s=elapsed)
    summary.update(top_of_book_rows=top_rows, top_of_book_matching=top_matching)
    summary.update(replayer.counts)
    if args.snapshots:
        _write_lines(args.snapshots, (",".join(map(str, r)) + "\n" for r in snapshot_rows))
    if args.fills:
        _write_lines(
            args.fills,
            (f'{{"taker":{t},"maker":{m},"price":{p},"qty":{q}}}\n' for t, m, p, q in fills),
        )
    if args.check_steps:
        check_rows = read_lobster_book(args.check_steps)
        checked, matching, bad = check_steps(messages, check_rows)
        summary.update(steps_checked=checked, steps_matching=matching)
        if bad:
            summary["first_mismatching_steps"] = bad[:10]


def main(argv: list[str]) -> int:
    """Run ``strata replay-book`` with ``argv`` (without the program name). Returns the exit
    code: 0 on success, 2 on bad input or usage."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    summary: dict[str, object] = {"format": args.format}
    try:
        if args.format == "jsonl":
            t0 = time.perf_counter()
            events = _read_jsonl(args.file)
            decode_s = time.perf_counter() - t0
            fills_out = open(args.fills, "w", encoding="ascii") if args.fills else None  # noqa: SIM115
            try:
                start = time.perf_counter()
                stats = _replay_jsonl(args.file, events, fills_out)
                elapsed = time.perf_counter() - start
            finally:
                if fills_out is not None:
                    fills_out.close()
            summary.update(events=stats.events, elapsed_s=elapsed, decode_s=round(decode_s, 6))
            summary.update(fills=stats.fills, filled_qty=stats.filled_qty)
            summary.update(unknown_ids=stats.unknown_ids)
            total_s = elapsed + decode_s
            summary["with_decode_events_per_s"] = round(stats.events / total_s) if total_s else 0
        else:
            _run_lobster(args, summary)
    except ReplayInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed_s = float(summary["elapsed_s"])  # type: ignore[arg-type]
    events = int(summary["events"])  # type: ignore[call-overload]
    summary["events_per_s"] = round(events / elapsed_s) if elapsed_s > 0 else 0
    summary["elapsed_s"] = round(elapsed_s, 6)
    if args.json:
        print(msgspec.json.encode(summary).decode())
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

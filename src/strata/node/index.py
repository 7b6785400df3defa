"""The node's own indexes, derived from committed blocks (ring 2, never consensus).

``DATA_DIR/index`` is an LMDB environment, written after each block commits, without ``fsync``:
it can always be rebuilt from the chain database, and on start :meth:`NodeIndex.catch_up`
re-indexes every committed block above its own tip (after a crash, the blocks whose index records
were lost). Databases:

- ``tx``: transaction hash -> height, position in the block, receipt status;
- ``left_out``: transaction hash -> the code it was left out of a block with;
- ``order``: market id, order id -> the order's latest known status;
- ``client``: account, market id, client id -> order id (the newest order with that client id);
- ``trigger``: account, market id, trigger id -> side and limit price of a trigger not yet fired
  or canceled (so the order it places when it fires gets a complete record);
- ``meta``: ``tip`` -> the highest indexed height.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path

import lmdb
import msgspec

from strata.modules import oracle
from strata.modules.book.types import OrderStatus
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.liquidation import PositionLiquidated
from strata.modules.triggers import TriggerStatus, TriggerUpdate
from strata.node.events import Phase, block_segments
from strata.state.store import State
from strata.stf.block import Block, BlockOutput
from strata.stf.events import Event
from strata.stf.transactions import (
    ModifyOrder,
    PlaceOrder,
    PlaceTrigger,
    SignedTransaction,
    compute_transaction_hash,
    decode_transaction,
    placements_of,
)

_TX = struct.Struct(">QII")
_U64 = struct.Struct(">Q")
_ORDER_KEY = struct.Struct(">IQ")


class OrderOrigin(IntEnum):
    """Who placed an order."""

    TRANSACTION = 0
    TRIGGER = 1
    """A fired trigger (``BlockEvents.matching``)."""
    LIQUIDATION = 2
    """The risk phase, for a liquidated account (its limit is the bankruptcy price)."""
    INSURANCE_FUND = 3
    """The risk phase, unwinding what the insurance fund holds (its limit is the mark)."""


class OrderRecord(msgspec.Struct, array_like=True):
    """What the node knows of an order (price and side once it rested or filled; an order no
    transaction placed takes them from its trigger, its liquidation or its fills)."""

    account: bytes
    client_id: int | None
    status: int
    reason: int
    remaining_lots: int
    filled_lots: int
    height: int
    is_buy: bool | None = None
    price_ticks: int | None = None
    origin: int = OrderOrigin.TRANSACTION
    trigger_id: int | None = None


class _TriggerRecord(msgspec.Struct, array_like=True, frozen=True):
    is_buy: bool
    price_ticks: int


_TRIGGER_DECODER = msgspec.msgpack.Decoder(_TriggerRecord)
_ORDER_DECODER = msgspec.msgpack.Decoder(OrderRecord)


class IndexHints(msgspec.Struct, frozen=True, array_like=True):
    """What the index reads of the block's post-state (it runs in a process of its own, without
    the state): the block's marks, and the side and price of the orders its own phases left
    resting (their events do not carry them)."""

    marks: dict[int, int] = {}
    resting: list[tuple[int, int, bool, int]] = []
    """``(market id, order id, is_buy, price_ticks)``."""

    @classmethod
    def of(cls, state: State, output: BlockOutput) -> IndexHints:
        """The hints of ``output``'s block, from ``state`` if it is that block's post-state
        (else none: an older block indexed again at start)."""
        if state.tip.height != output.header.height:
            return cls()
        marks: dict[int, int] = {}
        for market_id in state.books:
            mark = oracle.get_mark_price(state, market_id)
            if mark is not None:
                marks[market_id] = mark
        resting: list[tuple[int, int, bool, int]] = []
        events = output.block_events
        for event in (*events.prologue, *events.matching, *events.risk):
            if isinstance(event, OrderUpdate) and event.status == OrderStatus.OPEN:
                book = state.books.get(event.market_id)
                order = None if book is None else book.get_order(event.order_id)
                if order is not None:
                    resting.append(
                        (event.market_id, order.order_id, order.is_buy, order.price_ticks)
                    )
        return cls(marks, resting)


class TxLocation(msgspec.Struct, frozen=True):
    height: int
    index: int
    status: int


class NodeIndex:
    """The index's LMDB environment: one writer (the index process, or the node at start and in
    tests), and readers (the node's RPC) in any process."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(
            str(path),
            max_dbs=8,
            map_size=1 << 34,
            sync=False,
            metasync=False,
            readahead=False,
            create=not readonly,
        )
        self._db = {
            name: self._env.open_db(name)
            for name in (b"tx", b"left_out", b"order", b"client", b"trigger")
        }
        self._meta = self._env.open_db(b"meta")
        self.data_file = Path(self._env.path()) / "data.mdb"
        """The memory-mapped file (the node drops its mapped pages: ``adapters/memory.py``)."""
        self._next_id: dict[int, int] = {}
        """Per market, one above the highest order id indexed (read from the file at start)."""
        with self._env.begin() as txn:
            cursor = txn.cursor(db=self._db[b"order"])
            if cursor.last():
                while True:
                    market_id, order_id = _ORDER_KEY.unpack(cursor.key())
                    self._next_id[market_id] = order_id + 1
                    if not cursor.set_range(_ORDER_KEY.pack(market_id, 0)) or not cursor.prev():
                        break

    @property
    def tip(self) -> int:
        with self._env.begin() as txn:
            raw = txn.get(b"tip", db=self._meta)
        return -1 if raw is None else int(_U64.unpack(raw)[0])

    def close(self) -> None:
        self._env.close()

    def catch_up(
        self, tip: int, read: Callable[[int], tuple[Block, BlockOutput]], state: State
    ) -> int:
        """Index every committed block above the index's own tip; returns how many."""
        done = 0
        for height in range(max(self.tip + 1, 1), tip + 1):
            block, output = read(height)
            self.add_block(block, output, IndexHints.of(state, output))
            done += 1
        return done

    def add_block(
        self,
        block: Block,
        output: BlockOutput,
        hints: IndexHints | State,
        decoded: Mapping[bytes, SignedTransaction] | None = None,
    ) -> None:
        """Index one committed block (``hints``: what the index reads of its post-state, see
        :class:`IndexHints`; a ``State`` is turned into them; ``decoded`` maps transaction
        hashes to the transactions already decoded, the others are decoded here).

        Every order event counts: the receipts' and those of the block's own phases (orders
        canceled by expiry, a dead-man switch or a liquidation; the orders of fired triggers,
        liquidations and the insurance fund's unwinding), in the order they happened
        (``node/events.py``)."""
        height = block.header.height
        if not isinstance(hints, IndexHints):
            hints = IndexHints.of(hints, output)
        resting = {(m, o): (is_buy, price) for m, o, is_buy, price in hints.resting}
        orders: dict[tuple[int, int], OrderRecord] = {}
        with self._env.begin(write=True) as txn:
            txs = sorted(
                (receipt.tx_hash, _TX.pack(height, position, receipt.status))
                for position, receipt in enumerate(output.receipts)
            )
            txn.cursor(db=self._db[b"tx"]).putmulti(txs)  # sorted: fewer page walks
            if decoded is None:
                decoded = {
                    compute_transaction_hash(data): decode_transaction(data)
                    for data in block.transactions
                }
            fold = _BlockFold(self, txn, height, orders, hints.marks)
            for phase, receipt, events in block_segments(output):
                tx = None if receipt is None else decoded.get(receipt.tx_hash)
                fold.segment(phase, events, tx)
            for tx_hash, code in output.rejected:
                txn.put(tx_hash, _U64.pack(code), db=self._db[b"left_out"])
            order_rows: list[tuple[bytes, bytes]] = []
            client_rows: list[tuple[bytes, bytes]] = []
            for (market_id, order_id), record in sorted(orders.items()):
                if record.status == OrderStatus.OPEN and record.price_ticks is None:
                    found = resting.get((market_id, order_id))
                    if found is not None:
                        record.is_buy, record.price_ticks = found
                key = _ORDER_KEY.pack(market_id, order_id)
                order_rows.append((key, msgspec.msgpack.encode(record)))
                if record.client_id is not None:
                    client_key = record.account + _ORDER_KEY.pack(market_id, record.client_id)
                    client_rows.append((client_key, _U64.pack(order_id)))
                self._next_id[market_id] = max(self._next_id.get(market_id, 0), order_id + 1)
            txn.cursor(db=self._db[b"order"]).putmulti(order_rows)
            client_rows.sort()
            txn.cursor(db=self._db[b"client"]).putmulti(client_rows)
            txn.put(b"tip", _U64.pack(height), db=self._meta)

    def _older(self, txn: lmdb.Transaction, key: tuple[int, int]) -> OrderRecord | None:
        """The stored record of an order indexed in an earlier block (ids grow per market, so
        an id at or above the market's next id is new: no lookup)."""
        if key[1] >= self._next_id.get(key[0], 1 << 64):
            return None
        return self._stored(txn, *key)

    def _stored(self, txn: lmdb.Transaction, market_id: int, order_id: int) -> OrderRecord | None:
        raw = txn.get(_ORDER_KEY.pack(market_id, order_id), db=self._db[b"order"])
        return None if raw is None else _ORDER_DECODER.decode(raw)

    def order(self, market_id: int, order_id: int) -> OrderRecord | None:
        with self._env.begin() as txn:
            return self._stored(txn, market_id, order_id)

    def order_by_client_id(
        self, account: bytes, market_id: int, client_id: int
    ) -> tuple[int, OrderRecord] | None:
        with self._env.begin() as txn:
            raw = txn.get(account + _ORDER_KEY.pack(market_id, client_id), db=self._db[b"client"])
            if raw is None:
                return None
            order_id = int(_U64.unpack(raw)[0])
            record = self._stored(txn, market_id, order_id)
        return None if record is None else (order_id, record)

    def transaction(self, tx_hash: bytes) -> TxLocation | None:
        with self._env.begin() as txn:
            raw = txn.get(tx_hash, db=self._db[b"tx"])
        if raw is None:
            return None
        height, index, status = _TX.unpack(raw)
        return TxLocation(height, index, status)

    def included(self, hashes: Iterable[bytes]) -> set[bytes]:
        """The subset of ``hashes`` that committed blocks hold."""
        found: set[bytes] = set()
        with self._env.begin() as txn:
            db = self._db[b"tx"]
            for tx_hash in hashes:
                if txn.get(tx_hash, db=db) is not None:
                    found.add(tx_hash)
        return found

    def left_out(self, tx_hash: bytes) -> int | None:
        with self._env.begin() as txn:
            raw = txn.get(tx_hash, db=self._db[b"left_out"])
        return None if raw is None else int(_U64.unpack(raw)[0])


def _trigger_key(account: bytes, market_id: int, trigger_id: int) -> bytes:
    return account + _ORDER_KEY.pack(market_id, trigger_id)


class _BlockFold:
    """Folds one block's order events into order records, segment by segment (in the order of
    ``node/events.py``).

    An order a transaction placed takes its side and limit price from its placement (the one
    with its client id, else the next without one: the events do not carry them). An order no
    transaction placed takes them from what placed it: a fired trigger (the ``trigger`` database,
    matched to the trigger orders of a market in the order they matched: ascending trigger id,
    then account), a liquidation (``PositionLiquidated``: the side that closes, the bankruptcy
    price) or the insurance fund's unwinding (the side that closes its position, the mark);
    otherwise from its fills (side, and for a taker its worst fill price).
    """

    def __init__(
        self,
        index: NodeIndex,
        txn: lmdb.Transaction,
        height: int,
        orders: dict[tuple[int, int], OrderRecord],
        block_marks: Mapping[int, int],
    ) -> None:
        self.index = index
        self.txn = txn
        self.height = height
        self.orders = orders
        self.block_marks = block_marks
        """The block's marks (``IndexHints``; empty for an older block indexed at start)."""
        self.trigger_db = index._db[b"trigger"]
        self.sides: dict[tuple[int, int], bool] = {}
        """Side of an order seen in a fill before its first update (a taker's update comes
        after its fills)."""
        self.worst: dict[tuple[int, int], int] = {}
        """The last (worst) fill price of a taker not yet recorded."""
        self.fired: dict[int, list[tuple[int, bytes, _TriggerRecord | None]]] = {}
        """Per market, the triggers fired in the prologue: ``(trigger id, account, record)``."""
        self.marks: dict[int, int] = {}
        self.fund_sizes: dict[int, int] = {}
        self.liquidating: dict[tuple[bytes, int], tuple[int, int]] = {}
        """The order a liquidation placed for ``(account, market)``, until its
        ``PositionLiquidated`` tells its side and limit."""

    def record(self, key: tuple[int, int]) -> OrderRecord | None:
        return self.orders.get(key) or self.index._older(self.txn, key)

    def segment(self, phase: Phase, events: Sequence[Event], tx: SignedTransaction | None) -> None:
        if phase is Phase.SETTLEMENT:
            return  # positions only
        if phase is Phase.MATCHING:
            for fired in self.fired.values():
                fired.sort(key=lambda entry: (entry[0], entry[1]))
        placements = placements_of(tx.action) if tx is not None else ()
        unmatched: dict[tuple[int, int | None], deque[PlaceOrder | ModifyOrder]] = {}
        for placement in placements:
            slot = (placement.market_id, placement.client_id)
            unmatched.setdefault(slot, deque()).append(placement)

        def placement_of(event: OrderUpdate) -> PlaceOrder | ModifyOrder | None:
            queue = unmatched.get((event.market_id, event.client_id))
            return queue.popleft() if queue else None

        orders = self.orders
        for event in events:
            if isinstance(event, OrderUpdate):
                if event.order_id == 0:
                    placement_of(event)  # refused at admission: its placement is used up
                    continue
                key = (event.market_id, event.order_id)
                record = self.record(key)
                if record is None:
                    record = OrderRecord(
                        event.owner, event.client_id, event.status, event.reason, 0, 0, self.height
                    )
                    record.is_buy = self.sides.pop(key, None)
                    worst = self.worst.pop(key, None)
                    placed = placement_of(event) if phase is Phase.TRANSACTION else None
                    if placed is not None:
                        record.is_buy = placed.is_buy
                        record.price_ticks = placed.price_ticks
                    else:
                        record.price_ticks = worst
                        self.system_order(phase, key, record)
                record.status = event.status
                record.reason = event.reason
                record.remaining_lots = event.remaining_lots
                record.filled_lots = event.filled_lots
                record.height = self.height
                orders[key] = record
            elif isinstance(event, FillEvent):
                for order_id, is_buy in (
                    (event.taker_order_id, event.taker_is_buy),
                    (event.maker_order_id, not event.taker_is_buy),
                ):
                    key = (event.market_id, order_id)
                    record = self.record(key)
                    if record is None:
                        self.sides[key] = is_buy
                        if order_id == event.taker_order_id:
                            self.worst[key] = event.price_ticks
                    elif record.price_ticks is None or record.is_buy is None:
                        record.is_buy = is_buy
                        if order_id == event.maker_order_id and record.price_ticks is None:
                            record.price_ticks = event.price_ticks
                        orders[key] = record
            elif isinstance(event, TriggerUpdate):
                self.trigger(event, tx)
            elif isinstance(event, PositionLiquidated):
                self.marks[event.market_id] = event.mark_ticks
                placed_key = self.liquidating.pop((event.account, event.market_id), None)
                record = None if placed_key is None else orders.get(placed_key)
                if record is not None:
                    record.origin = OrderOrigin.LIQUIDATION
                    record.is_buy = event.size_before_lots < 0
                    if event.limit_price_ticks:
                        record.price_ticks = event.limit_price_ticks
            elif isinstance(event, PositionChanged) and event.account == INSURANCE_FUND_ACCOUNT:
                self.fund_sizes[event.market_id] = event.size_lots

    def system_order(self, phase: Phase, key: tuple[int, int], record: OrderRecord) -> None:
        """Complete the record of a new order no transaction placed."""
        market_id = key[0]
        if phase is Phase.MATCHING:
            fired = self.fired.get(market_id)
            if not fired:
                return
            trigger_id, _, trigger = fired.pop(0)
            record.origin = OrderOrigin.TRIGGER
            record.trigger_id = trigger_id
            if trigger is not None:
                record.is_buy = trigger.is_buy
                record.price_ticks = trigger.price_ticks
        elif phase is Phase.RISK:
            # A liquidation order until shown otherwise: its PositionLiquidated comes right
            # after its fills; the fund's unwinding orders come after every liquidation.
            self.liquidating[(record.account, market_id)] = key
            record.origin = OrderOrigin.LIQUIDATION
            if record.account == INSURANCE_FUND_ACCOUNT:
                record.origin = OrderOrigin.INSURANCE_FUND
                size = self.fund_sizes.get(market_id)
                if record.is_buy is None and size:
                    record.is_buy = size < 0
                mark = self.marks.get(market_id)
                if mark is None:
                    mark = self.block_marks.get(market_id)
                if mark is not None:
                    record.price_ticks = mark

    def trigger(self, event: TriggerUpdate, tx: SignedTransaction | None) -> None:
        """Keep the side and price of a trigger from its placement to its firing."""
        key = _trigger_key(event.account, event.market_id, event.trigger_id)
        txn, db = self.txn, self.trigger_db
        if event.status == TriggerStatus.PLACED:
            action = None if tx is None else tx.action
            if isinstance(action, PlaceTrigger):
                row = _TriggerRecord(action.is_buy, action.price_ticks)
                txn.put(key, msgspec.msgpack.encode(row), db=db)
            return
        raw = txn.get(key, db=db)
        if raw is not None:
            txn.delete(key, db=db)
        if event.status == TriggerStatus.FIRED:
            found = None if raw is None else _TRIGGER_DECODER.decode(raw)
            entry = (event.trigger_id, event.account, found)
            self.fired.setdefault(event.market_id, []).append(entry)

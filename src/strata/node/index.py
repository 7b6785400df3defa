"""The node's own indexes, derived from committed blocks (ring 2, never consensus).

``DATA_DIR/index`` is an LMDB environment, written after each block commits, without ``fsync``:
it can always be rebuilt from the chain database, and on start :meth:`NodeIndex.catch_up`
re-indexes every committed block above its own tip (after a crash, the blocks whose index records
were lost). Databases:

- ``tx``: transaction hash -> height, position in the block, receipt status;
- ``left_out``: transaction hash -> the code it was left out of a block with;
- ``order``: market id, order id -> the order's latest known status;
- ``client``: account, market id, client id -> order id (the newest order with that client id);
- ``meta``: ``tip`` -> the highest indexed height.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import lmdb
import msgspec

from strata.modules.book.types import OrderStatus
from strata.modules.clearing.events import FillEvent, OrderUpdate
from strata.state.store import State
from strata.stf.block import Block, BlockOutput, Receipt
from strata.stf.transactions import (
    ModifyOrder,
    PlaceOrder,
    SignedTransaction,
    compute_transaction_hash,
    decode_transaction,
    placements_of,
)

_TX = struct.Struct(">QII")
_U64 = struct.Struct(">Q")
_ORDER_KEY = struct.Struct(">IQ")


class OrderRecord(msgspec.Struct, array_like=True):
    """What the node knows of an order (price and side once it rested or filled)."""

    account: bytes
    client_id: int | None
    status: int
    reason: int
    remaining_lots: int
    filled_lots: int
    height: int
    is_buy: bool | None = None
    price_ticks: int | None = None


_ORDER_DECODER = msgspec.msgpack.Decoder(OrderRecord)


class TxLocation(msgspec.Struct, frozen=True):
    height: int
    index: int
    status: int


class NodeIndex:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(
            str(path), max_dbs=8, map_size=1 << 34, sync=False, metasync=False, readahead=False
        )
        self._db = {
            name: self._env.open_db(name) for name in (b"tx", b"left_out", b"order", b"client")
        }
        self._meta = self._env.open_db(b"meta")
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
            self.add_block(block, output, state)
            done += 1
        return done

    def add_block(
        self,
        block: Block,
        output: BlockOutput,
        state: State,
        decoded: Mapping[bytes, SignedTransaction] | None = None,
    ) -> None:
        """Index one committed block (``state`` is the post-state of the newest block, used only
        for the price and side of orders resting in the book; ``decoded`` maps transaction
        hashes to the transactions already decoded, the others are decoded here)."""
        height = block.header.height
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
            for receipt in output.receipts:
                tx = decoded.get(receipt.tx_hash)
                placements = placements_of(tx.action) if tx is not None else ()
                self._collect_orders(txn, receipt, height, orders, placements)
            for tx_hash, code in output.rejected:
                txn.put(tx_hash, _U64.pack(code), db=self._db[b"left_out"])
            order_rows: list[tuple[bytes, bytes]] = []
            client_rows: list[tuple[bytes, bytes]] = []
            for (market_id, order_id), record in sorted(orders.items()):
                if record.status == OrderStatus.OPEN and record.price_ticks is None:
                    book = state.books.get(market_id)
                    resting = book.get_order(order_id) if book is not None else None
                    if resting is not None:
                        record.is_buy = resting.is_buy
                        record.price_ticks = resting.price_ticks
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

    def _collect_orders(
        self,
        txn: lmdb.Transaction,
        receipt: Receipt,
        height: int,
        orders: dict[tuple[int, int], OrderRecord],
        placements: Sequence[PlaceOrder | ModifyOrder],
    ) -> None:
        """Fold a receipt's order events into ``orders``. A new order takes its side and limit
        price from its placement in the transaction (``placements``, in action order): the one
        with its client id, else the next without one (the events do not carry them)."""
        sides: dict[tuple[int, int], bool] = {}
        unmatched: dict[tuple[int, int | None], deque[PlaceOrder | ModifyOrder]] = {}
        for placement in placements:
            slot = (placement.market_id, placement.client_id)
            unmatched.setdefault(slot, deque()).append(placement)

        def placement_of(event: OrderUpdate) -> PlaceOrder | ModifyOrder | None:
            queue = unmatched.get((event.market_id, event.client_id))
            return queue.popleft() if queue else None

        for event in receipt.events:
            if isinstance(event, OrderUpdate):
                if event.order_id == 0:
                    placement_of(event)  # refused at admission: its placement is used up
                    continue
                key = (event.market_id, event.order_id)
                record = orders.get(key) or self._older(txn, key)
                if record is None:
                    record = OrderRecord(
                        event.owner, event.client_id, event.status, event.reason, 0, 0, height
                    )
                    placed = placement_of(event)
                    if placed is not None:
                        record.is_buy = placed.is_buy
                        record.price_ticks = placed.price_ticks
                    else:
                        record.is_buy = sides.get(key)
                record.status = event.status
                record.reason = event.reason
                record.remaining_lots = event.remaining_lots
                record.filled_lots = event.filled_lots
                record.height = height
                orders[key] = record
            elif isinstance(event, FillEvent):
                for order_id, is_buy in (
                    (event.taker_order_id, event.taker_is_buy),
                    (event.maker_order_id, not event.taker_is_buy),
                ):
                    key = (event.market_id, order_id)
                    record = orders.get(key) or self._older(txn, key)
                    if record is None:
                        sides[key] = is_buy
                    elif record.price_ticks is None:
                        record.is_buy = is_buy
                        if order_id == event.maker_order_id:
                            record.price_ticks = event.price_ticks
                        orders[key] = record

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

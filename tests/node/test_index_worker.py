"""The index process's queue (``node/index_worker.py``): a block handed to the index process is
not held in the node once the process has it, the blocks waiting for it are bounded by count
and by bytes, and the process runs named and below the node (``index_niceness``).

``multiprocessing.Queue``'s feeder thread kept the last block it wrote (its pickled bytes, a
large block's megabytes) until the next block came, so after a burst the node's heap stayed
that much larger at idle; the sender thread that replaced it drops each block once written.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import tracemalloc
from pathlib import Path

import pytest

from strata.modules.book.types import OrderReason, OrderStatus
from strata.modules.clearing.events import OrderUpdate
from strata.node.config import devnet_genesis, read_config
from strata.node.index import IndexHints, NodeIndex
from strata.node.index_worker import IndexWorker, PayloadQueue
from strata.stf.block import Block, BlockEvents, BlockOutput, Header, Receipt, encode_receipts
from strata.stf.transactions import PlaceOrder, SignedTransaction, encode_transaction

MARKETS = devnet_genesis(0).market_infos()
BTC = 1


def _big_block(height: int, count: int) -> tuple[Block, BlockOutput]:
    """A block of ``count`` resting orders (a burst's block: megabytes encoded)."""
    root = bytes(32)
    header = Header(
        chain_id=1,
        height=height,
        parent_hash=root,
        timestamp_ms=1_000 * height,
        gas_used=0,
        state_root=root,
        transactions_root=root,
        receipts_root=root,
        withdrawals_root=root,
    )
    owner = bytes([7]) * 20
    datas = []
    receipts = []
    for i in range(count):
        order = PlaceOrder(BTC, True, 100 + i % 50, 1, client_id=i)
        datas.append(encode_transaction(SignedTransaction(owner, i, order, None, b"\x01" * 65)))
        event = OrderUpdate(BTC, i + 1, owner, OrderStatus.OPEN, OrderReason.NONE, 1, 0, i)
        receipts.append(Receipt(i.to_bytes(32, "big"), 0, 0, (event,)))
    output = BlockOutput(
        header, encode_receipts(receipts), BlockEvents((), (), (), ()), (), tuple(datas)
    )
    return Block(header, (), tuple(datas)), output


def test_a_block_sent_to_the_index_process_is_not_held_by_the_node(tmp_path: Path) -> None:
    path = tmp_path / "index"
    NodeIndex(path).close()
    worker = IndexWorker(path, 0, MARKETS)
    try:
        block, output = _big_block(1, 20_000)
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        worker.submit(block, output, IndexHints(), [])
        _, peak = tracemalloc.get_traced_memory()
        assert asyncio.run(worker.wait_for(1, timeout_s=120))
        held, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sent = peak - before
        assert sent > 2_000_000  # the block's encoding was megabytes
        assert held - before < sent // 20, (held - before, sent)
        assert worker.reader.order(BTC, 20_000) is not None  # and the index has the block
    finally:
        worker.close()


def test_the_index_process_is_named_and_runs_below_the_node(tmp_path: Path) -> None:
    path = tmp_path / "index"
    NodeIndex(path).close()
    worker = IndexWorker(path, 0, MARKETS, niceness=7)
    try:
        block, output = _big_block(1, 10)
        worker.submit(block, output, IndexHints(), [])
        assert asyncio.run(worker.wait_for(1, timeout_s=60))  # it has started and works
        pid = worker._process.pid
        proc = Path(f"/proc/{pid}")
        assert proc.joinpath("comm").read_text().strip() == "strata-index"
        nice = int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == min(19, os.nice(0) + 7)
    finally:
        worker.close()


@pytest.mark.parametrize("value", [-1, 20])
def test_the_index_niceness_is_within_what_nice_allows(tmp_path: Path, value: int) -> None:
    path = tmp_path / "node.json"
    path.write_text(f'{{"data_dir": "x", "index_niceness": {value}}}')
    with pytest.raises(ValueError, match="index_niceness"):
        read_config(path)


def test_the_queue_is_bounded_by_bytes_as_well_as_by_blocks() -> None:
    """Production waits while the queue holds ``max_bytes`` of blocks, not only ``max_items``
    blocks: megabyte blocks under overload must not pile up 64 deep in the node's heap."""
    fifo = PayloadQueue(max_items=4, max_bytes=1_000)
    fifo.put(b"a" * 600)
    with pytest.raises(queue.Full):
        fifo.put(b"b" * 600, timeout=0.05)  # 1,200 bytes would pass the bound
    fifo.put(b"c" * 400)  # exactly at the bound
    assert (len(fifo), fifo.held_bytes) == (2, 1_000)
    with pytest.raises(queue.Full):
        fifo.put(b"d", timeout=0.05)
    assert fifo.get() == b"a" * 600  # first in, first out
    fifo.put(b"d" * 600)
    assert [fifo.get(), fifo.get()] == [b"c" * 400, b"d" * 600]
    assert (len(fifo), fifo.held_bytes) == (0, 0)


def test_the_queue_is_bounded_by_blocks_and_takes_any_block_when_empty() -> None:
    fifo = PayloadQueue(max_items=2, max_bytes=1_000)
    fifo.put(b"x" * 5_000)  # larger than the bound: an empty queue takes it
    assert fifo.held_bytes == 5_000
    with pytest.raises(queue.Full):
        fifo.put(b"y", timeout=0.05)
    assert fifo.get() == b"x" * 5_000
    fifo.put(b"1")
    fifo.put(b"2")
    with pytest.raises(queue.Full):
        fifo.put(b"3", timeout=0.05)  # two blocks: the count bound


def test_a_waiting_producer_goes_on_once_the_sender_takes_a_block() -> None:
    fifo = PayloadQueue(max_items=8, max_bytes=100)
    fifo.put(b"a" * 100)
    done = threading.Event()

    def produce() -> None:
        fifo.put(b"b" * 100)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert not done.wait(0.1)  # waiting for room
    assert fifo.get() == b"a" * 100
    assert done.wait(5)
    producer.join()
    assert fifo.get() == b"b" * 100

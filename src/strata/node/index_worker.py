"""The index stage in a process of its own: the node hands it each committed block and goes on.

Indexing a block (folding its events into order records, writing the ``index`` LMDB
environment) is pure derived work: nothing the chain commits depends on it. Measured under load
it was a fifth of the node's main thread, so it runs beside block production on another core:
the node sends ``(block, output, hints)`` through a bounded queue and a pipe (a sender thread
writes the pipe; production waits only when the index falls 64 blocks or 32 MiB of encoded
blocks behind, whichever comes first), and reads the index's LMDB environment itself for the API.
The process publishes how far it has come in a shared counter (:attr:`IndexWorker.tip`, set after
each block's write transaction commits), so the node learns it without reading the index's pages;
the API waits for it to reach the chain's tip before answering from the index
(:meth:`IndexWorker.wait_for`), so a client reads its own writes.

The same process renders the account-feed messages of subscribed accounts (``node/feeds.py``):
the node lists them with the block, the process renders them before it indexes the block and
sends their JSON text back through a second queue, which a thread of the node reads and hands to
the event loop (:meth:`IndexWorker.start_rendering`). The node never waits on that queue: when
its event loop is busy the texts wait in the queue, never the process.

The process is started with ``spawn`` (the node has threads and open databases, which a fork
must not copy). If it dies, the node stops (see ``Node.produce_block``); on the next start the
node indexes again every committed block the index lacks (``NodeIndex.catch_up``), so a crash
loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from strata.adapters.lifetime import exit_unless_parent, name_process
from strata.node.index import IndexHints, NodeIndex
from strata.stf.block import Block, BlockOutput

if TYPE_CHECKING:
    from strata.client.markets import MarketInfo

QUEUE_BLOCKS = 64
"""Blocks the index may fall behind before block production waits for it."""

QUEUE_BYTES = 32 << 20
"""Encoded blocks (bytes) the queue may hold before block production waits for the index.

Under a sustained overload of bulk transactions a block encodes to megabytes: with the count
alone, the index fell about 13 s behind the chain in a soak of ``strata bench node`` while the
node's heap grew from 137 to 249 MB; the byte bound keeps both small whatever the blocks weigh.
One block is always accepted, however large, so a block bigger than the bound still goes
through."""

RenderRequests = list[tuple[bytes, int | None]]
"""Account messages of one block to render here: ``(account, prev_seq)`` (``node/feeds.py``).
The feeds, and the JSON rendering behind them, are imported only when a block first asks for
messages, so a process nobody subscribes through starts as fast as the index alone (importing
them measured about 0.17 s)."""
_Message = tuple[Block, BlockOutput, IndexHints, RenderRequests]
_Rendered = tuple[int, list[tuple[bytes, str]]]
_ENCODER = msgspec.msgpack.Encoder()


def _run(
    path: str,
    blocks: Any,
    tip: Any,
    rendered: Any,
    markets: dict[int, MarketInfo],
    node_pid: int,
    niceness: int = 0,
) -> None:
    """The index process: index every block it is given, until ``None`` (or the node is gone:
    it is killed with the node, ``adapters/lifetime.py``); ``tip.value`` is the height of the
    last block indexed. The account messages a block asks for are rendered first (someone is
    waiting for them) and put on ``rendered``."""
    name_process("strata-index")
    os.nice(niceness)  # below the node: it catches up in the gaps (``NodeConfig.index_niceness``)
    exit_unless_parent(node_pid)
    decoder = msgspec.msgpack.Decoder(_Message)
    index = NodeIndex(Path(path))
    try:
        while True:
            try:
                payload = blocks.recv_bytes()
            except (EOFError, OSError):
                return  # the node is gone
            if not payload:
                return
            block, output, hints, requests = decoder.decode(payload)
            if requests:
                from strata.node.feeds import render_account_messages

                texts = render_account_messages(output, markets, requests)
                rendered.put(_ENCODER.encode((block.header.height, texts)))
            index.add_block(block, output, hints)
            tip.value = block.header.height
    finally:
        rendered.put(None)  # the node's reader thread stops
        index.close()


class PayloadQueue:
    """A FIFO of byte strings bounded by count and by total length: :meth:`put` waits while
    the queue holds ``max_items`` payloads, or while it holds any and the new one would take it
    past ``max_bytes``; an empty queue takes a payload of any size."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._changed = threading.Condition()

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_items and self._bytes + size <= self.max_bytes

    def put(self, payload: bytes, timeout: float | None = None) -> None:
        """Add ``payload`` once there is room; :class:`queue.Full` if ``timeout`` passes first."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._has_room(len(payload)), timeout):
                raise queue.Full
            self._items.append(payload)
            self._bytes += len(payload)
            self._changed.notify_all()

    def get(self) -> bytes:
        """Remove and return the oldest payload, waiting for one."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._items))
            payload = self._items.popleft()
            self._bytes -= len(payload)
            self._changed.notify_all()
            return payload

    @property
    def held_bytes(self) -> int:
        """Total length of the payloads queued."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class IndexWorker:
    """The index process and its queue (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        synced_height: int,
        markets: dict[int, MarketInfo],
        niceness: int = 0,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = PayloadQueue(QUEUE_BLOCKS, QUEUE_BYTES)
        receiving, self._sending = context.Pipe(duplex=False)
        self._rendered = context.Queue()
        self._reader_thread: threading.Thread | None = None
        self.reader = NodeIndex(path, readonly=True)
        self._tip = context.Value("q", self.reader.tip, lock=False)
        self._process = context.Process(
            target=_run,
            args=(str(path), receiving, self._tip, self._rendered, markets, os.getpid(), niceness),
            name="strata-index",
            daemon=True,
        )
        self._process.start()
        receiving.close()
        self._sender = threading.Thread(target=self._send, name="strata-index-send", daemon=True)
        self._sender.start()
        self.synced_height = synced_height
        """The chain's tip when the process started: the index held every block up to it."""

    @property
    def tip(self) -> int:
        """The height of the last block the index holds (one writer, an aligned 64-bit word)."""
        value: int = self._tip.value
        return value

    def _send(self) -> None:
        """The sender thread: write each queued block to the pipe, in order, until the empty
        message (the process stops) or the process is gone. It keeps no reference to a block
        once written (``multiprocessing.Queue``'s feeder thread keeps the last one, a block's
        megabytes held at idle after a burst)."""
        while True:
            payload = self._queue.get()
            try:
                self._sending.send_bytes(payload)
            except OSError:
                return  # the process is gone; the node stops (``Node.produce_block``)
            if not payload:
                return
            del payload

    def submit(
        self, block: Block, output: BlockOutput, hints: IndexHints, render: RenderRequests
    ) -> None:
        """Queue a committed block (its transactions travel once: in the block), and the
        account messages of it to render (see :meth:`start_rendering`)."""
        slim = msgspec.structs.replace(output, transactions=())
        self._queue.put(_ENCODER.encode((block, slim, hints, render)))

    def start_rendering(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[int, list[tuple[bytes, str]]], None],
    ) -> None:
        """Hand each block's rendered account messages to ``deliver(height, messages)`` on
        ``loop``, from a thread that reads them as soon as they come (so the process never
        waits for the node's busy event loop)."""
        decoder = msgspec.msgpack.Decoder(_Rendered)

        def read() -> None:
            loop_open = True
            while True:
                try:
                    payload = self._rendered.get()
                except (EOFError, OSError):
                    return
                if payload is None:
                    return
                if not loop_open:
                    continue  # keep draining, so the process never waits to exit
                height, messages = decoder.decode(payload)
                try:
                    loop.call_soon_threadsafe(deliver, height, messages)
                except RuntimeError:
                    loop_open = False  # the loop is closed: the node is stopping
                del payload, messages  # not held here until the next block's texts come

        if self._reader_thread is None:
            thread = threading.Thread(target=read, name="strata-feed-texts", daemon=True)
            thread.start()
            self._reader_thread = thread

    def is_alive(self) -> bool:
        return self._process.is_alive()

    @property
    def queued_bytes(self) -> int:
        """Encoded blocks waiting to go to the process (bounded by :data:`QUEUE_BYTES`)."""
        return self._queue.held_bytes

    async def wait_for(self, height: int, timeout_s: float = 2.0) -> bool:
        """Wait until the index holds ``height`` (or the timeout passes); whether it does."""
        if height <= self.synced_height:
            return True
        deadline = time.monotonic() + timeout_s
        while self.tip < height:
            if time.monotonic() > deadline or not self.is_alive():
                return False
            await asyncio.sleep(0.002)
        return True

    def close(self, timeout_s: float = 60.0) -> None:
        """Let the process index what is queued, then stop it."""
        if self._process.is_alive() and self._sender.is_alive():
            with contextlib.suppress(queue.Full):  # the process stopped reading: killed below
                self._queue.put(b"", timeout=timeout_s)
                self._sender.join(timeout_s)
                self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._sending.close()
        if self._reader_thread is not None:
            self._rendered.put(None)  # the reader stops even if the process died
            self._reader_thread.join(5)
        self._rendered.close()
        self._rendered.join_thread()
        self.reader.close()

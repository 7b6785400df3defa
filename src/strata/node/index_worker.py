"""The index stage in a process of its own: the node hands it each committed block and goes on.

Indexing a block (folding its events into order records, writing the ``index`` LMDB
environment) is pure derived work: nothing the chain commits depends on it. Measured under load
it was a fifth of the node's main thread, so it runs beside block production on another core:
the node sends ``(block, output, hints)`` through a bounded queue (a feeder thread writes it;
production waits only when the index falls 64 blocks behind), and reads the index's LMDB
environment itself for the API. The process publishes how far it has come in a shared counter
(:attr:`IndexWorker.tip`, set after each block's write transaction commits), so the node learns
it without reading the index's pages; the API waits for it to reach the chain's tip before
answering from the index (:meth:`IndexWorker.wait_for`), so a client reads its own writes.

The process is started with ``spawn`` (the node has threads and open databases, which a fork
must not copy). If it dies, the node stops (see ``Node.produce_block``); on the next start the
node indexes again every committed block the index lacks (``NodeIndex.catch_up``), so a crash
loses nothing.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any

import msgspec

from strata.node.index import IndexHints, NodeIndex
from strata.stf.block import Block, BlockOutput

QUEUE_BLOCKS = 64
"""Blocks the index may fall behind before block production waits for it."""

_Message = tuple[Block, BlockOutput, IndexHints]
_ENCODER = msgspec.msgpack.Encoder()


def _run(path: str, queue: Any, tip: Any) -> None:
    """The index process: index every block it is given, until ``None`` (or the node is gone);
    ``tip.value`` is the height of the last block indexed."""
    decoder = msgspec.msgpack.Decoder(_Message)
    index = NodeIndex(Path(path))
    try:
        while True:
            try:
                payload = queue.get()
            except (EOFError, OSError):
                return  # the node is gone
            if payload is None:
                return
            block, output, hints = decoder.decode(payload)
            index.add_block(block, output, hints)
            tip.value = block.header.height
    finally:
        index.close()


class IndexWorker:
    """The index process and its queue (see the module docstring)."""

    def __init__(self, path: Path, synced_height: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue = context.Queue(QUEUE_BLOCKS)
        self.reader = NodeIndex(path, readonly=True)
        self._tip = context.Value("q", self.reader.tip, lock=False)
        self._process = context.Process(
            target=_run,
            args=(str(path), self._queue, self._tip),
            name="strata-index",
            daemon=True,
        )
        self._process.start()
        self.synced_height = synced_height
        """The chain's tip when the process started: the index held every block up to it."""

    @property
    def tip(self) -> int:
        """The height of the last block the index holds (one writer, an aligned 64-bit word)."""
        value: int = self._tip.value
        return value

    def submit(self, block: Block, output: BlockOutput, hints: IndexHints) -> None:
        """Queue a committed block (its transactions travel once: in the block)."""
        slim = msgspec.structs.replace(output, transactions=())
        self._queue.put(_ENCODER.encode((block, slim, hints)))

    def is_alive(self) -> bool:
        return self._process.is_alive()

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
        if self._process.is_alive():
            self._queue.put(None)
            self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._queue.close()
        self._queue.join_thread()
        self.reader.close()

"""The posting stage: committed blocks, sealed into batches, posted to the DA layer.

Every ``da_batch_blocks`` committed blocks (or ``da_batch_ms`` after the oldest unposted one),
the stage seals the next batch (``strata.da.batch``), posts it, and records the reference in
``DATA_DIR/da-posted.json`` (written to a temporary file, fsynced, renamed). A restart resumes
from the record; a batch that was posted but not recorded (a crash in between) is found on the
DA layer and adopted, so nothing is posted twice and nothing is skipped: posting is idempotent by
(batch index, batch hash).

While the DA layer is down the stage retries with backoff; blocks keep committing until the
backlog reaches ``da_max_backlog_blocks``, where the sequencer pauses block production (a chain
nobody can verify must not run ahead). The backlog is in ``/metrics``.

The stage takes the blocks it posts from the node as they commit (a bounded window of the
newest, :meth:`DaPoster.remember`), so in steady state it never reads the block log back: reading
every block once would cost a decode each and map the whole log into the node's resident memory.
Blocks outside the window (after a restart, or behind a long DA outage) come from the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from strata.adapters.chain_store import ChainStore
from strata.da.batch import MAX_BATCH_BLOCKS, encode_batch, seal_batch
from strata.ports.da import DaClient, DaError, DaReference
from strata.stf.block import Block

log = logging.getLogger("strata.node")


class PostedRecord(msgspec.Struct, kw_only=True):
    """What ``da-posted.json`` holds: where the next batch starts and what it links to."""

    next_index: int = 0
    posted_height: int = 0
    parent_batch_hash: str = "0x" + "00" * 32
    last_reference: dict[str, Any] | None = None


class DaPoster:
    def __init__(
        self,
        da: DaClient,
        data_dir: Path,
        chain_id: int,
        *,
        batch_blocks: int,
        batch_ms: int,
        max_backlog_blocks: int,
        metrics: Any,
    ) -> None:
        self.da = da
        self.path = data_dir / "da-posted.json"
        self.chain_id = chain_id
        self.batch_blocks = max(1, min(batch_blocks, MAX_BATCH_BLOCKS))
        self.batch_ms = batch_ms
        self.max_backlog_blocks = max_backlog_blocks
        self.metrics = metrics
        self.record = self._load()
        self.io = ThreadPoolExecutor(1, thread_name_prefix="da-post")
        self.errors = 0
        self._oldest_unposted_at: float | None = None
        self._recent: dict[int, Block] = {}
        """The newest committed blocks not yet posted, at most ``2 * batch_blocks``."""

    def _load(self) -> PostedRecord:
        if not self.path.exists():
            return PostedRecord()
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=PostedRecord)
        except (OSError, msgspec.DecodeError) as error:
            raise DaError(f"{self.path}: unreadable posting record: {error}") from None

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            out.write(msgspec.json.encode(self.record))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def remember(self, block: Block) -> None:
        """Keep a block the node just committed for the batch that will hold it."""
        recent = self._recent
        recent[block.header.height] = block
        while len(recent) > 2 * self.batch_blocks:
            del recent[next(iter(recent))]  # the oldest: read back from the store when due

    @property
    def recent_blocks(self) -> int:
        return len(self._recent)

    def _block(self, store: ChainStore, height: int) -> Block:
        block = self._recent.get(height)
        return store.get_block(height) if block is None else block

    def backlog(self, tip: int) -> int:
        return max(0, tip - self.record.posted_height)

    def is_full(self, tip: int) -> bool:
        """Whether the sequencer must pause: too many committed blocks not yet posted."""
        return self.backlog(tip) >= self.max_backlog_blocks

    def due(self, tip: int) -> bool:
        backlog = self.backlog(tip)
        if backlog == 0:
            self._oldest_unposted_at = None
            return False
        now = time.monotonic()
        if self._oldest_unposted_at is None:
            self._oldest_unposted_at = now
        return backlog >= self.batch_blocks or (now - self._oldest_unposted_at) * 1000 >= (
            self.batch_ms
        )

    async def run(self, store_of: Any, stopping: Any) -> None:
        """Post batches until ``stopping()`` and nothing is left (``store_of()`` gives the node's
        current chain store: it may be reopened)."""
        delay = 0.1
        while True:
            store: ChainStore = store_of()
            tip = store.tip.height
            self.metrics.da_backlog.set(self.backlog(tip))
            if stopping() and self.backlog(tip) == 0:
                return
            if not self.due(tip) and not (stopping() and self.backlog(tip)):
                await asyncio.sleep(0.05)
                continue
            try:
                await self.post_next(store)
                delay = 0.1
            except DaError as error:
                self.errors += 1
                self.metrics.da_errors.inc()
                log.warning(
                    "DA post failed, retrying",
                    extra={"fields": {"error": str(error), "retry_s": delay}},
                )
                if stopping():
                    return  # the record says where to resume on the next start
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    def _encode(self, index: int, parent: bytes, blocks: list[Block]) -> bytes:
        """The encoded batch ``index`` of ``blocks``, or of their first half, quarter... until it
        fits the layer's limit on one posting (e.g. one Ethereum transaction)."""
        limit = getattr(self.da, "max_data_bytes", None)
        while True:
            data = encode_batch(seal_batch(self.chain_id, index, parent, blocks))
            if limit is None or len(data) <= limit or len(blocks) == 1:
                return data
            blocks = blocks[: len(blocks) // 2]  # fewer blocks until the batch fits

    async def post_next(self, store: ChainStore) -> DaReference:
        """Post (or adopt) the next batch and record it."""
        record = self.record
        loop = asyncio.get_running_loop()
        first = record.posted_height + 1
        adopted = await loop.run_in_executor(self.io, self._find_posted, record.next_index, first)
        if adopted is not None:
            ref = adopted
        else:
            last = min(store.tip.height, record.posted_height + self.batch_blocks)
            blocks = [self._block(store, height) for height in range(first, last + 1)]
            parent = bytes.fromhex(record.parent_batch_hash[2:])
            # Encoding and compressing megabytes of blocks: on the poster's thread, not the
            # event loop's (zstd releases the interpreter lock while it compresses).
            data = await loop.run_in_executor(
                self.io, self._encode, record.next_index, parent, blocks
            )
            ref = await loop.run_in_executor(self.io, self.da.post, record.next_index, data)
        record.next_index = ref.batch_index + 1
        record.posted_height = ref.last_height
        recent = self._recent
        while recent and next(iter(recent)) <= ref.last_height:
            del recent[next(iter(recent))]
        record.parent_batch_hash = "0x" + ref.batch_hash.hex()
        record.last_reference = json.loads(msgspec.json.encode(ref))
        self._save()
        self._oldest_unposted_at = None
        self.metrics.da_posted.inc()
        self.metrics.da_posted_height.set(ref.last_height)
        log.info(
            "batch posted",
            extra={
                "fields": {
                    "index": ref.batch_index,
                    "first_height": ref.first_height,
                    "last_height": ref.last_height,
                    "layer": ref.layer,
                    "adopted": adopted is not None,
                }
            },
        )
        return ref

    def _find_posted(self, index: int, first_height: int) -> DaReference | None:
        """A batch already on the DA layer at ``index`` (posted before a crash, not recorded)."""
        refresh = getattr(self.da, "refresh", None)
        if refresh is not None:
            refresh()
        for ref in self.da.list(first_height):
            if ref.batch_index == index:
                if ref.first_height != first_height:
                    raise DaError(
                        f"batch {index} on the DA layer starts at {ref.first_height}, "
                        f"expected {first_height}"
                    )
                return ref
        return None

    def close(self) -> None:
        self.io.shutdown(wait=True)

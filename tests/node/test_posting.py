"""The posting stage: batches go out in order while the DA layer comes and goes, a restart adopts
what was posted but not recorded, and nothing is posted twice or skipped."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from strata.adapters.chain_store import ChainStore
from strata.adapters.da_file import FileDa
from strata.core.codec import encode
from strata.da.batch import decode_batch
from strata.node.metrics import NodeMetrics
from strata.node.posting import DaPoster
from strata.ports.da import DaReference, DaUnavailable
from strata.stf.transition import build_block
from tests.storage.workload import GENESIS, block_time, block_transactions


class FlakyDa:
    """A file DA that is down for its first ``down`` posts, and can die after posting."""

    def __init__(self, inner: FileDa, down: int = 0) -> None:
        self.inner = inner
        self.down = down
        self.posts = 0
        self.crash_after_post = False

    def post(self, index: int, data: bytes) -> DaReference:
        self.posts += 1
        if self.down > 0:
            self.down -= 1
            raise DaUnavailable("the DA layer is down")
        ref = self.inner.post(index, data)
        if self.crash_after_post:
            raise KeyboardInterrupt  # dies before the node records the post
        return ref

    def get(self, ref: DaReference) -> bytes:
        return self.inner.get(ref)

    def list(self, first_height: int = 1, last_height: int | None = None) -> list[DaReference]:
        return self.inner.list(first_height, last_height)

    def prove(self, ref: DaReference) -> bytes | None:
        return None


def _grow(store: ChainStore, to_height: int) -> ChainStore:
    for height in range(store.tip.height + 1, to_height + 1):
        block, output = build_block(
            store.state, block_time(height), (), block_transactions(height, count=5), GENESIS.params
        )
        store.commit_block(block, output)
    return store


def _poster(da: Any, data_dir: Path, batch_blocks: int = 4) -> DaPoster:
    return DaPoster(
        da,
        data_dir,
        GENESIS.params.chain_id,
        batch_blocks=batch_blocks,
        batch_ms=0,
        max_backlog_blocks=100,
        metrics=NodeMetrics(),
    )


def _posted(da_dir: Path) -> list[tuple[int, int, int]]:
    da = FileDa(da_dir)
    out = []
    for ref in da.list(1):
        batch = decode_batch(da.get(ref))
        out.append((batch.header.index, batch.header.first_height, batch.header.last_height))
    return out


def test_posting_survives_an_outage_and_a_crash_between_post_and_record(tmp_path: Path) -> None:
    store = _grow(ChainStore.create(tmp_path / "chain", GENESIS), 8)
    flaky = FlakyDa(FileDa(tmp_path / "da"), down=3)
    poster = _poster(flaky, tmp_path)
    done = {"stop": False}

    async def run_until_posted(height: int) -> None:
        task = asyncio.create_task(poster.run(lambda: store, lambda: done["stop"]))
        while poster.record.posted_height < height:
            await asyncio.sleep(0.01)
        done["stop"] = True
        await asyncio.wait_for(task, 10)

    asyncio.run(run_until_posted(8))  # a stop posts what is committed, then returns
    assert poster.errors == 3  # the outage was retried, not skipped
    assert _posted(tmp_path / "da") == [(0, 1, 4), (1, 5, 8)]
    _grow(store, 18)

    # The node dies after the DA accepted batch 2, before recording it.
    flaky.crash_after_post = True
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(poster.post_next(store))
    assert poster.record.next_index == 2  # not recorded
    poster.close()

    # A restart adopts batch 2 from the DA layer instead of sealing a different one.
    again = _poster(FlakyDa(FileDa(tmp_path / "da")), tmp_path, batch_blocks=6)
    done["stop"] = False

    async def finish() -> None:
        task = asyncio.create_task(again.run(lambda: store, lambda: done["stop"]))
        while again.record.posted_height < 18:
            await asyncio.sleep(0.01)
        done["stop"] = True
        await asyncio.wait_for(task, 10)

    asyncio.run(finish())
    posted = _posted(tmp_path / "da")
    assert [p[0] for p in posted] == list(range(len(posted)))
    assert posted[2] == (2, 9, 12)  # the adopted batch keeps its first range
    heights = [h for _, first, last in posted for h in range(first, last + 1)]
    assert heights == list(range(1, 19))
    again.close()
    store.close()


class _CountingStore:
    """A chain store that counts the blocks read back from it."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store
        self.reads: list[int] = []

    @property
    def tip(self) -> Any:
        return self.store.tip

    def get_block(self, height: int) -> Any:
        self.reads.append(height)
        return self.store.get_block(height)


def test_posting_takes_remembered_blocks_and_reads_the_rest(tmp_path: Path) -> None:
    """The poster posts the blocks the node handed it as they committed without reading the
    block log; it keeps at most two batches' worth, and reads older ones back from the store.
    The batches are the same either way."""
    store = _grow(ChainStore.create(tmp_path / "chain", GENESIS), 12)
    counting = _CountingStore(store)
    poster = _poster(FileDa(tmp_path / "da"), tmp_path, batch_blocks=4)
    for height in range(1, 13):
        poster.remember(store.get_block(height))
    assert poster.recent_blocks == 8  # two batches' worth: blocks 5..12
    for _ in range(3):
        asyncio.run(poster.post_next(counting))  # type: ignore[arg-type]
    assert counting.reads == [1, 2, 3, 4]  # forgotten: read back; 5..12 came from memory
    assert poster.recent_blocks == 0  # posted blocks are let go
    assert _posted(tmp_path / "da") == [(0, 1, 4), (1, 5, 8), (2, 9, 12)]
    for ref in FileDa(tmp_path / "da").list(1):
        batch = decode_batch(FileDa(tmp_path / "da").get(ref))
        first = batch.header.first_height
        stored = [encode(store.get_block(first + i)) for i in range(len(batch.blocks))]
        assert list(batch.blocks) == stored
    poster.close()
    store.close()

"""Helpers for storage tests: a store filled with the deterministic workload, and the same chain
replayed in memory with the reference root (every header and every state's entries)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strata.adapters.chain_store import ChainStore
from strata.stf.block import Header
from strata.stf.genesis import make_genesis
from strata.stf.state_root import iter_state_leaves
from strata.stf.transition import build_block
from tests.storage.workload import GENESIS, block_time, block_transactions


@dataclass(frozen=True)
class Replay:
    headers: list[Header]
    entries: list[dict[bytes, bytes]]
    """The state entries after each height."""


def replay(blocks: int) -> Replay:
    """The chain of ``blocks`` blocks replayed in memory, no store."""
    state, header = make_genesis(GENESIS)
    headers = [header]
    entries = [dict(iter_state_leaves(state))]
    for height in range(1, blocks + 1):
        block, _ = build_block(
            state, block_time(height), (), block_transactions(height), GENESIS.params
        )
        headers.append(block.header)
        entries.append(dict(iter_state_leaves(state)))
    return Replay(headers, entries)


def extend(store: ChainStore, to_height: int) -> None:
    """Commit the workload's blocks up to ``to_height`` on top of the store's tip."""
    while store.tip.height < to_height:
        height = store.tip.height + 1
        block, output = build_block(
            store.state, block_time(height), (), block_transactions(height), store.params
        )
        store.commit_block(block, output)


def build_store(
    path: Path, blocks: int, *, checkpoint_every: int = 4, retain_heights: int = 8
) -> ChainStore:
    """A new store at ``path`` holding ``blocks`` blocks of the workload, left open."""
    store = ChainStore.create(
        path, GENESIS, checkpoint_every=checkpoint_every, retain_heights=retain_heights
    )
    extend(store, blocks)
    store.wait_for_checkpoint()  # the background checkpoint in flight, for a known state
    return store

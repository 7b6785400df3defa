"""A writer process for the file DA crash tests.

It posts the deterministic batches of :func:`workload_batches` to ``FileDa(DIR)`` from index 0
(what is already there is re-posted, idempotently) and prints ``ACK <index> <batch hash hex>``
after each ``post`` returns (the post is then acknowledged). With ``--crash-point P --crash-at K``
it SIGKILLs itself during the post of batch ``K``:

- ``torn``: the record is written only up to a prefix (its length drawn from ``--seed``);
- ``unsynced``: the whole record is written, the kill comes instead of its ``fsync``;
- ``unacked``: the post returned, the kill comes before ``ACK`` is printed.

    python -m tests.da.file_driver DIR --batches N [--crash-point P --crash-at K --seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from strata.adapters.da_file import FileDa
from strata.da.batch import ZERO_HASH, Batch, batch_hash, encode_batch, seal_batch
from strata.stf.block import Block
from strata.stf.transactions import PlaceOrder
from tests.helpers.chain import Chain, make_chain

BLOCKS_PER_BATCH = 3


def workload_chain(blocks: int) -> tuple[Chain, bytes]:
    """A chain of ``blocks`` blocks with a few resting orders each, and its genesis header hash
    (the same bytes in every process: keys from seeds, deterministic signatures)."""
    chain = make_chain()
    genesis_hash = chain.state.tip.header_hash
    for height in range(1, blocks + 1):
        txs = [
            chain.tx(
                "alice", PlaceOrder(1, True, 490_000 + height, 1 + height % 3, 0, False, None)
            ),
            chain.tx("bob", PlaceOrder(1, False, 510_000 + height, 2, 0, False, None)),
            chain.tx("carol", PlaceOrder(2, height % 2 == 0, 30_000 + height, 10, 0, False, None)),
        ]
        output = chain.block(txs, [chain.price(1, 500_000 + height)])
        assert not output.rejected, output.rejected
    return chain, genesis_hash


def seal_all(blocks: list[Block], per_batch: int, chain_id: int) -> list[Batch]:
    """``blocks`` (heights 1, 2, ...) sealed into linked batches of ``per_batch`` blocks."""
    batches: list[Batch] = []
    parent = ZERO_HASH
    for index, start in enumerate(range(0, len(blocks), per_batch)):
        batch = seal_batch(chain_id, index, parent, blocks[start : start + per_batch])
        batches.append(batch)
        parent = batch_hash(batch)
    return batches


def post_blocks(directory: Path, blocks: list[Block], per_batch: int, chain_id: int) -> FileDa:
    """``blocks`` sealed into batches of ``per_batch`` (:func:`seal_all`) and posted to a file DA
    layer in ``directory``, which is returned (what a verifier reads)."""
    da = FileDa(directory)
    for index, batch in enumerate(seal_all(blocks, per_batch, chain_id)):
        da.post(index, encode_batch(batch))
    return da


@cache
def workload_batches(count: int) -> tuple[bytes, ...]:
    """The encoded batches 0..count-1 of the workload chain."""
    chain, _ = workload_chain(count * BLOCKS_PER_BATCH)
    blocks = [block for block, _ in chain.blocks]
    return tuple(encode_batch(b) for b in seal_all(blocks, BLOCKS_PER_BATCH, chain.params.chain_id))


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


_REAL_PWRITE = os.pwrite


def _torn_pwrite(rng: random.Random) -> Callable[[int, bytes, int], int]:
    """An ``os.pwrite`` that writes a random prefix of what it is given, then dies."""

    def torn_pwrite(fd: int, record: bytes, offset: int) -> int:
        cut = rng.randrange(0, len(record))
        _REAL_PWRITE(fd, bytes(record[:cut]), offset)
        _kill_self()
        raise AssertionError("unreachable")

    return torn_pwrite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--batches", type=int, required=True)
    parser.add_argument("--crash-point", choices=["torn", "unsynced", "unacked"], default=None)
    parser.add_argument("--crash-at", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    batches = workload_batches(args.batches)
    da = FileDa(args.directory)
    print(f"START {da.next_index} {da.recovered_tail_bytes}", flush=True)
    rng = random.Random(args.seed)
    for index, data in enumerate(batches):
        if index == args.crash_at and args.crash_point == "torn":
            os.pwrite = _torn_pwrite(rng)  # type: ignore[assignment]
        elif index == args.crash_at and args.crash_point == "unsynced":
            os.fsync = lambda fd: _kill_self()
        ref = da.post(index, data)
        if index == args.crash_at and args.crash_point == "unacked":
            _kill_self()
        assert ref.batch_index == index
        print(f"ACK {index} {ref.batch_hash.hex()} {ref.locator}", flush=True)
    da.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A writer process for crash tests: commits blocks of the deterministic workload in a loop and
prints ``ACK <height> <state root hex>`` after each ``commit_block`` returns (the block is then
acknowledged). With ``--crash-point P --crash-height H`` it SIGKILLs itself at point ``P``
(``before``, ``inside``, ``after``) of the commit of block ``H``, or at point ``checkpoint``
(inside the checkpoint transaction) or ``checkpointed`` (just after it commits) of the
checkpoint that ends at block ``H``: that one runs in a forked writer process, which then kills
the driver (the writer dies with it, ``PR_SET_PDEATHSIG``) and itself.

Checkpoints write their tree nodes in transactions of ``--node-chunk`` nodes (64 by default,
so that every checkpoint of this small workload takes several) before the last transaction,
which holds the checkpoint record: a kill at ``checkpoint`` comes after those have committed.

    python -m tests.storage.crash_driver DIR --blocks N [--crash-point P --crash-height H]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from strata.adapters import chain_store
from strata.adapters.chain_store import ChainStore
from strata.stf.transition import build_block
from tests.storage.workload import GENESIS, block_time, block_transactions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--blocks", type=int, required=True, help="stop at this height")
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--retain", type=int, default=8)
    parser.add_argument("--crash-point", default=None)
    parser.add_argument("--crash-height", type=int, default=-1)
    parser.add_argument("--node-chunk", type=int, default=64)
    args = parser.parse_args(argv)
    chain_store.CHECKPOINT_NODE_CHUNK = args.node_chunk  # type: ignore[misc]
    path: Path = args.directory
    if (path / "data.mdb").exists():
        store = ChainStore.open(
            path, checkpoint_every=args.checkpoint_every, retain_heights=args.retain
        )
    else:
        store = ChainStore.create(
            path, GENESIS, checkpoint_every=args.checkpoint_every, retain_heights=args.retain
        )
    print(f"START {store.tip.height}", flush=True)

    driver = os.getpid()

    def hook(point: str, height: int) -> None:
        if point == args.crash_point and height == args.crash_height:
            os.kill(driver, signal.SIGKILL)  # from a checkpoint writer: the driver first
            os.kill(os.getpid(), signal.SIGKILL)

    store.fault_hook = hook
    while store.tip.height < args.blocks:
        height = store.tip.height + 1
        block, output = build_block(
            store.state, block_time(height), (), block_transactions(height), store.params
        )
        store.commit_block(block, output)
        print(f"ACK {height} {block.header.state_root.hex()}", flush=True)
    store.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""State tree benchmark: the incremental sparse Merkle tree and the reference root, side by side.

Run from a checkout::

    .venv/bin/python bench/state_tree_bench.py --keys 1000000 --block-keys 10000 --blocks 20
    .venv/bin/python bench/state_tree_bench.py --keys 1000000 --verify-nodes --json

Setup (untimed): ``keys`` random 32-byte keys with 32-byte values, built into a
:class:`~strata.state.smt.SparseMerkleTree` by one big ``apply`` over a dict-backed
:class:`~strata.state.smt.MemoryNodeSource`. RSS (``/proc/self/statm``) is read before the build,
with the keys and values already generated (and still alive after it), and after it, with every
node in the in-memory store. Nodes read from the in-memory store are not re-hashed unless
``--verify-nodes`` (the check guards a disk store; here the dict is the tree's own memory).

Timed: ``blocks`` updates of ``block_keys`` keys each, half updates of existing keys and half
inserts of new ones (``apply`` alone: hashing keys and values, the walk, building the new nodes;
writing them to the store is timed apart as ``store_ms``); then proofs of random existing keys.

Side by side, on a separate state of ``reference_keys`` keys: the reference
``core.merkle.compute_root`` of the whole map after one block against the incremental ``apply``
of the same block; ``reference_ratio`` is reference time / incremental time (best of 3 each).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from strata.core.merkle import compute_root  # noqa: E402
from strata.state.smt import MemoryNodeSource, SparseMerkleTree  # noqa: E402


def _rss_bytes() -> int:
    """Resident set size of this process, from ``/proc/self/statm`` (0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def block(
    rng: random.Random,
    keys: list[bytes],
    block_keys: int,
    fresh_keys: Iterator[bytes] | None = None,
) -> dict[bytes, bytes | None]:
    """Half updates of existing keys, half inserts of fresh keys (appended to ``keys``; drawn
    from ``fresh_keys`` if given, else made here)."""
    changes: dict[bytes, bytes | None] = {}
    updates = block_keys // 2
    for key in rng.sample(keys, min(updates, len(keys))):
        changes[key] = rng.randbytes(32)
    count = block_keys - len(changes)
    fresh = (
        [rng.randbytes(32) for _ in range(count)]
        if fresh_keys is None
        else list(itertools.islice(fresh_keys, count))
    )
    for key in fresh:
        changes[key] = rng.randbytes(32)
    keys.extend(fresh)
    return changes


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def reference_ratio(
    rng: random.Random, reference_keys: int, block_keys: int, verify_nodes: bool = False
) -> tuple[float, float, float]:
    """(reference ms, incremental ms, ratio) for one block on a ``reference_keys``-key state."""
    items = {rng.randbytes(32): rng.randbytes(32) for _ in range(reference_keys)}
    keys = list(items)
    source = MemoryNodeSource()
    tree = SparseMerkleTree(source)
    source.put_nodes(tree.apply(items).new_nodes)
    tree.mark_persisted()
    base_root = tree.root
    changes = block(rng, keys, block_keys)
    after = dict(items)
    after.update(changes)  # type: ignore[arg-type]
    reference_s = []
    for _ in range(3):
        start = time.perf_counter()
        reference_root = compute_root(after)
        reference_s.append(time.perf_counter() - start)
    incremental_s = []
    for _ in range(3):
        tree = SparseMerkleTree(source, base_root, cache_nodes=0, verify_nodes=verify_nodes)
        start = time.perf_counter()
        update = tree.apply(changes)
        incremental_s.append(time.perf_counter() - start)
        if update.root != reference_root:
            raise AssertionError("incremental root differs from the reference root")
    best_ref, best_inc = min(reference_s), min(incremental_s)
    return best_ref * 1e3, best_inc * 1e3, best_ref / best_inc


def run_tree_bench(
    keys: int,
    block_keys: int,
    blocks: int,
    *,
    seed: int = 1,
    proofs: int = 20_000,
    reference_keys: int = 100_000,
    cache_nodes: int = 0,
    verify_nodes: bool = False,
) -> dict[str, Any]:
    """Measure the tree; return the figures as a dict (see the module docstring).

    ``cache_nodes`` is 0 by default: the whole store is an in-memory dict, so a cache in front of
    it only adds work (the node process puts one in front of LMDB).
    """
    rng = random.Random(seed)
    items: dict[bytes, bytes | None] = {rng.randbytes(32): rng.randbytes(32) for _ in range(keys)}
    all_keys = list(items)
    gc.collect()
    rss_before = _rss_bytes()

    source = MemoryNodeSource()
    tree = SparseMerkleTree(source, cache_nodes=cache_nodes, verify_nodes=verify_nodes)
    start = time.perf_counter()
    build = tree.apply(items)
    build_s = time.perf_counter() - start
    source.put_nodes(build.new_nodes)
    tree.mark_persisted()
    nodes_after_build = len(source)
    del build
    gc.collect()
    rss_after = _rss_bytes()
    del items

    update_ms: list[float] = []
    store_ms: list[float] = []
    new_nodes = stale_nodes = 0
    for _ in range(blocks):
        changes = block(rng, all_keys, block_keys)
        gc.collect()
        start = time.perf_counter()
        update = tree.apply(changes)
        mid = time.perf_counter()
        source.put_nodes(update.new_nodes)
        tree.mark_persisted()
        end = time.perf_counter()
        update_ms.append((mid - start) * 1e3)
        store_ms.append((end - mid) * 1e3)
        new_nodes += len(update.new_nodes)
        stale_nodes += len(update.stale_nodes)

    proof_keys = rng.sample(all_keys, min(proofs, len(all_keys)))
    start = time.perf_counter()
    for key in proof_keys:
        tree.prove(key)
    proofs_per_s = len(proof_keys) / (time.perf_counter() - start)

    reference_ms, incremental_ms, ratio = reference_ratio(
        random.Random(seed + 1), reference_keys, block_keys, verify_nodes
    )
    return {
        "keys": keys,
        "verify_nodes": verify_nodes,
        "block_keys": block_keys,
        "blocks": blocks,
        "seed": seed,
        "build_s": round(build_s, 2),
        "nodes_per_key": round(nodes_after_build / max(keys, 1), 3),
        "update_ms_median": round(statistics.median(update_ms), 1) if update_ms else 0.0,
        "update_ms_p99": round(percentile(update_ms, 0.99), 1) if update_ms else 0.0,
        "store_ms_median": round(statistics.median(store_ms), 1) if store_ms else 0.0,
        "new_nodes_per_block": round(new_nodes / max(blocks, 1)),
        "stale_nodes_per_block": round(stale_nodes / max(blocks, 1)),
        "proofs_per_s": round(proofs_per_s),
        "rss_mb_per_million_keys": round((rss_after - rss_before) / 2**20 / max(keys, 1) * 1e6, 1),
        "reference_keys": reference_keys,
        "reference_ms": round(reference_ms, 1),
        "reference_incremental_ms": round(incremental_ms, 1),
        "reference_ratio": round(ratio, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--block-keys", type=int, default=10_000)
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--proofs", type=int, default=20_000)
    p.add_argument("--reference-keys", type=int, default=100_000)
    p.add_argument("--cache-nodes", type=int, default=0)
    p.add_argument("--verify-nodes", action="store_true", help="re-hash every node read")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args(argv)
    r = run_tree_bench(
        args.keys,
        args.block_keys,
        args.blocks,
        seed=args.seed,
        proofs=args.proofs,
        reference_keys=args.reference_keys,
        cache_nodes=args.cache_nodes,
        verify_nodes=args.verify_nodes,
    )
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    print(
        f"state: {r['keys']:,} keys ({r['nodes_per_key']} nodes/key, built in {r['build_s']} s);"
        f" {r['blocks']} blocks of {r['block_keys']:,} keys (half updates, half inserts);"
        f" verify nodes: {r['verify_nodes']}"
    )
    rows = [
        ("update, median", f"{r['update_ms_median']:,.1f} ms"),
        ("update, p99", f"{r['update_ms_p99']:,.1f} ms"),
        ("store write, median", f"{r['store_ms_median']:,.1f} ms"),
        (
            "new / stale nodes per block",
            f"{r['new_nodes_per_block']:,} / {r['stale_nodes_per_block']:,}",
        ),
        ("proofs", f"{r['proofs_per_s']:,} /s"),
        ("RSS per million keys", f"{r['rss_mb_per_million_keys']:,.1f} MB"),
    ]
    for name, value in rows:
        print(f"{name:<32}{value:>20}")
    print(
        f"one block on {r['reference_keys']:,} keys: reference compute_root"
        f" {r['reference_ms']:,.1f} ms, incremental apply {r['reference_incremental_ms']:,.1f} ms,"
        f" reference / incremental = {r['reference_ratio']}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

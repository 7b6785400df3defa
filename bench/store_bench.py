"""Storage benchmark (``strata bench state``): the LMDB chain store at a large state.

Run from a checkout::

    .venv/bin/python bench/store_bench.py --keys 1000000 --block-keys 10000 --blocks 40 [--json]

Setup (untimed): ``keys`` random 32-byte keys with 32-byte values are loaded into a new
:class:`~strata.adapters.chain_store.ChainStore` as one synthetic checkpoint
(``load_synthetic_state``: values and tree nodes written in key order). RSS is read before it,
with the keys already generated (those the blocks will insert too: the benchmark's own lists are
not the store's memory), and at the end, after the blocks and the proofs;
``rss_mb_per_million_keys`` divides the growth by the keys the state holds at the end
(``keys_at_end``: the blocks insert keys).

Timed, per block, ``block_keys`` synthetic changes (half updates of existing keys, half
inserts): the incremental tree update (the state root, ``root_ms_*``), then
``ChainStore.commit_synthetic``: the block's one durable write transaction on the block log with
``fsync`` (the change set as the block record, header, tip), collecting a finished background
checkpoint and, when one is due and none is running, forking the next one's writer. This is the
node's commit path minus transaction execution (``apply_block`` computes the root the same way,
then ``commit_block`` writes the block). ``commit_ms_*`` are what ``ChainStore.commit_block``
costs (checkpoints run in the background meanwhile, on the other core); ``block_ms_*`` root and
commit together; ``write_ms`` the block transaction alone; ``checkpoint_ms_*`` how long each
background checkpoint took from its start to its commit (``ChainStore.checkpoint_log``);
``checkpoint_drain_ms`` the wait, after the last block, for the one still running. The first
``warmup`` blocks (cold node cache) are run but not counted.

Proofs: ``ChainStore.read(key)`` (value, proof and root at the tip) for random existing keys.
``bytes_per_key``: size of both ``data.mdb`` files (block log and state store) / keys, at the
end (it includes the retained versions of the tree, the history and the block records). Side by
side, on a separate 100,000-key in-memory state: the reference ``core.merkle.compute_root``
against the incremental update of the same block (``bench/state_tree_bench.py``), as
``reference_ratio``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench.state_tree_bench import block, percentile, reference_ratio  # noqa: E402
from strata.adapters.chain_store import ChainStore  # noqa: E402
from strata.core.merkle import verify_proof  # noqa: E402
from strata.stf.genesis import GenesisConfig  # noqa: E402
from strata.stf.params import ChainParams  # noqa: E402


def _rss() -> dict[str, int]:
    """``RssAnon`` and ``RssFile`` of this process in bytes (``/proc/self/status``)."""
    found = {"RssAnon": 0, "RssFile": 0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name = line.split(":")[0]
                if name in found:
                    found[name] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


def run_store_bench(
    directory: Path,
    keys: int,
    block_keys: int,
    blocks: int,
    *,
    checkpoint_every: int = 16,
    retain_heights: int = 64,
    warmup: int = 2,
    seed: int = 1,
    proofs: int = 20_000,
    reference_keys: int = 100_000,
) -> dict[str, Any]:
    rng = random.Random(seed)
    all_keys = [rng.randbytes(32) for _ in range(keys)]
    # The keys the blocks will insert, made now: the benchmark's own key list is not the store's
    # memory.
    inserted = [
        rng.randbytes(32) for _ in range((warmup + blocks) * (block_keys - block_keys // 2))
    ]
    fresh_keys = iter(inserted)
    gc.collect()
    rss_before = _rss()
    genesis = GenesisConfig(params=ChainParams(chain_id=1), timestamp_ms=0, markets=())
    store = ChainStore.create(
        directory / "chain",
        genesis,
        checkpoint_every=checkpoint_every,
        retain_heights=retain_heights,
    )
    start = time.perf_counter()
    store.load_synthetic_state({key: rng.randbytes(32) for key in all_keys})
    setup_s = time.perf_counter() - start
    gc.collect()

    write_s: list[float] = []
    write_block = store._write_block

    def timed_write(*args: Any) -> None:
        began = time.perf_counter()
        write_block(*args)
        write_s.append(time.perf_counter() - began)

    store._write_block = timed_write  # type: ignore[method-assign,assignment]
    tree = store._tree()

    block_ms: list[float] = []
    commit_ms: list[float] = []
    root_ms: list[float] = []
    write_ms: list[float] = []
    for index in range(warmup + blocks):
        changes = block(rng, all_keys, block_keys, fresh_keys)
        gc.collect()
        del write_s[:]
        began = time.perf_counter()
        update = tree.apply(changes)
        applied = time.perf_counter()
        store.commit_synthetic(changes, update)
        ended = time.perf_counter()
        if index < warmup:
            continue
        block_ms.append((ended - began) * 1e3)
        commit_ms.append((ended - applied) * 1e3)
        write_ms.append(sum(write_s) * 1e3)
        root_ms.append((applied - began) * 1e3)
    began = time.perf_counter()
    store.wait_for_checkpoint()
    drain_ms = (time.perf_counter() - began) * 1e3
    checkpoint_ms = [seconds * 1e3 for height, seconds in store.checkpoint_log if height > 1]

    proof_keys = rng.sample(all_keys, min(proofs, len(all_keys)))
    began = time.perf_counter()
    for key in proof_keys:
        store.read(key)
    proofs_per_s = len(proof_keys) / (time.perf_counter() - began)
    for key in proof_keys[:50]:
        value, proof, root = store.read(key)
        assert verify_proof(root, key, value, proof)

    gc.collect()
    rss_after = _rss()
    chain = directory / "chain"
    data_bytes = sum(f.stat().st_size for f in (chain / "data.mdb", chain / "state" / "data.mdb"))
    tip = store.tip.height
    pending = len(store._pending)
    keys_at_end = len(all_keys)
    store.close(checkpoint=False)

    reference_ms, incremental_ms, ratio = reference_ratio(
        random.Random(seed + 1), reference_keys, block_keys
    )
    anon = rss_after["RssAnon"] - rss_before["RssAnon"]
    file_mapped = rss_after["RssFile"] - rss_before["RssFile"]
    # Per million keys of the state measured: the blocks insert keys, so the state at the end
    # holds more than ``keys``.
    per_million = 1e6 / max(keys_at_end, 1) / 2**20
    return {
        "keys": keys,
        "block_keys": block_keys,
        "blocks": blocks,
        "checkpoint_every": checkpoint_every,
        "retain_heights": retain_heights,
        "setup_s": round(setup_s, 1),
        "commit_ms_p50": round(statistics.median(commit_ms), 1),
        "commit_ms_p99": round(percentile(commit_ms, 0.99), 1),
        "root_ms_p50": round(statistics.median(root_ms), 1),
        "write_ms_p50": round(statistics.median(write_ms), 1),
        "root_ms_p99": round(percentile(root_ms, 0.99), 1),
        "block_ms_p50": round(statistics.median(block_ms), 1),
        "block_ms_p99": round(percentile(block_ms, 0.99), 1),
        "checkpoint_ms_p50": round(statistics.median(checkpoint_ms), 1) if checkpoint_ms else 0,
        "checkpoint_ms_max": round(max(checkpoint_ms), 1) if checkpoint_ms else 0,
        "checkpoints": len(checkpoint_ms),
        "checkpoint_drain_ms": round(drain_ms, 1),
        "proofs_per_s": round(proofs_per_s),
        "bytes_per_key": round(data_bytes / max(keys, 1), 1),
        "data_mb": round(data_bytes / 2**20, 1),
        "keys_at_end": keys_at_end,
        "rss_mb": round((anon + file_mapped) / 2**20, 1),
        "rss_mb_per_million_keys": round((anon + file_mapped) * per_million, 1),
        "rss_anon_mb_per_million_keys": round(anon * per_million, 1),
        "tip": tip,
        "pending_blocks_at_end": pending,
        "reference_keys": reference_keys,
        "reference_ms": round(reference_ms, 1),
        "reference_incremental_ms": round(incremental_ms, 1),
        "reference_ratio": round(ratio, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--block-keys", type=int, default=10_000)
    p.add_argument("--blocks", type=int, default=40)
    p.add_argument("--checkpoint-every", type=int, default=16)
    p.add_argument("--retain", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--proofs", type=int, default=20_000)
    p.add_argument("--reference-keys", type=int, default=100_000)
    p.add_argument("--dir", type=Path, default=None, help="where to put the store (default: tmp)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        r = run_store_bench(
            Path(scratch),
            args.keys,
            args.block_keys,
            args.blocks,
            checkpoint_every=args.checkpoint_every,
            retain_heights=args.retain,
            warmup=args.warmup,
            seed=args.seed,
            proofs=args.proofs,
            reference_keys=args.reference_keys,
        )
    if args.json:
        print(json.dumps(r))
        return 0
    rows = [
        ("state", f"{r['keys']:,} keys, blocks of {r['block_keys']:,} keys, {r['blocks']} blocks"),
        ("checkpoint every / retain", f"{r['checkpoint_every']} / {r['retain_heights']} blocks"),
        ("setup (untimed)", f"{r['setup_s']} s"),
        ("commit (commit_block), p50", f"{r['commit_ms_p50']:,.1f} ms"),
        ("commit (commit_block), p99", f"{r['commit_ms_p99']:,.1f} ms"),
        ("tree update (root), p50 / p99", f"{r['root_ms_p50']:,.1f} / {r['root_ms_p99']:,.1f} ms"),
        ("root + commit, p50 / p99", f"{r['block_ms_p50']:,.1f} / {r['block_ms_p99']:,.1f} ms"),
        ("  block transaction + fsync, p50", f"{r['write_ms_p50']:,.1f} ms"),
        (
            "  checkpoint, p50 / max",
            f"{r['checkpoint_ms_p50']:,.1f} / {r['checkpoint_ms_max']:,.1f} ms",
        ),
        ("proofs (read with proof)", f"{r['proofs_per_s']:,} /s"),
        ("bytes on disk per key", f"{r['bytes_per_key']:,.1f} B ({r['data_mb']:,.1f} MB)"),
        ("RSS per million keys", f"{r['rss_mb_per_million_keys']:,.1f} MB"),
        ("  of which anonymous", f"{r['rss_anon_mb_per_million_keys']:,.1f} MB"),
        (
            f"reference vs incremental, {r['reference_keys']:,} keys",
            f"{r['reference_ms']:,.1f} vs {r['reference_incremental_ms']:,.1f} ms "
            f"(x{r['reference_ratio']})",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

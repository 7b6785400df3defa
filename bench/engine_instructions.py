"""``strata bench engine --instructions``: the engine's cost in machine instructions per event.

A timing on this shared machine moves by a fifth from one minute to the next, more than most
changes to the engine are worth. The number of instructions the CPU executes does not move: the
same blocks through the same code count the same, to a few parts in a million, whatever else the
machine is doing. So this is how two versions of ring 0 (or a rule change) are compared: run this
in each checkout, and compare the counts.

It builds the first ``--blocks`` blocks of ``strata bench engine``'s chain workloads (single orders,
and with market makers' bulk actions; seeded, untimed), then re-executes them from genesis with
``apply_block`` in a fresh interpreter under Valgrind's ``callgrind`` tool, which counts every
instruction executed. A second run that stops before the first block counts what is not the
blocks (starting Python, importing Strata, loading the workload, the genesis); the difference,
divided by the blocks' order operations, is ``instructions_per_event``. The interpreter runs with
``PYTHONHASHSEED=0``, so dictionaries are laid out the same each time.

Ring 0 runs as it would in ``strata bench engine`` (compiled, if built, with its hashing
extension; the garbage collector set as the node sets it); ``--pure`` counts it interpreted
(``STRATA_PURE=1``).

Caveat: Valgrind's virtual CPU has no SHA extensions, so OpenSSL hashes in plain code under it; the
counts weigh SHA-256 (the roots, the transaction ids) about three times as heavily as the real CPU
does. Compare counts with counts, never with ``events_per_s``.

Needs ``valgrind`` (Debian: ``apt install valgrind``); about a minute per workload and block.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine_bench import build_chain_workload  # noqa: E402
from strata import compiled  # noqa: E402
from strata.stf.block import Block  # noqa: E402
from strata.stf.transactions import count_order_operations  # noqa: E402

_REPLAY = """
import pickle, sys
from strata.adapters.lifetime import collector_paused, tune_collector
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block
with open(sys.argv[1], "rb") as f:
    config, blocks = pickle.load(f)
state, _ = make_genesis(config)
tune_collector()
for block, signers in blocks[: int(sys.argv[2])]:
    with collector_paused():
        apply_block(state, block, config.params, signers)
"""
_COLLECTED = re.compile(r"Collected : (\d+)")


def count_instructions(workload: Path, blocks: int, pure: bool) -> int:
    """Instructions executed by a fresh interpreter re-executing the first ``blocks`` blocks of
    ``workload`` (a pickled genesis and blocks), under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    if pure:
        env[compiled.PURE_ENV] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                "-c",
                _REPLAY,
                str(workload),
                str(blocks),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def measure(blocks: int, seed: int, block_size: int, pure: bool, bulk: bool) -> dict[str, int]:
    """Build the workload's first ``blocks`` blocks and count the instructions they take."""
    config, built = build_chain_workload(
        blocks * block_size, seed, block_size=block_size, bulk=bulk
    )
    events = sum(count_operations(block) for block, _ in built)
    with tempfile.TemporaryDirectory() as tmp:
        workload = Path(tmp) / "workload.pickle"
        with workload.open("wb") as f:
            pickle.dump((config, built), f)
        total = count_instructions(workload, len(built), pure)
        setup = count_instructions(workload, 0, pure)
    return {
        "blocks": len(built),
        "events": events,
        "instructions": total - setup,
        "setup_instructions": setup,
        "instructions_per_event": round((total - setup) / events),
    }


def count_operations(block: object) -> int:
    """Order operations in a block (a bulk action counts each of its items)."""
    assert isinstance(block, Block)
    return count_order_operations(block.transactions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata bench engine --instructions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--blocks", type=int, default=2, help="blocks per workload")
    parser.add_argument("--block-size", type=int, default=10_000, help="order operations a block")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pure", action="store_true", help="ring 0 interpreted (STRATA_PURE=1)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    if args.blocks < 1 or args.block_size < 1:
        parser.error("--blocks and --block-size must be at least 1")
    if shutil.which("valgrind") is None:
        print("error: valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    how = compiled.status()
    ring0 = "interpreted" if args.pure or not how["compiled"] else f"compiled ({how['modules']})"
    summary: dict[str, object] = {"seed": args.seed, "ring0": ring0}
    for name, bulk in (("single", False), ("bulk", True)):
        print(f"counting {name}: {args.blocks} block(s) under callgrind...", file=sys.stderr)
        result = measure(args.blocks, args.seed, args.block_size, args.pure, bulk)
        for key, value in result.items():
            summary[f"{name}_{key}"] = value
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"ring 0: {ring0}")
        for name in ("single", "bulk"):
            print(
                f"{name:<8}{summary[f'{name}_instructions_per_event']:>10,} instructions/event"
                f"  ({summary[f'{name}_events']:,} events in {summary[f'{name}_blocks']} blocks)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

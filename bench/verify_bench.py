"""``strata bench verify``: can a verifier keep up? The verifier re-executing a loaded chain from
its DA batches, side by side with the sequencer that produced it.

It first loads a real node (``bench/node_bench.py``: signed single orders, then bulk transactions,
over the API) whose blocks go to file DA; then, in a fresh process under another
``PYTHONHASHSEED``, runs ``strata verify --json`` over that DA directory and the node's genesis.
It reports, on the same blocks:

- the sequencer's production rate: orders and blocks per second of chain time (what the verifier
  must at least match to keep up), and its execution rate (orders per second of block building
  and commit, from its log);
- the verifier's rate: blocks and orders per second of verification (derivation, signatures,
  ``apply_block``, every root compared), and its mismatches (there must be none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import node_bench  # noqa: E402


def _sequencer_rates(data_dir: Path) -> dict[str, float]:
    """From the node's log: blocks, chain seconds, and the time spent building and committing."""
    log = data_dir.parent / f"{data_dir.name}.log"
    blocks = build = 0.0
    first_ts = last_ts = None
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("msg") != "block":
            continue
        blocks += 1
        build += (entry["build_ms"] + entry["commit_ms"]) / 1000
        first_ts = entry["ts"] if first_ts is None else first_ts
        last_ts = entry["ts"]
    span = (last_ts or 0) - (first_ts or 0)
    return {"blocks": blocks, "chain_seconds": span, "execution_seconds": build}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata bench verify", description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="*", default=[5000, 10000])
    parser.add_argument("--bulk-rates", type=int, nargs="*", default=[1500])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    load = argparse.Namespace(
        rates=args.rates,
        bulk_rates=args.bulk_rates,
        seconds=args.seconds,
        warmup_seconds=0.0,
        block_time_ms=200,
        json=True,
        keep_data_dir=True,  # verified below, then removed
    )
    print("loading a node to make a chain ...", file=sys.stderr, flush=True)
    loaded = asyncio.run(node_bench.run(load))
    data_dir = Path(loaded["data_dir"])
    try:
        return _verify(args, data_dir)
    finally:
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _verify(args: argparse.Namespace, data_dir: Path) -> int:
    """Re-execute the loaded node's chain from its file DA in a fresh process; report both."""
    sequencer = _sequencer_rates(data_dir)
    print("verifying it from DA in a fresh process ...", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "strata.cli.main",
            "verify",
            "--da",
            f"file:{data_dir / 'da'}",
            "--genesis",
            str(data_dir / "genesis.json"),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    verified: dict[str, Any] = json.loads(done.stdout)
    orders = verified["orders"]
    result = {
        "blocks": verified["blocks_checked"],
        "orders": orders,
        "mismatches": verified["mismatches"],
        "sequencer_blocks_per_chain_s": round(sequencer["blocks"] / sequencer["chain_seconds"], 1),
        "sequencer_orders_per_chain_s": round(orders / sequencer["chain_seconds"]),
        "sequencer_execution_orders_per_s": round(orders / sequencer["execution_seconds"]),
        "verifier_blocks_per_s": verified["blocks_per_s"],
        "verifier_orders_per_s": verified["orders_per_s"],
    }
    result["verifier_keeps_up"] = (
        result["verifier_orders_per_s"] >= result["sequencer_orders_per_chain_s"]
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:36} {value}")
    return 0 if verified["mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

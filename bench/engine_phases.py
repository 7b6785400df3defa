"""Where `apply_block` spends its time: each phase function timed over the engine workload.

    .venv/bin/python bench/engine_phases.py [--events 40000] [--bulk]

Runs ring 0 interpreted. Wraps the phase functions of ``strata.stf.transition`` with timers (the
wrappers add about 0.2 µs per call, so the per-phase figures are slight overestimates) and prints
µs per order operation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The phases are timed by replacing the module's functions, which a compiled ring 0 would call
# directly (strata/compiled.py): this runs ring 0 interpreted.
os.environ["STRATA_PURE"] = "1"

import strata.stf.transition as transition  # noqa: E402
from bench.engine_bench import build_chain_workload  # noqa: E402
from strata.stf.genesis import make_genesis  # noqa: E402
from strata.stf.transactions import TX_DECODER  # noqa: E402

PHASES = (
    "process_admission",
    "match_markets",
    "process_settlement",
    "process_risk",
    "apply_prices",
    "apply_funding",
    "apply_expiries",
    "apply_schedules",
    "apply_triggers",
    "compute_state_root",
    "compute_ordered_root",
    "compute_tx_class",
    "compute_transaction_hash",
    "encode",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bulk", action="store_true", help="the market-maker bulk workload")
    args = parser.parse_args(argv)
    config, blocks = build_chain_workload(args.events, args.seed, bulk=args.bulk)
    spent: dict[str, float] = {}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            start = time.perf_counter()
            result = function(*a, **k)
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
            return result

        return wrapper

    for name in PHASES:
        setattr(transition, name, timed(name, getattr(transition, name)))
    # The executor decodes with the decoder's method itself.
    decode = timed("decode_transaction", TX_DECODER.decode)
    setattr(transition, "TX_DECODER", SimpleNamespace(decode=decode))  # noqa: B010
    state, _ = make_genesis(config)
    start = time.perf_counter()
    for block, signers in blocks:
        transition.apply_block(state, block, config.params, signers)  # type: ignore[arg-type]
    total = time.perf_counter() - start
    n = args.events
    print(f"{'total':<28}{total:>8.3f} s{total / n * 1e6:>8.2f} µs/op  ({n / total:,.0f} ops/s)")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"{name:<28}{seconds:>8.3f} s{seconds / n * 1e6:>8.2f} µs/op")
    rest = total - sum(spent.values())
    print(f"{'(the block loop itself)':<28}{rest:>8.3f} s{rest / n * 1e6:>8.2f} µs/op")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``strata bench parallel``: the node's end-to-end throughput on one core against two, in one run.

For each workload a fresh devnet node runs under ``taskset -c 0`` (one core) and under ``taskset
-c 0,1`` (both cores), and this process offers it presigned transactions over HTTP above what it
can take (the load generator itself is pinned to the second core, so in the one-core run it never
competes with the node, and in the two-core run it does: the speedups are conservative). The
figure of each run is the rate of transactions included in blocks committed while the load was
offered (signature checks, admission, execution, commitment and storage all included).

The pair runs ``--rounds`` times in ABBA order (one core first, then two cores first, and so on).
The machine is shared and its speed drifts by the hour, enough to move a single pair's ratio by a
fifth; a steady drift cancels out of the ratio of the rounds' mean rates, and the ratio of each
round is reported beside it.

Workloads (orders at the mark in crossing pairs, as ``strata bench node``):

- ``single``: one order per signed transaction, over both devnet markets;
- ``bulk``: ``BulkPlace`` transactions of 16 orders, over both markets;
- ``hot``: one order per transaction, all in one market (BTC-PERP).

Both runs of a workload do the same work: each posts its batches to a file DA layer, and
``strata verify`` then re-executes each whole chain from DA with the serial executor and compares
every root: ``roots_identical`` says every node, one core or two, produced the serial chain's bytes.

``--json`` prints ``speedup_single_orders``, ``speedup_bulk``, ``speedup_hot_market`` (the mean
two-core rate over the mean one-core rate), ``speedups_by_round`` (each pair's own ratio),
``roots_identical`` and every measured rate, with the CPU each run used while the load was offered
(``node_cpu_pct``, in percent of one core, by role: the node's main thread, its other threads,
its signature, matching and index processes, its checkpoint writers, and the total
(``bench/cpu_timeline.py``); ``loadgen_cpu_pct``: the load generator's), and ``blocks``: the blocks
committed under load, with the busiest market's mean share of their book operations, the mean
bound on what sharding matching by market could give (``node/conflicts.py``), and the share of
the node's block time spent executing, committing and reporting. A two-core total well under
200% means the node waited (for signatures, for the next block), not that it lacked a core.
``--matching-shards N`` runs every node with market-sharded matching (``exec/parallel.py``), to
compare with the same command without it; the verifier still matches in one process.
``--plot FILE`` draws, per run, where each core's time went while the load was offered: the CPU of
each role sampled every quarter second, stacked, under the line of the cores the run had (SVG or
PNG by the file's suffix). ``--trace DIR`` writes, per run, a flame graph of the node and each of
its worker processes during the measured load (``py-spy record --subprocesses``): what each
process spent its time on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.node_process import STRATA, NodeProcess  # noqa: E402

from bench.cpu_timeline import (  # noqa: E402
    CpuSampler,
    CpuTimeline,
    cpu_percent,
    plot_timelines,
    read_tree_cpu,
)
from bench.node_bench import (  # noqa: E402
    BULK,
    INFLIGHT,
    Bench,
    Signer,
    Step,
    _drain,
    _setup,
    read_metrics,
)
from strata.client.signing import agent_from_seed, wallet_from_seed  # noqa: E402
from strata.node.config import DEVNET_FUNDED_SEEDS  # noqa: E402

WORKLOADS: dict[str, tuple[str, tuple[int, ...]]] = {
    "single": ("single", (1, 2)),
    "bulk": ("bulk", (1, 2)),
    "hot": ("single", (1,)),
}
CPU_SETS = ("0", "0,1")


async def _measure(
    workdir: Path,
    cpus: str,
    workload: str,
    rate: int,
    seconds: float,
    block_time_ms: int,
    trace: Path | None,
    round_: int = 0,
    matching_shards: int = 0,
    timelines: list[tuple[tuple[str, int, int], CpuTimeline]] | None = None,
    commit_process: bool = False,
) -> dict[str, Any]:
    kind, markets = WORKLOADS[workload]
    mode = "-commit" if commit_process else ""
    data_dir = workdir / f"{workload}-{cpus.replace(',', '')}-{round_}{mode}"
    extra = ["--da", "file"]  # both runs do the same work, posting included
    if matching_shards:
        extra += ["--matching-shards", str(matching_shards)]
    if commit_process:
        extra += ["--commit-process"]
    node = NodeProcess(
        data_dir, block_time_ms=block_time_ms, extra=extra, prefix=["taskset", "-c", cpus]
    )
    node.start()
    base = int(time.time() * 1000)
    signers = [
        Signer(wallet_from_seed(seed), agent_from_seed(f"bench-agent-{seed}"), base)
        for seed in DEVNET_FUNDED_SEEDS
    ]
    bench = Bench(node, signers)
    try:
        connector = aiohttp.TCPConnector(limit=INFLIGHT + 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _setup(bench, session)
            warm = Step(kind, rate, 2.0, markets=markets)
            bench.presign(warm)
            await bench.run_step(session, warm)
            await _drain(bench, session)
            step = Step(kind, rate, seconds, markets=markets)
            bench.presign(step)
            spy = None
            if trace is not None:
                assert node.proc is not None
                out = trace / f"{workload}-cpus{cpus.replace(',', '')}-{round_}.svg"
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(node.proc.pid),
                        "--subprocesses",
                        "--nonblocking",
                        "--duration",
                        str(max(1, int(seconds) - 1)),
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            assert node.proc is not None
            sampler = CpuSampler(node.proc.pid) if timelines is not None else None
            cpu_before = read_tree_cpu(node.proc.pid)
            if sampler is not None:
                sampler.start()
            blocks_before = await read_metrics(session, node.url)
            await bench.run_step(session, step)
            cpu_after = read_tree_cpu(node.proc.pid)
            timeline = None if sampler is None else sampler.stop(len(cpus.split(",")))
            blocks_after = await read_metrics(session, node.url)
            if spy is not None:
                spy.wait(60)
            await _drain(bench, session)
    finally:
        node.terminate(120)
    unit = BULK if kind == "bulk" else 1
    included = min(step.included, step.accepted)
    if timeline is not None and timelines is not None:
        shown = (
            f"{round(included * unit / step.elapsed):,} {'orders' if kind == 'bulk' else 'tx'}/s"
        )
        cores = "1 core" if timeline.cores == 1 else f"{timeline.cores} cores"
        timeline.title = f"{workload}, {cores}, round {round_ + 1}: {shown}"
        timelines.append(((workload, round_, timeline.cores), timeline))
    return {
        "workload": workload,
        "cpus": cpus,
        "round": round_,
        "commit_process": commit_process,
        "offered_tx_per_s": rate,
        "included_tx_per_s": round(included / step.elapsed),
        "included_orders_per_s": round(included * unit / step.elapsed),
        "refused": step.refused,
        "loadgen_cpu_pct": round(100 * step.loadgen_cpu_s / step.elapsed),
        "blocks": _block_report(blocks_before, blocks_after),
        "node_cpu_pct": cpu_percent(cpu_before, cpu_after, step.elapsed),
        "data_dir": str(data_dir),
    }


STAGES = ("execute", "seal", "commit", "report")
"""``seal``: with the commitment process, waiting for a block's root and moving the tree to it."""
MATCHING_PARTS = ("own", "waiting", "handover")


def _block_report(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """What the blocks committed between two readings of ``/metrics`` were like (the node's
    per-block conflict and stage counters, ``node/conflicts.py``): the busiest market's mean
    share of their book operations, the mean bound on what sharding matching by market could
    give, the share of the node's block time in each stage, and, with market-sharded matching,
    the node's thread's time in the matching phase by part (``exec/parallel.py``)."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    blocks = delta("strata_block_hot_market_share_count")
    stages = {stage: delta(f'strata_stage_seconds_total{{stage="{stage}"}}') for stage in STAGES}
    busy = sum(stages.values())
    matching = {
        part: round(delta(f'strata_matching_seconds_total{{part="{part}"}}'), 3)
        for part in MATCHING_PARTS
        if f'strata_matching_seconds_total{{part="{part}"}}' in after
    }
    return {
        "blocks": int(blocks),
        "hot_market_share_mean": round(delta("strata_block_hot_market_share_sum") / blocks, 3)
        if blocks
        else None,
        "parallel_bound_mean": round(delta("strata_block_parallel_bound_sum") / blocks, 2)
        if blocks
        else None,
        "stage_share": {s: round(t / busy, 3) for s, t in stages.items()} if busy else {},
        "matching_seconds": matching,
    }


def _verify(data_dir: Path) -> bool:
    """``strata verify`` over the node's file DA: every root re-derived by the serial executor."""
    result = subprocess.run(
        [
            *STRATA,
            "verify",
            "--da",
            f"file:{data_dir / 'da'}",
            "--genesis",
            str(data_dir / "genesis.json"),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        return False
    summary = json.loads(result.stdout)
    return bool(summary["mismatches"] == 0 and summary["blocks_checked"] > 0)


SPEEDUP_KEYS = (
    ("single", "speedup_single_orders"),
    ("bulk", "speedup_bulk"),
    ("hot", "speedup_hot_market"),
)


def compute_speedups(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per workload, the mean two-core rate over the mean one-core rate (``speedup_*``) and
    each round's own ratio (``speedups_by_round``, to show how far the machine moved)."""
    summary: dict[str, Any] = {"speedups_by_round": {}}
    for workload, key in SPEEDUP_KEYS:
        rates: dict[str, dict[int, int]] = {cpus: {} for cpus in CPU_SETS}
        for r in runs:
            if r["workload"] == workload:
                rates[r["cpus"]][r["round"]] = r["included_tx_per_s"]
        one, two = rates[CPU_SETS[0]], rates[CPU_SETS[1]]
        rounds = sorted(one.keys() & two.keys())
        if not rounds or not all(one[n] for n in rounds):
            continue
        summary[key] = round(sum(two[n] for n in rounds) / sum(one[n] for n in rounds), 2)
        summary["speedups_by_round"][key] = [round(two[n] / one[n], 2) for n in rounds]
    return summary


def _offered_rates(args: argparse.Namespace) -> dict[str, int]:
    """The transactions a second offered to each workload (a hot market: the single rate)."""
    return {"single": args.single_rate, "bulk": args.bulk_rate, "hot": args.single_rate}


def compare_commit_process(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Two cores only: each workload with and without the commitment process
    (``--commit-process``), in ABBA rounds; ``commit_process_ratio_*`` is the mean rate with it
    over the mean rate without it (``>1``: it pays)."""
    rates = _offered_rates(args)
    runs: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"commit_process_ratios_by_round": {}}
    for workload in args.workloads:
        by_mode: dict[bool, list[int]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for on in (False, True) if round_ % 2 == 0 else (True, False):
                label = (
                    f"{workload:6} on cpus 0,1 {'with' if on else 'without':7} the commitment "
                    f"process (round {round_ + 1}/{args.rounds})"
                )
                print(f"  {label} ...", file=sys.stderr, flush=True)
                result = asyncio.run(
                    _measure(
                        workdir,
                        CPU_SETS[1],
                        workload,
                        rates[workload],
                        args.seconds,
                        args.block_time_ms,
                        args.trace,
                        round_,
                        args.matching_shards,
                        commit_process=on,
                    )
                )
                print(
                    f"  {label}: {result['included_tx_per_s']:>7} tx/s "
                    f"({result['included_orders_per_s']} orders/s), node CPU "
                    f"{result['node_cpu_pct']}",
                    file=sys.stderr,
                    flush=True,
                )
                by_mode[on].append(result["included_tx_per_s"])
                runs.append(result)
        if sum(by_mode[False]):
            key = f"commit_process_ratio_{workload}"
            summary[key] = round(sum(by_mode[True]) / sum(by_mode[False]), 2)
            summary["commit_process_ratios_by_round"][key] = [
                round(on / off, 2) for on, off in zip(by_mode[True], by_mode[False], strict=True)
            ]
    summary["runs"] = runs
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("taskset") is None:
        raise SystemExit("strata bench parallel needs taskset (util-linux)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("strata bench parallel needs two cores")
    os.sched_setaffinity(0, {1})  # the load generator stays off the one-core node's core
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-parallel-"))
    if args.trace is not None:
        args.trace.mkdir(parents=True, exist_ok=True)
    if args.compare_commit_process:
        compared = compare_commit_process(args, workdir)
        compared["roots_identical"] = all(_verify(Path(r["data_dir"])) for r in compared["runs"])
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            for r in compared["runs"]:
                r.pop("data_dir")
        return compared
    rates = _offered_rates(args)
    runs: list[dict[str, Any]] = []
    timelines: list[tuple[tuple[str, int, int], CpuTimeline]] | None = (
        [] if args.plot is not None else None
    )
    for workload in args.workloads:
        for round_ in range(args.rounds):
            # ABBA: odd rounds run two cores first, so a machine that drifts steadily (it does,
            # by the hour) favours neither side of the ratio once the rounds are averaged.
            for cpus in CPU_SETS if round_ % 2 == 0 else CPU_SETS[::-1]:
                label = f"{workload:6} on cpus {cpus:3} (round {round_ + 1}/{args.rounds})"
                print(f"  {label} ...", file=sys.stderr, flush=True)
                result = asyncio.run(
                    _measure(
                        workdir,
                        cpus,
                        workload,
                        rates[workload],
                        args.seconds,
                        args.block_time_ms,
                        args.trace,
                        round_,
                        args.matching_shards,
                        timelines,
                        args.commit_process,
                    )
                )
                print(
                    f"  {label}: {result['included_tx_per_s']:>7} tx/s "
                    f"({result['included_orders_per_s']} orders/s), load generator CPU "
                    f"{result['loadgen_cpu_pct']}%, node CPU {result['node_cpu_pct']}",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(result)
    if timelines is not None:
        # One row per workload and round: one core, then two (whichever ran first).
        plot_timelines([t for _, t in sorted(timelines, key=lambda kt: kt[0])], args.plot)
        print(f"  where each core's time went: {args.plot}", file=sys.stderr, flush=True)
    roots = [_verify(Path(r["data_dir"])) for r in runs]
    summary: dict[str, Any] = {"roots_identical": bool(roots) and all(roots)}
    summary.update(compute_speedups(runs))
    summary["runs"] = runs
    summary["seconds"] = args.seconds
    summary["rounds"] = args.rounds
    summary["block_time_ms"] = args.block_time_ms
    summary["matching_shards"] = args.matching_shards
    summary["commit_process"] = args.commit_process
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
        for r in runs:
            r.pop("data_dir")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata bench parallel", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--single-rate", type=int, default=16_000, help="offered tx/s")
    parser.add_argument("--bulk-rate", type=int, default=4_000, help="offered tx/s (x16 orders)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per run")
    parser.add_argument("--block-time-ms", type=int, default=200)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="one-core/two-core pairs per workload, in ABBA order (the speedup averages them)",
    )
    parser.add_argument(
        "--matching-shards",
        type=int,
        default=0,
        help="run the nodes with market-sharded matching over N shards (default 0: off); "
        "their chains are still verified by the unsharded verifier",
    )
    parser.add_argument(
        "--commit-process",
        action="store_true",
        help="run the nodes with state roots computed in the commitment process",
    )
    parser.add_argument(
        "--compare-commit-process",
        action="store_true",
        help="instead: on two cores, each workload with and without the commitment process "
        "(ABBA rounds); prints commit_process_ratio_<workload>",
    )
    parser.add_argument("--keep", action="store_true", help="keep the nodes' data directories")
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="write a flame graph of the node and its worker processes per run (py-spy) here",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="draw each run's CPU by role over time (where each core's time went) to this file "
        "(.svg or .png)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.matching_shards < 0:
        parser.error("--matching-shards must be 0 or more")
    summary = run(args)
    if args.json:
        print(json.dumps(summary, indent=2))
    elif args.compare_commit_process:
        for key, value in summary.items():
            if key.startswith("commit_process_ratio_") or key == "roots_identical":
                print(f"{key:28} {value}")
    else:
        for key in (
            "speedup_single_orders",
            "speedup_bulk",
            "speedup_hot_market",
            "roots_identical",
        ):
            print(f"{key:24} {summary.get(key)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

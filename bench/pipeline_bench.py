"""``strata bench pipeline``: a sequencer's blocks built serially, and with the root pipelined.

The chain workload of ``bench/engine_bench.py`` (seeded: ``--accounts`` funded accounts trading
one market with single orders, or with market makers' bulk actions) is built once (untimed).
Its blocks are then built again from genesis, as a node builds them, two ways, in alternating
rounds (ABBA; the machine is shared and noisy, so compare the ratio):

- **serial**: ``build_block`` on a state whose incremental commitment holds the tree in a live
  table (``adapters/chain_store.py`` holds it so): execution, then the tree update, per block;
- **pipelined**: ``execute_block``, the block's changes to a :class:`CommitmentProcess`, then
  the previous block sealed with the root that came back (``node/node.py`` with
  ``commit_process``): block ``N + 1`` executes while ``N``'s root is computed.

Every block built either way must equal the workload's, byte for byte (``blocks_identical``).
Printed: events per second each way, their ratio, each way's seconds in the tree update (serial)
or waiting for roots (pipelined), and the commitment process's peak resident set. Signatures are
checked upstream (as the node's signature workers do), so the figures are the execution and
commitment stages alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine_bench import build_chain_workload  # noqa: E402
from strata.core.codec import encode  # noqa: E402
from strata.exec.commitment import CommitmentProcess  # noqa: E402
from strata.state.packed import PackedNodes  # noqa: E402
from strata.state.smt import MemoryNodeSource, SparseMerkleTree  # noqa: E402
from strata.state.store import State  # noqa: E402
from strata.stf.block import Block, compute_header_hash  # noqa: E402
from strata.stf.commitment import IncrementalCommitment, attach_commitment  # noqa: E402
from strata.stf.genesis import GenesisConfig, make_genesis  # noqa: E402
from strata.stf.transition import (  # noqa: E402
    UnsealedBlock,
    build_block,
    execute_block,
    seal_block,
)

Workload = list[tuple[Block, list[bytes | None]]]


class _TimedCommitment(IncrementalCommitment):
    """The node's commitment, timing its tree updates (``in_tree`` seconds)."""

    in_tree = 0.0

    def compute_root(self, state: State) -> bytes:
        changes = self.take_changes(state)
        started = time.perf_counter()
        root = self.tree.apply(changes).root
        self.in_tree += time.perf_counter() - started
        self.adopt(changes, root)
        return root


def _genesis(config: GenesisConfig) -> tuple[State, _TimedCommitment]:
    """The genesis state with its tree in a live table, as a node's store holds it."""
    state, _ = make_genesis(config)
    commitment = _TimedCommitment(SparseMerkleTree(MemoryNodeSource(), live=PackedNodes()))
    attach_commitment(state, commitment)
    return state, commitment


def run_serial(config: GenesisConfig, blocks: Workload) -> tuple[float, float, bool]:
    """(seconds, seconds in the tree update, every block identical)."""
    state, commitment = _genesis(config)
    identical = True
    started = time.perf_counter()
    for block, signers in blocks:
        header = block.header
        built, _ = build_block(
            state, header.timestamp_ms, block.system, block.transactions, config.params, signers
        )
        commitment.tree.take_released()
        identical &= encode(built) == encode(block)
    return time.perf_counter() - started, commitment.in_tree, identical


def _peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (``VmHWM``), in MB (0 where ``/proc`` is not there)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_pipelined(config: GenesisConfig, blocks: Workload) -> tuple[float, float, bool, float]:
    """(seconds, seconds waiting for roots, every block identical, the commitment process's
    peak resident set in MB)."""
    state, commitment = _genesis(config)
    worker = CommitmentProcess(commitment.tree)
    identical = True
    waiting = 0.0
    parent = state.tip.header_hash
    in_flight: tuple[UnsealedBlock, dict[bytes, bytes | None], Block] | None = None

    def seal() -> None:
        nonlocal waiting, parent, identical, in_flight
        assert in_flight is not None
        unsealed, changes, expected = in_flight
        started = time.perf_counter()
        root, nodes, stale = worker.result()
        waiting += time.perf_counter() - started
        commitment.tree.adopt_packed(root, nodes, stale)
        commitment.tree.take_released()
        commitment.adopt(changes, root)
        sealed, _ = seal_block(unsealed, parent, root)
        parent = compute_header_hash(sealed.header)
        identical &= encode(sealed) == encode(expected)
        in_flight = None

    try:
        started = time.perf_counter()
        for block, signers in blocks:
            header = block.header
            unsealed = execute_block(
                state, header.timestamp_ms, block.system, block.transactions, config.params, signers
            )
            changes = commitment.take_changes(state)
            worker.submit(changes)  # computed while the block before is sealed (in order)
            if in_flight is not None:
                seal()
            in_flight = (unsealed, changes, block)
        seal()
        elapsed = time.perf_counter() - started
        peak = _peak_rss_mb(worker.pid)
    finally:
        worker.close()
    return elapsed, waiting, identical, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata bench pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=100_000, help="order operations")
    parser.add_argument("--accounts", type=int, default=200, help="funded accounts trading")
    parser.add_argument("--block-size", type=int, default=10_000, help="operations a block")
    parser.add_argument("--bulk", action="store_true", help="market makers send bulk actions")
    parser.add_argument("--rounds", type=int, default=2, help="serial/pipelined pairs (ABBA)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(f"building the chain workload ({args.events} order operations)...", file=sys.stderr)
    config, raw = build_chain_workload(
        args.events, args.seed, accounts=args.accounts, block_size=args.block_size, bulk=args.bulk
    )
    blocks: Workload = [(b, s) for b, s in raw if isinstance(b, Block)]
    seconds: dict[str, list[float]] = {"serial": [], "pipelined": []}
    stage: dict[str, list[float]] = {"serial": [], "pipelined": []}
    identical = True
    peak = 0.0
    for round_ in range(args.rounds):
        order = ("serial", "pipelined") if round_ % 2 == 0 else ("pipelined", "serial")
        for way in order:
            if way == "serial":
                elapsed, part, same = run_serial(config, blocks)
            else:
                elapsed, part, same, worker_peak = run_pipelined(config, blocks)
                peak = max(peak, worker_peak)
            seconds[way].append(elapsed)
            stage[way].append(part)
            identical &= same
            print(
                f"  round {round_ + 1}/{args.rounds} {way:9}: {args.events / elapsed:>9,.0f} "
                f"events/s ({elapsed:.2f} s; "
                f"{'tree update' if way == 'serial' else 'waiting for roots'} {part:.2f} s)",
                file=sys.stderr,
                flush=True,
            )
    serial_s, pipelined_s = sum(seconds["serial"]), sum(seconds["pipelined"])
    summary = {
        "events": args.events,
        "accounts": args.accounts,
        "blocks": len(blocks),
        "bulk": args.bulk,
        "rounds": args.rounds,
        "serial_events_per_s": round(args.events * args.rounds / serial_s),
        "pipelined_events_per_s": round(args.events * args.rounds / pipelined_s),
        "pipelined_vs_serial": round(serial_s / pipelined_s, 2),
        "ratios_by_round": [
            round(s / p, 2) for s, p in zip(seconds["serial"], seconds["pipelined"], strict=True)
        ],
        "serial_tree_update_share": round(sum(stage["serial"]) / serial_s, 3),
        "pipelined_waiting_share": round(sum(stage["pipelined"]) / pipelined_s, 3),
        "commitment_process_peak_rss_mb": round(peak, 1),
        "blocks_identical": identical,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:26} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

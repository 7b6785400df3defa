"""``strata``: the command line.

Commands
--------
``strata keys|account|order|book|tail``  trading from the command line (``trade_cli.py``)
``strata devnet``            a one-machine devnet (sequencer, faucet, optional demo bots)
``strata node``              a sequencer node from a configuration file
``strata verify``            re-derive the chain from a DA layer alone and check every root
``strata verify-proof``      check a fraud proof statelessly (re-execute its block over its witness)
``strata replay-book``      replay an order stream (JSONL or LOBSTER) through one market's book
``strata snapshot``         export a chain's state at a height, or import one (state sync)
``strata scenario``         incident scenarios on the real engine (``strata.scenarios``)
``strata explain``          the story of an account's liquidations, from the events alone
``strata bench engine``     the engine benchmark (book alone, full ``apply_block``, model book;
                            ``--risk``: the risk phase with N accounts under water;
                            ``--instructions``: instructions per event, under valgrind)
``strata bench state``      the storage benchmark (commit times, proofs/s, bytes and memory per key)
``strata bench parallel``   the node's throughput on one core against two (``taskset``)
``strata bench pipeline``   a sequencer's blocks built serially and with the commitment pipelined
``strata compile``          compile ring 0 with mypyc into the virtual environment (``--status``)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strata.scenarios.cli import ChainEvents

USAGE = """usage: strata <command> [options]

commands:
  keys new      make a wallet key;  account ADDRESS;  book MARKET;  tail trades MARKET
  order         place MARKET buy|sell SIZE PRICE | cancel MARKET --order-id N  (--help)
  devnet        run a one-machine devnet: --data-dir, --rpc-port, --block-time-ms, --demo
  node          run a sequencer node: --config FILE
  verify        re-derive the chain from DA alone and check every root: --da file:DIR --genesis FILE
                (a block that does not check out gets a fraud proof: --proof-out FILE)
  verify-proof  check a fraud proof from nothing else: FILE [--json]
  replay-book   replay an order-event stream through the matching engine (--help for options)
  snapshot      export --data-dir DIR [--height H] FILE | import --data-dir DIR FILE
  scenario      list | run NAME [--json]: incident scenarios (mango, jelly, yfi, cascade, ...)
  explain       ACCOUNT --height H --data-dir DIR | ACCOUNT --scenario NAME: why and how an
                account was liquidated, from the risk events alone
  bench engine  measure the book, the full state transition and the naive model book
                (--risk: the risk phase with N accounts under water, see bench/risk_bench.py;
                --instructions: instructions per event under valgrind, bench/engine_instructions.py)
  bench state   measure block commits, proofs, bytes and memory of the durable store
  bench node    load a real node over its API: included tx/s, orders/s, latency, memory
  bench verify  the verifier re-executing a loaded node's chain from DA, beside the sequencer
  bench parallel  the node on one core against two (taskset): speedups and identical roots
  bench pipeline  blocks built serially and with the state root pipelined in another process
  compile       compile ring 0 with mypyc into this virtual environment (`make setup` runs it);
                --status says whether this interpreter runs it compiled, and why not
"""


def _bench(argv: list[str]) -> int:
    if not argv or argv[0] not in ("engine", "state", "node", "verify", "parallel", "pipeline"):
        print(
            "usage: strata bench engine|state|node|verify|parallel|pipeline [--json] [options]",
            file=sys.stderr,
        )
        return 2
    # Benchmarks live in the repository's bench/ folder, beside src/.
    root = Path(__file__).resolve().parents[3]
    if not (root / "bench" / "engine_bench.py").is_file():
        print("error: strata bench runs from a source checkout (bench/ not found)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(root))
    if argv[0] == "verify":
        from bench.verify_bench import main as verify_bench_main

        return verify_bench_main(argv[1:])
    if argv[0] == "pipeline":
        from bench.pipeline_bench import main as pipeline_main

        return pipeline_main(argv[1:])
    if argv[0] == "parallel":
        from bench.parallel_bench import main as parallel_main

        return parallel_main(argv[1:])
    if argv[0] == "node":
        from bench.node_bench import main as node_main

        return node_main(argv[1:])
    if argv[0] == "state":
        from bench.store_bench import main as state_main

        return state_main(argv[1:])
    if "--instructions" in argv:
        from bench.engine_instructions import main as instructions_main

        return instructions_main([a for a in argv[1:] if a != "--instructions"])
    if "--risk" in argv:
        from bench.risk_bench import main as risk_main

        return risk_main([a for a in argv[1:] if a != "--risk"])
    from bench.engine_bench import main as bench_main

    return bench_main(argv[1:])


def _open_chain_events(data_dir: Path) -> ChainEvents:
    """A node's chain database (``DIR/chain``) for ``strata explain``: opened like ``strata
    snapshot export`` does (nothing written; closed without a checkpoint), read by height."""
    from strata.adapters.chain_store import ChainStore
    from strata.scenarios.cli import ChainEvents

    store = ChainStore.open(data_dir / "chain", full_check=False)
    return ChainEvents(
        markets={m.market_id: m for m in store.genesis.markets},
        first_height=store.base_height,
        tip_height=store.tip.height,
        risk_events=lambda height: store.get_receipts(height)[1].risk,
        close=lambda: store.close(checkpoint=False),
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "compile":
        from strata.compiled import compile_main

        return compile_main(rest)
    if command == "devnet":
        from strata.node.cli import devnet_main

        return devnet_main(rest)
    if command == "verify":
        from strata.verifier.verify import main as verify_main

        return verify_main(rest)
    if command == "verify-proof":
        from strata.verifier.fraud_proof import main as verify_proof_main

        return verify_proof_main(rest)
    if command == "node":
        from strata.node.cli import node_main

        return node_main(rest)
    if command in ("keys", "account", "order", "book", "tail"):
        from strata.cli.trade_cli import main as trade_main

        return trade_main(args)
    if command == "replay-book":
        from strata.replay.book_replay import main as replay_main

        return replay_main(rest)
    if command == "bench":
        return _bench(rest)
    if command == "scenario":
        from strata.scenarios.cli import scenario_main

        return scenario_main(rest)
    if command == "explain":
        from strata.scenarios.cli import explain_main

        return explain_main(rest, _open_chain_events)
    if command == "snapshot":
        from strata.adapters.snapshot_cli import main as snapshot_main

        return snapshot_main(rest)
    print(f"error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

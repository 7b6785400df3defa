"""``strata node --config FILE`` and ``strata devnet``: run a sequencer node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from strata.adapters.chain_store import StoreError
from strata.adapters.lifetime import name_process
from strata.adapters.memory import use_one_malloc_arena
from strata.compiled import status as compiled_status
from strata.node.config import NodeConfig, NodeGenesis, devnet_genesis, read_config, read_genesis
from strata.node.node import Node, now_ms, setup_logging


def _run(config: NodeConfig, genesis: NodeGenesis | None, log_level: str) -> int:
    from strata.node.server import serve

    setup_logging(log_level)
    ring0 = compiled_status()
    logging.getLogger("strata.node").info(
        "ring 0 runs %s (%s)", "compiled" if ring0["compiled"] else "interpreted", ring0["reason"]
    )
    name_process("strata-node")  # its helpers name themselves too (adapters/lifetime.py)
    use_one_malloc_arena()  # before the node starts threads (adapters/memory.py)
    try:
        node = Node.open(config, genesis)
    except (StoreError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    asyncio.run(serve(node))
    return 0


def node_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="strata node", description="Run a sequencer node.")
    parser.add_argument("--config", required=True, type=Path, help="node configuration (JSON)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    args = parser.parse_args(argv)
    try:
        config = read_config(args.config)
        genesis = read_genesis(Path(config.genesis_file)) if config.genesis_file else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return _run(config, genesis, args.log_level)


def devnet_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="strata devnet",
        description="Run a one-machine devnet: a sequencer with two markets and funded accounts "
        "(seeds devnet-0 .. devnet-9), a faucet, and optionally demo bots.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("devnet-data"))
    parser.add_argument("--rpc-host", default="127.0.0.1")
    parser.add_argument("--rpc-port", type=int, default=8545, help="0 picks a free port")
    parser.add_argument("--block-time-ms", type=int, default=200)
    parser.add_argument("--demo", action="store_true", help="market-maker and taker bots")
    parser.add_argument("--exit-after-blocks", type=int, default=None)
    parser.add_argument(
        "--da",
        default="file",
        help="where batches go: file (DATA_DIR/da, the default), file:DIR, "
        "ethereum:URL,INBOX_ADDRESS,POSTER_KEY_FILE, or none",
    )
    parser.add_argument("--da-batch-blocks", type=int, default=50)
    parser.add_argument(
        "--matching-shards",
        type=int,
        default=0,
        help="split each block's matching by market across N shards, N - 1 of them worker "
        "processes (N >= 2; default 0: match in the node's process)",
    )
    parser.add_argument(
        "--commit-process",
        action="store_true",
        help="compute state roots in a process of their own, pipelined with execution",
    )
    parser.add_argument(
        "--signature-processes",
        type=int,
        default=None,
        help="signature worker processes (default: one per spare core, at most 2; 0: threads)",
    )
    parser.add_argument("--fault-wrong-root-at", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    args = parser.parse_args(argv)
    if args.block_time_ms < 10:
        parser.error("--block-time-ms must be at least 10")
    if args.matching_shards < 0:
        parser.error("--matching-shards must be 0 or more")
    if args.signature_processes is not None and args.signature_processes < 0:
        parser.error("--signature-processes must be 0 or more")
    config = NodeConfig(
        data_dir=str(args.data_dir),
        rpc_host=args.rpc_host,
        rpc_port=args.rpc_port,
        block_time_ms=args.block_time_ms,
        devnet=True,
        demo=args.demo,
        exit_after_blocks=args.exit_after_blocks,
        da=None if args.da == "none" else args.da,
        da_batch_blocks=args.da_batch_blocks,
        matching_shards=args.matching_shards,
        commit_process=args.commit_process,
        signature_processes=args.signature_processes,
        fault_wrong_root_at=args.fault_wrong_root_at,
    )
    return _run(config, devnet_genesis(now_ms()), args.log_level)

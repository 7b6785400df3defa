"""``strata verify``: re-derive the chain from a DA layer alone and check every root.

The verifier trusts nothing of the sequencer's node: it reads the genesis file and the batches the
DA layer holds, derives the blocks (``strata.da.derive``), executes each with the same
``apply_block`` in its own state, and compares every commitment of every header (state,
transactions, receipts and withdrawals roots, gas). It stops at the first block that does not
check out and reports its height and why. With ``--follow`` it keeps up with a live sequencer.

At a block that does not check out it writes a fraud proof (``--proof-out FILE``, by default
``fraud-proof-<height>.bin`` in the working directory): it re-derives and re-applies the chain up
to the block before from genesis (slow, but only on this path), records what the disputed block
reads and writes, and proves it under the parent's state root (``verifier/fraud_proof.py``;
``strata verify-proof FILE`` checks it from nothing else).

Signatures are checked by the signature precompile (``exec/signatures.py``) a few blocks ahead of
their execution (:data:`LOOKAHEAD_BLOCKS`): in worker processes when the machine has more than one
core, so that the checks never wait for the executing thread's GIL, and on threads otherwise. A
worker process that dies stops verification with a reason (``SIGNATURE_WORKER_DIED``), never a
verdict on a block.

With ``--matching-shards N`` (N >= 2) the matching phase of each block is split by market across
N shards, N - 1 of them worker processes (``exec/parallel.py``; the same bytes). It is off by
default: on two cores it measured no faster (docs/node.md, "Market-sharded matching"). A
matching worker that dies stops verification the same way (``MATCHING_WORKER_DIED``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strata.adapters.da_open import open_da
from strata.adapters.lifetime import (
    collector_paused,
    start_sharded_matching,
    start_signature_pool,
    tune_collector,
)
from strata.core.errors import ErrorCode, InvalidBlock
from strata.da.batch import Batch, BatchError, batch_hash, decode_batch
from strata.da.derive import derive_blocks
from strata.exec.parallel import MatchingWorkerDied
from strata.exec.signatures import joined
from strata.node.config import read_genesis
from strata.ports.da import DaClient, DaError
from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.state.store import State
from strata.stf.block import Block, compute_header_hash
from strata.stf.commitment import IncrementalCommitment, attach_commitment
from strata.stf.genesis import GenesisConfig, make_genesis
from strata.stf.params import ChainParams
from strata.stf.transactions import count_order_operations
from strata.stf.transition import apply_block
from strata.verifier.fraud_proof import FraudProof, build_fraud_proof, write_fraud_proof
from strata.verifier.witness import WitnessError

ROOT_CODES = {
    ErrorCode.BAD_STATE_ROOT: "state root",
    ErrorCode.BAD_TRANSACTIONS_ROOT: "transactions root",
    ErrorCode.BAD_RECEIPTS_ROOT: "receipts root",
    ErrorCode.BAD_WITHDRAWALS_ROOT: "withdrawals root",
    ErrorCode.BAD_GAS_USED: "gas used",
}


@dataclass
class Summary:
    blocks_checked: int = 0
    batches: int = 0
    transactions: int = 0
    orders: int = 0
    mismatches: int = 0
    first_mismatch_height: int | None = None
    reason: str | None = None
    """Why verification stopped early (a mismatch, a bad batch), or ``None``."""
    seconds: float = 0.0
    last_height: int = 0
    state_root: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        per_s = self.blocks_checked / self.seconds if self.seconds else 0.0
        orders_per_s = self.orders / self.seconds if self.seconds else 0.0
        return {
            "blocks_checked": self.blocks_checked,
            "batches": self.batches,
            "transactions": self.transactions,
            "orders": self.orders,
            "mismatches": self.mismatches,
            "first_mismatch_height": self.first_mismatch_height,
            "reason": self.reason,
            "last_height": self.last_height,
            "state_root": self.state_root,
            "seconds": round(self.seconds, 3),
            "blocks_per_s": round(per_s, 1),
            "orders_per_s": round(orders_per_s, 1),
            **self.extra,
        }


class Mismatch(Exception):
    """A block that does not check out: its height and why."""

    def __init__(self, height: int, reason: str) -> None:
        super().__init__(f"block {height}: {reason}")
        self.height = height
        self.reason = reason


def genesis_state(genesis: GenesisConfig) -> tuple[State, bytes]:
    """The genesis state with an in-memory incremental commitment, and the genesis header hash."""
    state, header = make_genesis(genesis)
    attach_commitment(state, IncrementalCommitment(SparseMerkleTree(MemoryNodeSource())))
    return state, compute_header_hash(header)


LOOKAHEAD_BLOCKS = 3
"""How many blocks ahead of execution their signatures are being checked (measured on the node
benchmark's chain, 2 cores: see docs/da.md, "Measured")."""

MAX_SIGNATURE_PROCESSES = 4


def default_signature_processes() -> int:
    """Signature worker processes for a verifier: one per core, at most
    :data:`MAX_SIGNATURE_PROCESSES`; none (threads) on a one-core machine. A verifier's
    signatures cost more than its execution when most transactions carry one order, so on two
    cores two workers share the second core with the executing thread's spare time."""
    cores = len(os.sched_getaffinity(0))
    return 0 if cores < 2 else min(cores, MAX_SIGNATURE_PROCESSES)


class Verifier:
    """Executes derived blocks in its own state, a block at a time (see the module docstring).

    ``signature_processes``: the precompile's worker processes (``None``:
    :func:`default_signature_processes`; ``0``: ``threads`` threads in this process).
    ``matching_shards``: 2 or more splits the matching phase by market across that many shards
    (``exec/parallel.py``); 0 or 1 matches in this process."""

    def __init__(
        self,
        genesis: GenesisConfig,
        signature_processes: int | None = None,
        threads: int = 2,
        matching_shards: int = 0,
    ) -> None:
        self.genesis = genesis
        self.params: ChainParams = genesis.params
        self.state, self.genesis_hash = genesis_state(genesis)
        processes = (
            default_signature_processes() if signature_processes is None else signature_processes
        )
        self.signatures = start_signature_pool(processes, threads)
        self.matching = start_sharded_matching(matching_shards)
        self.summary = Summary()
        self.summary.extra["signature_processes"] = processes
        self.summary.extra["matching_shards"] = matching_shards if matching_shards >= 2 else 0

    def close(self) -> None:
        self.signatures.close()
        if self.matching is not None:
            self.matching.close()

    def _signers(self, block: Block) -> list[Future[list[bytes | None]]]:
        """Start checking a block's signatures (``joined`` gives them in order)."""
        return self.signatures.submit(self.params, block.transactions)

    def check_blocks(
        self,
        blocks: Iterator[Block],
        is_last: Callable[[Block], bool] = lambda block: False,
        count_orders: bool = True,
    ) -> None:
        """Execute ``blocks`` in order; raise :class:`Mismatch` at the first that is wrong.

        The signatures of the next :data:`LOOKAHEAD_BLOCKS` blocks are being checked while this
        one executes; a block for which ``is_last`` says no other is available yet executes at
        once (a follower does not wait for the next batch to check the last block it has).

        Raises
        ------
        Mismatch
            At the first block that does not check out.
        BrokenExecutor
            A signature worker process died (no verdict on the block it was checking).
        MatchingWorkerDied
            A matching worker process died (no verdict on the block being executed).
        """
        summary = self.summary
        ahead: deque[tuple[Block, list[Future[list[bytes | None]]]]] = deque()
        for block in blocks:
            ahead.append((block, self._signers(block)))
            if len(ahead) > LOOKAHEAD_BLOCKS:
                self._apply(*ahead.popleft(), count_orders)
            if is_last(block):
                while ahead:
                    self._apply(*ahead.popleft(), count_orders)
        while ahead:
            self._apply(*ahead.popleft(), count_orders)
        summary.state_root = "0x" + self.state_root().hex()

    def _apply(
        self, block: Block, signers: list[Future[list[bytes | None]]], count_orders: bool
    ) -> None:
        height = block.header.height
        try:
            with collector_paused():
                apply_block(self.state, block, self.params, joined(signers), self.matching)
        except InvalidBlock as error:
            what = ROOT_CODES.get(error.code)
            reason = (
                f"the header's {what} is wrong: {error.detail}"
                if what is not None
                else f"the block is invalid: {error.code.name} {error.detail}"
            )
            raise Mismatch(height, reason) from None
        summary = self.summary
        summary.blocks_checked += 1
        summary.last_height = height
        summary.transactions += len(block.transactions)
        if count_orders:
            summary.orders += count_order_operations(block.transactions)

    def state_root(self) -> bytes:
        commitment = self.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        return commitment.tree.root


class Progress:
    """A one-line progress display on a terminal; plain lines every few seconds otherwise."""

    def __init__(self, stream: Any, enabled: bool) -> None:
        self.stream = stream
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.enabled = enabled
        self.last = 0.0

    def show(self, summary: Summary, total: int | None, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = summary.blocks_checked / summary.seconds if summary.seconds else 0.0
        if self.tty and total:
            width = 30
            done = min(width, width * summary.last_height // max(total, 1))
            bar = "#" * done + "-" * (width - done)
            line = f"\r[{bar}] height {summary.last_height}/{total}  {rate:,.0f} blocks/s"
            self.stream.write(line + ("\n" if final else ""))
        else:
            self.stream.write(
                f"verified height {summary.last_height} ({summary.blocks_checked} blocks, "
                f"{summary.batches} batches, {rate:,.0f} blocks/s)\n"
            )
        self.stream.flush()


def iter_batches(
    da: DaClient,
    *,
    follow: bool = False,
    poll_s: float = 0.5,
    stop: Callable[[], bool] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> Iterator[Batch]:
    """Every batch the DA layer holds, in index order, each checked against its reference; with
    ``follow``, waiting for new ones until ``stop()`` says so.

    Raises
    ------
    BatchError
        A batch is missing, does not decode, or does not match its reference.
    DaError
        The DA layer fails.
    """
    next_index = 0
    last_height = 0
    while True:
        refresh = getattr(da, "refresh", None)
        if refresh is not None:
            refresh()
        refs = sorted(
            (r for r in da.list(last_height + 1) if r.batch_index >= next_index),
            key=lambda r: r.batch_index,
        )
        for ref in refs:
            if ref.batch_index != next_index:
                raise BatchError(
                    "BROKEN_CHAIN", f"batch {next_index} is missing (found {ref.batch_index})"
                )
            batch = decode_batch(da.get(ref))
            if batch_hash(batch) != ref.batch_hash or batch.header.index != ref.batch_index:
                raise BatchError(
                    "HEADER_MISMATCH", f"batch {ref.batch_index} does not match its reference"
                )
            last_height = batch.header.last_height
            next_index += 1
            if on_batch is not None:
                on_batch(batch)
            yield batch
        if not follow or (stop is not None and stop()):
            return
        time.sleep(poll_s)


def build_proof_at(
    da: DaClient, genesis: GenesisConfig, height: int, signature_processes: int | None = None
) -> FraudProof:
    """The fraud proof of the block at ``height``: re-derive the chain from the DA layer, re-apply
    every block before it from genesis, and prove what the block touches on that state.

    Raises
    ------
    WitnessError
        If the DA layer has no block at ``height``, or the proof cannot be built.
    Mismatch
        If a block before ``height`` does not check out after all.
    BatchError, DaError
        As :func:`iter_batches`.
    """
    _, genesis_header = make_genesis(genesis)
    verifier = Verifier(genesis, signature_processes)
    found: dict[str, Any] = {"parent": genesis_header, "block": None}

    def before() -> Iterator[Block]:
        for block in derive_blocks(verifier.genesis_hash, iter_batches(da)):
            if block.header.height >= height:
                found["block"] = block
                return
            yield block
            found["parent"] = block.header

    try:
        verifier.check_blocks(before(), count_orders=False)
    finally:
        verifier.close()
    disputed = found["block"]
    if disputed is None or disputed.header.height != height:
        raise WitnessError(f"the DA layer holds no block at height {height}")
    return build_fraud_proof(genesis, verifier.state, found["parent"], disputed)


def verify(
    da: DaClient,
    genesis: GenesisConfig,
    *,
    follow: bool = False,
    poll_s: float = 0.5,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    signature_processes: int | None = None,
    matching_shards: int = 0,
) -> Summary:
    """Verify everything the DA layer holds (and, with ``follow``, what it gets later, until
    ``stop()`` says so). ``signature_processes`` and ``matching_shards`` as :class:`Verifier`."""
    verifier = Verifier(genesis, signature_processes, matching_shards=matching_shards)
    summary = verifier.summary
    started = time.monotonic()
    known = {"last_height": 0}

    def on_batch(batch: Batch) -> None:
        summary.batches += 1
        known["last_height"] = batch.header.last_height

    batches = iter_batches(da, follow=follow, poll_s=poll_s, stop=stop, on_batch=on_batch)

    def timed(blocks: Iterator[Block]) -> Iterator[Block]:
        for block in blocks:
            yield block
            summary.seconds = time.monotonic() - started
            if progress is not None:
                progress.show(summary, known["last_height"])

    try:
        verifier.check_blocks(
            timed(derive_blocks(verifier.genesis_hash, batches)),
            lambda block: block.header.height >= known["last_height"],
        )
    except Mismatch as mismatch:
        summary.mismatches = 1
        summary.first_mismatch_height = mismatch.height
        summary.reason = mismatch.reason
    except (BatchError, DaError) as error:
        summary.reason = f"stopped after height {summary.last_height}: {error}"
        summary.extra["error"] = type(error).__name__
    except BrokenExecutor:
        # A worker killed (the OOM killer, an operator): no verdict on what it was checking.
        summary.reason = (
            f"stopped after height {summary.last_height}: a signature worker process died"
        )
        summary.extra["error"] = "SIGNATURE_WORKER_DIED"
    except MatchingWorkerDied:
        summary.reason = (
            f"stopped after height {summary.last_height}: a matching worker process died"
        )
        summary.extra["error"] = "MATCHING_WORKER_DIED"
    finally:
        summary.seconds = time.monotonic() - started
        summary.state_root = "0x" + verifier.state_root().hex()
        verifier.close()
        if progress is not None:
            progress.show(summary, summary.last_height, final=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata verify",
        description="Re-derive the chain from a DA layer alone and check every root.",
    )
    parser.add_argument(
        "--da", required=True, help="file:DIR or ethereum:URL,INBOX_ADDRESS,POSTER_ADDRESS"
    )
    parser.add_argument("--genesis", required=True, type=Path, help="the chain's genesis.json")
    parser.add_argument("--follow", action="store_true", help="keep up with a live sequencer")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--signature-processes",
        type=int,
        default=None,
        help="signature worker processes (default: one per core, at most "
        f"{MAX_SIGNATURE_PROCESSES}, none on one core; 0: threads in this process)",
    )
    parser.add_argument(
        "--matching-shards",
        type=int,
        default=0,
        help="split each block's matching by market across N shards, N - 1 of them worker "
        "processes (N >= 2; default 0: match in this process)",
    )
    parser.add_argument(
        "--proof-out",
        type=Path,
        default=None,
        help="where to write the fraud proof of a block that does not check out "
        "(default: fraud-proof-<height>.bin in the working directory)",
    )
    args = parser.parse_args(argv)
    if args.signature_processes is not None and args.signature_processes < 0:
        print("error: --signature-processes must be 0 or more", file=sys.stderr)
        return 2
    if args.matching_shards < 0:
        print("error: --matching-shards must be 0 or more", file=sys.stderr)
        return 2
    try:
        genesis = read_genesis(args.genesis).chain
        da = open_da(args.da)
    except (ValueError, DaError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    progress = Progress(sys.stderr, enabled=True)
    stopping = {"now": False}
    tune_collector()  # as the node's: it executes the same blocks

    def stop_following(signum: int, frame: object) -> None:
        stopping["now"] = True  # --follow: finish what is in hand, then print the summary

    if args.follow:
        signal.signal(signal.SIGTERM, stop_following)
        signal.signal(signal.SIGINT, stop_following)
    summary = verify(
        da,
        genesis,
        follow=args.follow,
        progress=progress,
        stop=lambda: stopping["now"],
        signature_processes=args.signature_processes,
        matching_shards=args.matching_shards,
    )
    height = summary.first_mismatch_height
    if height is not None:
        path = args.proof_out or Path(f"fraud-proof-{height}.bin")
        try:
            proof = build_proof_at(da, genesis, height, args.signature_processes)
            write_fraud_proof(path, proof)
            summary.extra["fraud_proof"] = str(path)
        except Exception as error:  # the proof is a by-product: the mismatch is still reported
            summary.extra["fraud_proof_error"] = f"{type(error).__name__}: {error}"
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        result = summary.to_json()
        for key in (
            "blocks_checked",
            "batches",
            "mismatches",
            "first_mismatch_height",
            "reason",
            "last_height",
            "state_root",
            "blocks_per_s",
            "orders_per_s",
            "fraud_proof",
            "fraud_proof_error",
        ):
            if key in result:
                print(f"{key:22} {result[key]}")
    if summary.mismatches:
        return 1
    return 2 if summary.reason else 0

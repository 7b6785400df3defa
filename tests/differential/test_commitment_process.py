"""Execution pipelined apart from the commitment gives the serial chain's bytes (issue: parallel
execution, "while block N's state root is computed ... block N+1 executes in another on N's
post-state; ... the chain's bytes do not change").

The cascade scenario's blocks (``strata.scenarios.library``: bulk quoting, then a shock that
liquidates hundreds of accounts over several blocks) are built again from genesis the way a node
with ``commit_process`` builds them: block ``N + 1`` is executed unsealed (``execute_block``)
before block ``N``'s root has come back from a :class:`CommitmentProcess`; then ``N`` is sealed
(``seal_block``) with its parent's hash and that root. Every sealed block and output must be the
recorded one, byte for byte, and the node-side tree (moved by ``adopt_packed``) must be the tree
the serial executor's commitment builds.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from strata.core.codec import encode
from strata.exec.commitment import CommitmentProcess, CommitmentWorkerDied
from strata.exec.parallel import ShardedMatching
from strata.modules.liquidation import PositionLiquidated
from strata.scenarios.harness import ScenarioRun
from strata.scenarios.library import run_cascade
from strata.state.store import State
from strata.stf.block import compute_header_hash
from strata.stf.commitment import IncrementalCommitment, attach_commitment
from strata.stf.genesis import make_genesis
from strata.stf.transition import UnsealedBlock, apply_block, execute_block, seal_block
from tests.helpers.pipelined import empty_tree


@pytest.fixture(scope="module")
def cascade() -> ScenarioRun:
    run = run_cascade(None, accounts=300)
    assert run.passed, run.chain.violations
    risky = [
        r
        for r in run.chain.records
        if any(isinstance(e, PositionLiquidated) for e in r.output.block_events.risk)
    ]
    assert len(risky) >= 2, "the history must hold a cascade over several blocks"
    return run


def _committed_genesis(run: ScenarioRun) -> tuple[State, IncrementalCommitment]:
    """The genesis state with a tree in a live table, as a node's store holds it."""
    state, header = make_genesis(run.chain.genesis)
    commitment = attach_commitment(state, IncrementalCommitment(empty_tree()))
    assert commitment.tree.root == header.state_root
    return state, commitment


@pytest.mark.parametrize("shards", [0, 2])
def test_pipelined_blocks_are_the_serial_chain_s_bytes(cascade: ScenarioRun, shards: int) -> None:
    chain = cascade.chain
    state, commitment = _committed_genesis(cascade)
    reference, _ = _committed_genesis(cascade)  # the serial executor's commitment, for its tree
    parent = state.tip.header_hash
    worker = CommitmentProcess(commitment.tree)
    matching = ShardedMatching(shards) if shards else None
    in_flight: tuple[UnsealedBlock, dict[bytes, bytes | None]] | None = None
    sealed = 0

    def seal_oldest() -> None:
        nonlocal parent, sealed
        assert in_flight is not None
        unsealed, changes = in_flight
        root, nodes, stale = worker.result()
        commitment.tree.adopt_packed(root, nodes, stale)
        commitment.adopt(changes, root)
        block, output = seal_block(unsealed, parent, root)
        record = chain.records[sealed]
        assert encode(block) == encode(record.block), block.header.height
        assert encode(output) == encode(record.output), block.header.height
        parent = compute_header_hash(block.header)
        sealed += 1

    try:
        for record in chain.records:
            block = record.block
            unsealed = execute_block(
                state,
                block.header.timestamp_ms,
                block.system,
                block.transactions,
                chain.params,
                matching=matching,
            )
            assert unsealed.output.header.state_root == b"" and state.tip.header_hash == b""
            changes = commitment.take_changes(state)
            worker.submit(changes)  # as the node: N + 1's changes go before N is sealed
            if in_flight is not None:
                seal_oldest()  # N's root is read after N + 1 has executed
            in_flight = (unsealed, changes)
            apply_block(reference, block, chain.params)  # the serial executor, its own tree
        seal_oldest()
        assert sealed == len(chain.records)
        # The node-side tree, moved only by adopted updates, holds the serial tree's nodes.
        assert commitment.tree.root == chain.records[-1].block.header.state_root
        serial_tree = reference.commitment
        assert isinstance(serial_tree, IncrementalCommitment)
        live, serial_live = commitment.tree.live, serial_tree.tree.live
        assert live is not None and serial_live is not None
        assert sorted(_records(live.rows())) == sorted(_records(serial_live.rows()))
    finally:
        worker.close()
        if matching is not None:
            matching.close()


def _records(rows: bytes) -> list[bytes]:
    """The hash and encoding of each record (``born`` differs: the worker's tree stamps none)."""
    return [rows[at : at + 97] for at in range(0, len(rows), 104)]


def _wait_gone(pid: int) -> None:
    """Until the killed process ``pid`` is a zombie (its pipes closed)."""
    for _ in range(500):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def test_a_dead_commitment_process_is_reported_and_stays_broken(cascade: ScenarioRun) -> None:
    _, commitment = _committed_genesis(cascade)
    worker = CommitmentProcess(commitment.tree)
    try:
        worker.submit({b"\x01key": b"value"})
        root, _, _ = worker.result()
        assert len(root) == 32 and worker.in_flight == 0
        # Killed while it computes: 20,000 changes take it far longer than the kill.
        worker.submit({i.to_bytes(4, "big"): b"v" for i in range(20_000)})
        os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(CommitmentWorkerDied, match="died"):
            worker.result()
        with pytest.raises(CommitmentWorkerDied):
            worker.submit({})
    finally:
        worker.close()


def test_changes_sent_to_a_dead_commitment_process_are_refused(cascade: ScenarioRun) -> None:
    _, commitment = _committed_genesis(cascade)
    worker = CommitmentProcess(commitment.tree)
    try:
        os.kill(worker.pid, signal.SIGKILL)
        _wait_gone(worker.pid)
        with pytest.raises(CommitmentWorkerDied, match="died"):
            worker.submit({b"\x01key": b"value"})
        assert worker.in_flight == 0
        with pytest.raises(CommitmentWorkerDied):
            worker.result()
    finally:
        worker.close()

"""The verifier with market-sharded matching (``--matching-shards``) is an optimization, never a
different verdict: it checks the same blocks, reaches the same state root and stops at the same
lying header as matching in one process; a matching worker killed with ``SIGKILL`` mid-run stops
verification with a reason and no verdict on the block being executed (issue: parallel
execution, "every mode ... equals the serial executor's" and "a worker that dies takes the node
down cleanly")."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from strata.stf.block import Block
from strata.stf.genesis import GenesisConfig
from strata.verifier import verify as verify_module
from strata.verifier.verify import Summary, Verifier, verify
from tests.da.file_driver import post_blocks, workload_chain

BLOCKS = 15
PER_BATCH = 3


@pytest.fixture(scope="module")
def chain() -> tuple[GenesisConfig, list[Block], int]:
    built, _ = workload_chain(BLOCKS)  # orders in markets 1 and 2 in every block
    assert built.genesis is not None
    return built.genesis, [block for block, _ in built.blocks], built.params.chain_id


def _verdict(summary: Summary) -> dict[str, Any]:
    result = summary.to_json()
    keys = ("blocks_checked", "first_mismatch_height", "reason", "state_root")
    return {key: result[key] for key in keys}


@pytest.mark.parametrize("lie_at", [None, 8], ids=["honest", "wrong-root-at-8"])
def test_sharded_and_unsharded_matching_reach_the_same_verdict(
    tmp_path: Path, chain: tuple[GenesisConfig, list[Block], int], lie_at: int | None
) -> None:
    genesis, blocks, chain_id = chain
    if lie_at is not None:
        lying = blocks[lie_at - 1]
        header = msgspec.structs.replace(lying.header, state_root=bytes(32))
        blocks = [*blocks[: lie_at - 1], msgspec.structs.replace(lying, header=header)]
    da = post_blocks(tmp_path / "da", blocks, PER_BATCH, chain_id)
    sharded = verify(da, genesis, signature_processes=0, matching_shards=2)
    unsharded = verify(da, genesis, signature_processes=0)
    assert sharded.extra["matching_shards"] == 2
    assert unsharded.extra["matching_shards"] == 0
    assert _verdict(sharded) == _verdict(unsharded)
    if lie_at is None:
        assert sharded.blocks_checked == BLOCKS and sharded.reason is None
    else:
        assert sharded.first_mismatch_height == lie_at
        assert sharded.blocks_checked == lie_at - 1


def test_a_killed_matching_worker_stops_verification_with_a_reason(
    tmp_path: Path, chain: tuple[GenesisConfig, list[Block], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    genesis, blocks, chain_id = chain
    da = post_blocks(tmp_path / "da", blocks, PER_BATCH, chain_id)
    submit = Verifier._signers
    killed: list[int] = []

    def kill_at_block_6(self: Verifier, block: Block) -> Any:
        if block.header.height == 6 and self.matching is not None:
            for worker in self.matching._workers:
                os.kill(worker.process.pid, signal.SIGKILL)
                worker.process.join(5)
                killed.append(worker.process.pid)
        return submit(self, block)

    monkeypatch.setattr(Verifier, "_signers", kill_at_block_6)
    summary = verify(da, genesis, signature_processes=0, matching_shards=2)
    assert killed, "the matching worker must be a process of this test"
    assert summary.extra["error"] == "MATCHING_WORKER_DIED"
    assert "matching worker process died" in (summary.reason or "")
    assert summary.mismatches == 0 and summary.first_mismatch_height is None
    # Blocks checked before the kill stay checked; the one executing when it died is not.
    assert summary.blocks_checked < 6
    assert summary.blocks_checked >= 6 - 1 - verify_module.LOOKAHEAD_BLOCKS


def test_a_negative_shard_count_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--da", f"file:{tmp_path}", "--genesis", str(tmp_path / "genesis.json")]
    assert verify_module.main([*argv, "--matching-shards", "-1"]) == 2
    assert "--matching-shards must be 0 or more" in capsys.readouterr().err

"""The verifier's parallel modes are optimizations, never a different verdict: with signature
worker processes or threads, and with the matching phase in one process or sharded by market
(``--matching-shards``), it checks the same blocks, reaches the same state root and stops at the
same lying header; a worker process of either kind killed (``kill -9``) mid-run stops
verification with a reason and no verdict on the block in hand (issue: parallel execution,
"every mode ... equals the serial executor's" and "a worker that dies takes the node down
cleanly")."""

from __future__ import annotations

import multiprocessing
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
    built, _ = workload_chain(BLOCKS)
    assert built.genesis is not None
    return built.genesis, [block for block, _ in built.blocks], built.params.chain_id


def _verdict(summary: Summary) -> dict[str, Any]:
    result = summary.to_json()
    keys = ("blocks_checked", "first_mismatch_height", "reason", "state_root")
    return {key: result[key] for key in keys}


MODES = ((2, 0), (0, 0), (0, 2))
"""(signature processes, matching shards): workers, threads, threads with two matching shards."""


@pytest.mark.parametrize("lie_at", [None, 8], ids=["honest", "wrong-root-at-8"])
def test_every_parallel_mode_reaches_the_same_verdict(
    tmp_path: Path, chain: tuple[GenesisConfig, list[Block], int], lie_at: int | None
) -> None:
    genesis, blocks, chain_id = chain
    if lie_at is not None:
        # A sequencer that lies about one state root; the chain it posted ends there.
        lying = blocks[lie_at - 1]
        header = msgspec.structs.replace(lying.header, state_root=bytes(32))
        blocks = [*blocks[: lie_at - 1], msgspec.structs.replace(lying, header=header)]
    da = post_blocks(tmp_path / "da", blocks, PER_BATCH, chain_id)
    summaries = [
        verify(da, genesis, signature_processes=processes, matching_shards=shards)
        for processes, shards in MODES
    ]
    for summary, (processes, shards) in zip(summaries, MODES, strict=True):
        assert summary.extra["signature_processes"] == processes
        assert summary.extra["matching_shards"] == shards
        assert _verdict(summary) == _verdict(summaries[0])
    first = summaries[0]
    if lie_at is None:
        assert first.blocks_checked == BLOCKS and first.reason is None
    else:
        assert first.first_mismatch_height == lie_at
        assert first.blocks_checked == lie_at - 1
        assert "state root" in (first.reason or "")


KILLS = {
    "signatures": ({"signature_processes": 2}, "SIGNATURE_WORKER_DIED", "signature"),
    "matching": (
        {"signature_processes": 0, "matching_shards": 2},
        "MATCHING_WORKER_DIED",
        "matching",
    ),
}
"""What to kill: the verifier's settings (its only worker processes are then of that kind), the
error it must report, and the kind of worker its reason names."""


@pytest.mark.parametrize("kind", list(KILLS))
def test_a_killed_worker_stops_verification_with_a_reason(
    tmp_path: Path,
    chain: tuple[GenesisConfig, list[Block], int],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    settings, error, named = KILLS[kind]
    genesis, blocks, chain_id = chain
    da = post_blocks(tmp_path / "da", blocks, PER_BATCH, chain_id)
    submit = Verifier._signers
    killed: list[int] = []

    def kill_at_block_6(self: Verifier, block: Block) -> Any:
        if block.header.height == 6:
            for worker in multiprocessing.active_children():
                os.kill(worker.pid or 0, signal.SIGKILL)
                killed.append(worker.pid or 0)
            for worker in multiprocessing.active_children():
                worker.join(5)
        return submit(self, block)

    monkeypatch.setattr(Verifier, "_signers", kill_at_block_6)
    summary = verify(da, genesis, **settings)
    assert killed, "the workers must be processes of this test"
    assert summary.extra["error"] == error
    assert f"{named} worker process died" in (summary.reason or "")
    assert summary.mismatches == 0 and summary.first_mismatch_height is None
    # Blocks before the kill that were already checked stay checked; none after it is.
    assert summary.blocks_checked < 6 - 1 + verify_module.LOOKAHEAD_BLOCKS
    assert summary.blocks_checked < BLOCKS


@pytest.mark.parametrize("flag", ["--signature-processes", "--matching-shards"])
def test_a_negative_worker_count_is_refused_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    argv = ["--da", f"file:{tmp_path}", "--genesis", str(tmp_path / "genesis.json")]
    assert verify_module.main([*argv, flag, "-1"]) == 2
    assert f"{flag} must be 0 or more" in capsys.readouterr().err

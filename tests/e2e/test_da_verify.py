"""Modular by proof: a devnet posts its blocks to file DA; a verifier holding only the DA and the
genesis re-derives the chain and checks every root, in a fresh process under another hash seed.
A tampered sequencer is caught at exactly the height it lied at; a corrupted batch stops the
verifier with a clear reason; a node killed while posting resumes with no gap or duplicate."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from strata.adapters.chain_store import ChainStore
from strata.adapters.da_file import FileDa
from strata.core.codec import encode
from strata.da.batch import decode_batch
from strata.da.derive import derive_blocks
from strata.stf.block import compute_header_hash
from tests.helpers.anvil import DEV_ADDRESSES, DEV_KEYS, is_anvil_installed, run_anvil
from tests.helpers.node_process import NodeProcess

STRATA = [sys.executable, "-m", "strata.cli.main"]


def _devnet(data_dir: Path, *extra: str, timeout: float = 240) -> None:
    """Run a demo devnet to completion (``--exit-after-blocks`` among ``extra``)."""
    done = subprocess.run(
        [
            *STRATA,
            "devnet",
            "--data-dir",
            str(data_dir),
            "--rpc-port",
            "0",
            "--demo",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _verify(data_dir: Path, seed: str = "4242") -> tuple[int, dict[str, Any], str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        [
            *STRATA,
            "verify",
            "--da",
            f"file:{data_dir / 'da'}",
            "--genesis",
            str(data_dir / "genesis.json"),
            "--json",
            "--proof-out",
            str(data_dir.parent / f"{data_dir.name}-fraud-proof.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def _batches(data_dir: Path) -> list[Any]:
    da = FileDa(data_dir / "da")
    return [decode_batch(da.get(ref)) for ref in da.list(1)]


def test_verifier_rederives_500_demo_blocks_from_file_da(tmp_path: Path) -> None:
    data_dir = tmp_path / "chain"
    _devnet(
        data_dir, "--block-time-ms", "20", "--exit-after-blocks", "520", "--da-batch-blocks", "25"
    )
    code, summary, _ = _verify(data_dir)
    assert code == 0, summary
    assert summary["mismatches"] == 0 and summary["first_mismatch_height"] is None
    assert summary["blocks_checked"] >= 500
    assert summary["transactions"] > 500  # the demo bots traded
    batches = _batches(data_dir)
    assert summary["batches"] == len(batches) >= 20
    assert [b.header.index for b in batches] == list(range(len(batches)))
    heights = [h for b in batches for h in range(b.header.first_height, b.header.last_height + 1)]
    assert heights == list(range(1, summary["last_height"] + 1))
    # The node's own history and the one derived from DA are the same blocks, byte for byte.
    store = ChainStore.open(data_dir / "chain")
    try:
        derived = list(derive_blocks(compute_header_hash(store.get_header(0)), batches))
        assert [encode(b) for b in derived] == [encode(b) for b in store.iter_blocks()]
    finally:
        store.close(checkpoint=False)


def test_a_wrong_root_is_caught_at_exactly_its_height(tmp_path: Path) -> None:
    data_dir = tmp_path / "liar"
    _devnet(
        data_dir,
        "--block-time-ms",
        "20",
        "--exit-after-blocks",
        "60",
        "--da-batch-blocks",
        "10",
        "--fault-wrong-root-at",
        "37",
    )
    code, summary, _ = _verify(data_dir)
    assert code == 1
    assert summary["mismatches"] == 1
    assert summary["first_mismatch_height"] == 37
    assert summary["blocks_checked"] == 36
    assert "state root" in summary["reason"]
    proof = Path(summary["fraud_proof"])
    checked = subprocess.run(
        [*STRATA, "verify-proof", str(proof)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr  # the proof holds alone


def test_a_corrupted_batch_stops_the_verifier_at_the_last_good_height(tmp_path: Path) -> None:
    data_dir = tmp_path / "corrupt"
    _devnet(
        data_dir, "--block-time-ms", "20", "--exit-after-blocks", "40", "--da-batch-blocks", "10"
    )
    log = next((data_dir / "da").iterdir())
    for candidate in (data_dir / "da").iterdir():
        if candidate.stat().st_size > log.stat().st_size:
            log = candidate
    blob = bytearray(log.read_bytes())
    blob[len(blob) * 3 // 4] ^= 0xFF  # inside the fourth batch or so
    log.write_bytes(bytes(blob))
    code, summary, _ = _verify(data_dir)
    assert code == 2
    assert summary["mismatches"] == 0
    assert summary["reason"] and "stopped after height" in summary["reason"]
    assert 0 < summary["last_height"] < 40
    assert summary["last_height"] % 10 == 0  # whole batches before the bad one


def test_kill9_while_posting_leaves_no_gap_or_duplicate(tmp_path: Path) -> None:
    data_dir = tmp_path / "killed"
    rng = random.Random(7)
    for _ in range(4):
        node = NodeProcess(
            data_dir, block_time_ms=20, demo=True, extra=["--da-batch-blocks", "5"]
        ).start()
        time.sleep(rng.uniform(0.5, 1.5))
        node.kill()
    node = NodeProcess(data_dir, block_time_ms=20, demo=True, extra=["--da-batch-blocks", "5"])
    node.start()
    time.sleep(1.0)
    assert node.terminate(60) == 0  # a graceful stop posts what is committed
    batches = _batches(data_dir)
    assert [b.header.index for b in batches] == list(range(len(batches)))
    heights = [h for b in batches for h in range(b.header.first_height, b.header.last_height + 1)]
    assert heights == list(range(1, len(heights) + 1))
    code, summary, _ = _verify(data_dir, seed="77")
    assert code == 0, summary
    assert summary["blocks_checked"] == len(heights) > 50


@pytest.mark.skipif(not is_anvil_installed(), reason="anvil is installed by `make setup` (npm)")
def test_devnet_posts_to_anvil_and_the_verifier_rederives_from_it(tmp_path: Path) -> None:
    """The same over the Ethereum adapter: a devnet posts its batches as calldata to a batch
    inbox on a real Anvil node; the verifier reads them back with web3 and checks every root."""
    key_file = tmp_path / "poster.key"
    key_file.write_text(DEV_KEYS[0].hex())
    inbox = "0x" + "ba" * 20
    with run_anvil(tmp_path / "anvil.log") as anvil:
        data_dir = tmp_path / "eth-chain"
        _devnet(
            data_dir,
            "--block-time-ms",
            "20",
            "--exit-after-blocks",
            "110",
            "--da-batch-blocks",
            "10",
            "--da",
            f"ethereum:{anvil.url},{inbox},{key_file}",
        )
        env = {**os.environ, "PYTHONHASHSEED": "99"}
        done = subprocess.run(
            [
                *STRATA,
                "verify",
                "--da",
                f"ethereum:{anvil.url},{inbox},0x{DEV_ADDRESSES[0].hex()}",
                "--genesis",
                str(data_dir / "genesis.json"),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            check=False,
        )
    summary = json.loads(done.stdout)
    assert done.returncode == 0, (summary, done.stderr[-2000:])
    assert summary["mismatches"] == 0
    assert summary["blocks_checked"] >= 100
    assert summary["batches"] >= 11


def test_follow_keeps_up_with_a_live_sequencer(tmp_path: Path) -> None:
    """``strata verify --follow`` checks blocks as a running node posts them, and on SIGTERM
    prints its summary: every block the node made, no mismatch."""
    data_dir = tmp_path / "live"
    node = NodeProcess(data_dir, block_time_ms=20, demo=True, extra=["--da-batch-blocks", "5"])
    node.start()
    follower = subprocess.Popen(
        [
            *STRATA,
            "verify",
            "--da",
            f"file:{data_dir / 'da'}",
            "--genesis",
            str(data_dir / "genesis.json"),
            "--follow",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)  # the follower checks batches as they arrive
    assert node.terminate(60) == 0  # a graceful stop posts every committed block
    height = FileDa(data_dir / "da").list(1)[-1].last_height
    time.sleep(3.0)
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["mismatches"] == 0
    assert summary["blocks_checked"] == height > 100

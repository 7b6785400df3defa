"""End to end: a devnet lies about the state root at height 37 (the test-only fault switch); the
verifier, holding only the DA layer and the genesis, catches it and writes a fraud proof, and
``strata verify-proof`` checks that proof in a fresh process from the file alone. A proof built the
same way for the honest block 36 does not hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from strata.adapters.da_file import FileDa
from strata.node.config import read_genesis
from strata.verifier.fraud_proof import decode_fraud_proof, write_fraud_proof
from strata.verifier.verify import build_proof_at

STRATA = [sys.executable, "-m", "strata.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "1234"}
    return subprocess.run(
        [*STRATA, *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd, check=False
    )


def test_a_lying_devnet_is_proven_wrong_from_the_proof_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "liar"
    devnet = _run(
        "devnet",
        "--data-dir",
        str(data_dir),
        "--rpc-port",
        "0",
        "--demo",
        "--block-time-ms",
        "20",
        "--exit-after-blocks",
        "60",
        "--da-batch-blocks",
        "10",
        "--fault-wrong-root-at",
        "37",
        cwd=tmp_path,
    )
    assert devnet.returncode == 0, devnet.stderr[-3000:]
    da, genesis_file = f"file:{data_dir / 'da'}", str(data_dir / "genesis.json")
    proof_file = tmp_path / "proof-37.bin"

    verified = _run(
        "verify",
        "--da",
        da,
        "--genesis",
        genesis_file,
        "--json",
        "--proof-out",
        str(proof_file),
        cwd=tmp_path,
    )
    assert verified.returncode == 1, verified.stderr[-3000:]
    summary = json.loads(verified.stdout)
    assert summary["first_mismatch_height"] == 37
    assert summary["fraud_proof"] == str(proof_file)
    assert decode_fraud_proof(proof_file.read_bytes()).parent.height == 36

    checked = _run("verify-proof", str(proof_file), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(
        f"fraud proven at height 37: claimed 0x{'00' * 32}, correct 0x"
    )
    as_json = json.loads(_run("verify-proof", str(proof_file), "--json", cwd=tmp_path).stdout)
    assert as_json["proven"] and as_json["kind"] == "state root"
    assert as_json["correct_root"] == summary["state_root"]  # what the verifier computed

    # The default file name, in the working directory.
    default = _run("verify", "--da", da, "--genesis", genesis_file, cwd=tmp_path)
    assert default.returncode == 1
    assert (tmp_path / "fraud-proof-37.bin").read_bytes() == proof_file.read_bytes()

    # A "proof" against the honest block 36 does not hold.
    genesis = read_genesis(Path(genesis_file)).chain
    honest = tmp_path / "proof-36.bin"
    write_fraud_proof(honest, build_proof_at(FileDa(data_dir / "da"), genesis, 36))
    refused = _run("verify-proof", str(honest), cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stdout.startswith("not proven: the block is correct")

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"STFP" + b"\x00" * 10)
    assert _run("verify-proof", str(garbage), cwd=tmp_path).returncode == 2

"""A real Anvil node (Foundry's local Ethereum node) for tests, from the repo's npm tools.

``make setup`` installs it (``npm ci``: ``@foundry-rs/anvil`` and its platform package, which
ships the binary) into ``node_modules/``; ``node_modules/.bin/anvil`` is its launcher.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"

# Anvil's default dev accounts (the "test test ... junk" mnemonic): well-known test keys, worth
# nothing anywhere.
DEV_KEYS = (
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"),
)
DEV_ADDRESSES = (
    bytes.fromhex("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
    bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8"),
)

_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")


@dataclass
class Anvil:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """Stop the node (its launcher and the binary: the whole process group)."""
        _stop(self.process)


def is_anvil_installed() -> bool:
    return ANVIL.exists()


@contextmanager
def run_anvil(log_path: Path, *args: str, start_timeout_s: float = 30.0) -> Iterator[Anvil]:
    """Start ``anvil --port 0`` (any free port) on 127.0.0.1, wait for the port it prints, and
    stop it on exit. Its output goes to ``log_path``."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(ANVIL), "--port", "0", "--host", "127.0.0.1", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the launcher and the binary
        )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            match = _LISTENING.search(log_path.read_bytes())
            if match:
                break
            if process.poll() is not None:
                tail = log_path.read_bytes()[-2000:].decode(errors="replace")
                raise RuntimeError(f"anvil exited with {process.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not print its port within {start_timeout_s} s")
            time.sleep(0.02)
        yield Anvil(f"http://127.0.0.1:{int(match.group(1))}", process, log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group (the launcher forwards it too), SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=10.0)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=10.0)

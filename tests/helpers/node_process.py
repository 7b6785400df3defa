"""Start and stop a real ``strata devnet`` process for end-to-end and crash tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STRATA = [sys.executable, "-m", "strata.cli.main"]


class NodeProcess:
    """A devnet node in its own process; ``url`` is its JSON-RPC URL once started."""

    def __init__(
        self,
        data_dir: Path,
        *,
        block_time_ms: int = 100,
        demo: bool = False,
        extra: Sequence[str] = (),
        log_path: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.block_time_ms = block_time_ms
        self.demo = demo
        self.extra = list(extra)
        self.prefix = list(prefix)
        """A command the node runs under (e.g. ``taskset -c 0``)."""
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.ws_url = ""

    def start(self, timeout: float = 30.0) -> NodeProcess:
        args = [
            *self.prefix,
            *STRATA,
            "devnet",
            "--data-dir",
            str(self.data_dir),
            "--rpc-port",
            "0",
            "--block-time-ms",
            str(self.block_time_ms),
            *(["--demo"] if self.demo else []),
            *self.extra,
        ]
        log = self.log_path.open("a")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"node exited during start: see {self.log_path}")
            if line.startswith("rpc_url="):
                self.url = line.strip().split("=", 1)[1]
                self.ws_url = self.url.replace("http://", "ws://").rstrip("/") + "/ws"
                break
        else:
            raise RuntimeError("node did not announce its URL in time")
        self.wait_healthy(timeout=max(1.0, deadline - time.monotonic()))
        return self

    def wait_healthy(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("node not healthy in time")

    def call(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; returns the result or raises ``RuntimeError`` with the error."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        request = urllib.request.Request(
            self.url, body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def kill(self) -> None:
        """``kill -9``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.terminate(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

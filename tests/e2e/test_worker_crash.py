"""A worker process of the node killed with ``kill -9`` takes the node down cleanly: no partial
block is committed, and a restart recovers to the same chain (issue: parallel execution).

The node runs workers beside block production (docs/node.md, "Using both cores"): the index
process, the signature precompile's processes, with ``--matching-shards 2`` a matching worker
that owns market 2's book (``exec/parallel.py``), and with ``--commit-process`` the process that
computes state roots (``exec/commitment.py``). Each test finds its worker by the name the worker
gave itself (``strata-index``, ``strata-sig``, ``strata-match``, ``strata-commit``: what ``ps``
shows an operator), kills it in a loaded node, checks that the node stops by itself, restarts
it, and checks every transaction the node reported as included against the chain database.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from strata.node.config import read_genesis
from strata.stf.transactions import compute_transaction_hash as tx_hash_of
from tests.e2e.test_node_crash import (
    Signer,
    check_acknowledged,
    check_chain,
    running,
    start_node,
    statuses,
    stop_gracefully,
)
from tests.helpers.node_process import NodeProcess

pytestmark = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="the node runs its workers only with two cores"
)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


WORKER_NAMES = {
    "index": "strata-index",
    "signatures": "strata-sig",
    "matching": "strata-match",
    "commitment": "strata-commit",
}
"""The name each kind of worker gives itself (``adapters/lifetime.py``), as ``ps`` shows it."""


def _worker(node: NodeProcess, kind: str) -> int:
    """The pid of the node's worker of ``kind``, found by the name it gave itself."""
    assert node.proc is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for pid in _children(node.proc.pid):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue  # exited meanwhile
            if name == WORKER_NAMES[kind]:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no {kind} worker under the node")


def _load(node: NodeProcess, signer: Signer, batches: int) -> dict[bytes, int]:
    """Send batches, wait until they are in blocks; returns hash -> height as reported."""
    sent: list[bytes] = []
    for _ in range(batches):
        batch = signer.mixed_batch(40)
        results = node.call("strata_sendRawTransactions", ["0x" + d.hex() for d in batch])
        sent += [tx_hash_of(d) for d, r in zip(batch, results, strict=True) if "hash" in r]
    deadline = time.monotonic() + 20
    answers = statuses(node, sent)
    while time.monotonic() < deadline and any(a["status"] == "pending" for a in answers):
        time.sleep(0.1)
        answers = statuses(node, sent)
    return {h: a["height"] for h, a in zip(sent, answers, strict=True) if a["status"] == "included"}


EXTRA_FLAGS = {
    "matching": ["--matching-shards", "2", "--signature-processes", "0"],
    "commitment": ["--commit-process"],
}
"""The flags that give a node its worker of that kind (the others it has by default)."""
DIED = {
    "matching": "a matching worker process died: stopping",
    "commitment": "the commitment process died: stopping",
}


@pytest.mark.parametrize("kind", ["index", "signatures", "matching", "commitment"])
def test_a_killed_worker_stops_the_node_and_a_restart_recovers(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "node"
    log_path = tmp_path / "node.log"
    extra = EXTRA_FLAGS.get(kind, [])
    with running(start_node(data_dir, log_path, extra=extra)) as node:
        params = read_genesis(data_dir / "genesis.json").chain.params
        signer = Signer(params, random.Random(7))
        reported = _load(node, signer, 3)
        assert reported, "nothing was included before the kill"
        os.kill(_worker(node, kind), signal.SIGKILL)
        if kind == "signatures":
            # The next admission finds the pool broken; the node says it is stopping.
            batch = signer.mixed_batch(10)
            with contextlib.suppress(Exception):  # refused, or the connection closed: both fine
                node.call("strata_sendRawTransactions", ["0x" + d.hex() for d in batch])
        assert node.proc is not None
        code = node.proc.wait(30)  # the node stops by itself, before its next block
        assert code == 0, f"the node exited {code}"
    if kind in DIED:
        assert DIED[kind] in log_path.read_text()
    report = check_chain(data_dir)
    check_acknowledged(reported, report)
    with running(start_node(data_dir, log_path, extra=extra)) as node:
        answers = statuses(node, list(reported))
        assert {a["status"] for a in answers} == {"included"}
        more = _load(node, signer, 1)
        assert more, "the restarted node includes new transactions"
        reported.update(more)
        stop_gracefully(node)
    check_acknowledged(reported, check_chain(data_dir))

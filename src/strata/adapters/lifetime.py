"""Helper processes that end with the node.

The node runs helpers in processes of its own: signature workers and the index process
(``spawn``), checkpoint and bulk writers (``fork``). When the node exits normally it stops them;
when it is killed (``kill -9``, the OOM killer) nothing runs in it to do so, and a ``spawn``
helper never sees its queue close (it holds both ends of the pipe itself), so it would wait
forever, holding its memory. Each helper therefore asks Linux to kill it when the node dies
(``PR_SET_PDEATHSIG``), and checks that the node has not died before it asked.

``PR_SET_PDEATHSIG`` fires when the *thread* that started the helper ends; the node starts every
helper from its main thread, which lives as long as the process. Elsewhere than Linux this does
nothing (a helper then ends with its work, or when its queue breaks).

Each helper also names itself (:func:`name_process`), so ``ps``, ``top`` and ``strata bench
parallel`` tell them apart: ``strata-node`` (the node), ``strata-sig`` (a signature worker),
``strata-match`` (a matching worker), ``strata-commit`` (the commitment process),
``strata-index`` (the index process) and ``strata-ckpt`` (a checkpoint or bulk writer).

:func:`tune_collector` sets the garbage collector of the processes that execute blocks, and
:func:`collector_paused` holds it off while one block executes.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from strata.exec.parallel import ShardedMatching
from strata.exec.signatures import SignaturePool

if TYPE_CHECKING:  # not imported at run time: every helper imports this module when it starts,
    # and the tree's modules bring numpy (~0.3 s and ~20 MB a process)
    from strata.exec.commitment import CommitmentProcess
    from strata.state.smt import SparseMerkleTree

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """In a helper process: be killed with ``SIGKILL`` when the process ``parent`` (the node that
    started it) dies. Returns whether ``parent`` is still alive, i.e. still this process's
    parent (``False``: it died before the request, and no signal will come)."""
    with suppress(AttributeError, OSError):  # not Linux
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


def exit_unless_parent(parent: int) -> None:
    """:func:`die_with_parent`, exiting at once if ``parent`` is already gone (a worker
    initializer: an orphan has nothing to do)."""
    if not die_with_parent(parent):
        os._exit(0)


def name_process(name: str) -> None:
    """Name this process as ``ps`` and ``top`` show it (Linux's ``comm``, at most 15 bytes; a
    name set before a thread starts or a ``fork`` is inherited). Elsewhere this does nothing."""
    with suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


def start_signature_worker(parent: int) -> None:
    """Initializer of a signature worker process: named ``strata-sig``, ends with ``parent``."""
    name_process("strata-sig")
    exit_unless_parent(parent)


def start_matching_worker(parent: int) -> None:
    """Initializer of a matching worker process: named ``strata-match``, ends with ``parent``."""
    name_process("strata-match")
    exit_unless_parent(parent)


def start_commitment_worker(parent: int) -> None:
    """Initializer of the commitment process: named ``strata-commit``, ends with ``parent``."""
    name_process("strata-commit")
    exit_unless_parent(parent)


def start_commitment_process(tree: SparseMerkleTree) -> CommitmentProcess:
    """A node's commitment process over its store's ``tree``, named ``strata-commit`` and
    ending with this process."""
    from strata.exec.commitment import CommitmentProcess

    return CommitmentProcess(tree, initializer=start_commitment_worker, initarg=os.getpid())


def start_signature_pool(processes: int, threads: int) -> SignaturePool:
    """The signature precompile of a node or a verifier: ``processes`` workers named
    ``strata-sig`` that end with this process (or, with none, ``threads`` threads)."""
    return SignaturePool(
        processes, threads, initializer=start_signature_worker, initarg=os.getpid()
    )


def start_sharded_matching(shards: int) -> ShardedMatching | None:
    """Market-sharded matching over ``shards`` shards for a node or a verifier: its workers
    named ``strata-match`` and ending with this process; ``None`` below two shards (matching
    then runs in this process)."""
    if shards < 2:
        return None
    return ShardedMatching(shards, initializer=start_matching_worker, initarg=os.getpid())


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the young generation (Python's default: 700)."""


def tune_collector() -> None:
    """Set the cyclic garbage collector of a process that executes blocks for long (the node,
    the verifier): what it holds now is frozen out of the collector's reach, and the young
    generation is collected every :data:`GC_YOUNG_THRESHOLD` allocations. Such a process
    allocates many short-lived objects and makes few cycles; with Python's defaults the
    collector ran every 700 allocations, and swept the whole heap as often as every 70,000.
    Measured: fewer and shorter pauses in the node; re-executing the engine benchmark's
    blocks, 3.7% fewer instructions with single orders and 2.7% with bulk actions
    (``strata bench engine --instructions``'s workloads)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while one block executes (as it was, after).

    A block's execution keeps tens of thousands of objects alive until it ends (the decoded
    transactions, the admitted operations, every event and receipt: about 42,000 a 10,000-order
    block of ``strata bench engine``) and makes almost no reference cycles (10 objects collected
    over two such blocks). A collection in the middle of a block therefore only walked objects
    that reference counting frees when the block ends; after the block, the young generation
    holds only what the block kept. Measured, re-executing the engine benchmark's blocks
    (``strata bench engine --instructions``): 3.7% fewer instructions with single orders and 2.3%
    with bulk actions. The collector is process-wide, so other threads' cycles wait for the
    block too; memory is still freed by reference counting meanwhile.
    ``tests/unit/test_collector.py`` checks the premise: blocks make almost no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()

"""The signature precompile: a batch's signatures checked in parts, beside execution.

Two kinds of workers, one interface (:class:`SignaturePool`):

- **processes** (the default when the machine has a core to spare): each worker is a process
  with its own interpreter and GIL, given raw transaction bytes; it decodes them and checks
  their signatures (``stf.transition.check_signatures``), and returns the signers. Measured
  here: with threads, a verification releases the GIL inside the C library but must take it
  back to return, and while the main thread executes Python it waits up to the interpreter's
  switch interval (5 ms) for it, so threads verify at a fraction of their speed exactly when the
  node is busy (a GIL convoy). A process never waits for the node's GIL.
- **threads** (``processes=0``): PyNaCl and coincurve release the GIL while they verify; good
  enough when the main thread is mostly idle (the verifier's prefetch, tests).

The node's admission and the verifier both use it. The result never depends on the workers:
``check_signatures`` is a pure function of the chain parameters and the bytes.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

from strata.stf.params import ChainParams
from strata.stf.transition import check_signatures

Item = TypeVar("Item")
Signer = bytes | None


def submit_parts(
    pool: Executor,
    check: Callable[[ChainParams, Sequence[Item]], list[Signer]],
    params: ChainParams,
    items: Sequence[Item],
    parts: int,
) -> list[Future[list[Signer]]]:
    """Start ``check(params, part)`` on ``pool`` for ``items`` cut into at most ``parts``
    consecutive parts; :func:`joined` gives the signers back in order."""
    size = max(1, -(-len(items) // max(1, parts)))
    return [pool.submit(check, params, items[i : i + size]) for i in range(0, len(items), size)]


def joined(parts: Sequence[Future[list[Signer]]]) -> list[Signer]:
    """The signers of every part, in order (waits for each)."""
    return [signer for part in parts for signer in part.result()]


class SignaturePool:
    """Workers that check the signatures of raw transactions (see the module docstring).

    ``processes`` worker processes (started with ``spawn``: the node has threads and open
    databases, which a fork must not copy), or, with ``processes=0``, ``threads`` threads.
    ``initializer(initarg)`` runs first in each worker process (the node's: end with the node,
    ``adapters/lifetime.py``).
    """

    def __init__(
        self,
        processes: int,
        threads: int = 2,
        initializer: Callable[[int], object] | None = None,
        initarg: int = 0,
    ) -> None:
        self.processes = processes
        self.workers = processes if processes > 0 else max(1, threads)
        self._pool: Executor
        if processes > 0:
            context = multiprocessing.get_context("spawn")
            if initializer is None:
                self._pool = ProcessPoolExecutor(processes, mp_context=context)
            else:
                self._pool = ProcessPoolExecutor(
                    processes, mp_context=context, initializer=initializer, initargs=(initarg,)
                )
        else:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sigcheck")

    def start(self) -> None:
        """Start every worker now (a spawned process takes a fraction of a second to import
        the engine: better at start than on the first request)."""
        warm = [
            self._pool.submit(check_signatures, ChainParams(chain_id=0), ())
            for _ in range(self.workers)
        ]
        for future in warm:
            future.result()

    def submit(
        self, params: ChainParams, datas: Sequence[bytes], parts: int | None = None
    ) -> list[Future[list[Signer]]]:
        """Check ``datas`` in at most ``parts`` parts (default: one per worker); :func:`joined`
        gives the signers (``None``: a bad signature or bytes that do not decode) in order."""
        return submit_parts(
            self._pool, check_signatures, params, list(datas), parts or self.workers
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

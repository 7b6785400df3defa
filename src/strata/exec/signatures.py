"""The signature precompile: a batch's signatures checked in parts on a thread pool.

PyNaCl (Ed25519) and coincurve (secp256k1) release the GIL while they verify, so the parts run
in parallel, and beside execution. The node's admission and the verifier both use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TypeVar

from strata.stf.params import ChainParams

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

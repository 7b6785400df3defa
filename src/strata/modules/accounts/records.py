"""``accounts``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class NonceWindow(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """An account's replay protection: every nonce ``<= floor`` is spent (the largest nonce ever
    evicted from the window), and ``recent`` holds the spent nonces above it, ascending."""

    floor: int
    recent: tuple[int, ...]


EMPTY_WINDOW = NonceWindow(0, ())


class AgentRecord(msgspec.Struct, frozen=True, array_like=True):
    """An Ed25519 agent key approved by ``account`` until ``valid_until_ms`` (exclusive)."""

    account: bytes
    valid_until_ms: int

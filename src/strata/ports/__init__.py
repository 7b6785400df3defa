"""Ring 1 ports: the ``typing.Protocol`` of every I/O edge. Adapters (ring 2) implement them.

Only the storage port exists yet; DA, settlement, sequencing and key shares come with their issues.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class KvStore(Protocol):
    """An ordered, transactional key-value store (LMDB in production, a dict in tests)."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def commit(self) -> None:
        """Make every write since the last commit durable, atomically."""
        ...

"""The data-availability port (``docs/da.md``): where batches are published and read back.

Adapters (ring 2) implement :class:`DaClient`: ``strata.adapters.da_file.FileDa`` (an
append-only log on disk) and an Ethereum one (batches as calldata to an inbox address).
"""

from __future__ import annotations

import builtins
from typing import Protocol

import msgspec


class DaError(Exception):
    """The DA layer refused or failed: a conflicting post, a corrupt record, a missing batch."""


class DaUnavailable(DaError):
    """The DA layer cannot be reached or written now; the same call may succeed later."""


class DaReference(msgspec.Struct, frozen=True):
    """Where one posted batch is, and what it is."""

    layer: str
    """``"file"``, ``"ethereum"``."""
    batch_index: int
    batch_hash: bytes
    """``strata.da.batch.batch_hash`` of the batch."""
    first_height: int
    last_height: int
    locator: str
    """Where the layer keeps it (file: the record's byte offset; ethereum: the tx hash)."""


class DaClient(Protocol):
    """A data-availability layer holding encoded batches (``strata.da.batch.encode_batch``)."""

    def post(self, index: int, data: bytes) -> DaReference:
        """Publish the encoded batch ``index``.

        Idempotent by (index, batch hash): posting the same batch again returns the same
        reference. Raises :class:`DaError` for another batch at a posted index, and
        :class:`DaUnavailable` when the layer cannot take it now.
        """
        ...

    def get(self, ref: DaReference) -> bytes:
        """The encoded batch ``ref`` names, checked against it; :class:`DaError` if it cannot
        be found or does not check out, :class:`DaUnavailable` if the layer is unreachable."""
        ...

    def list(
        self, first_height: int = 1, last_height: int | None = None
    ) -> builtins.list[DaReference]:
        """References in batch-index order whose height range meets
        ``[first_height, last_height]`` (``None``: no upper bound)."""
        ...

    def prove(self, ref: DaReference) -> bytes | None:
        """An inclusion proof of ``ref`` in the layer, if the layer has one."""
        ...

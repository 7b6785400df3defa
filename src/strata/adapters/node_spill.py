"""Tree nodes that left the current tree and wait for a checkpoint, kept in a file, not in memory.

The store's tree keeps its current nodes packed in memory (``state/packed.py``). A node a block
makes stale leaves that table at once, but a checkpoint has not written it yet, and reads at the
heights since the last checkpoint still need it. :class:`Spill` keeps such records (the
table's 104-byte records, as the update released them) in an unlinked temporary file beside the
database, one segment per block, written with ``pwrite``: the pages are the operating system's
page cache, not the process's memory, and the file disappears when the process ends however it
ends. In memory, per record: its hash's first 8 bytes and its place (12 bytes), sorted per
segment for look-ups.

The store opens a new spill when a checkpoint starts; the checkpoint writes the spills that were
closed before it (the forked writer reads them through the inherited descriptor with ``pread``)
and the store closes them once it has committed. Nothing here is durable: after a crash the
blocks since the checkpoint are re-executed, which rebuilds whatever the spills held.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from strata.state.packed import RECORD_BYTES, prefixes_of, records_of, unpack_record


@dataclass(frozen=True)
class _Segment:
    height: int
    """The height whose update released these records (they went stale there)."""
    offset: int
    count: int
    prefixes: npt.NDArray[np.uint64]
    """The records' first 8 hash bytes (little-endian), sorted."""
    order: npt.NDArray[np.uint32]
    """The record number of each sorted prefix."""


class Spill:
    """Released tree records of a run of blocks, in an unlinked file (module docstring)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._fd = -1
        """The file, created at the first record."""
        self._end = 0
        self._segments: list[_Segment] = []
        self.records = 0

    def append(self, height: int, rows: bytes) -> None:
        """Keep the records ``rows`` released by the update of ``height``."""
        if not rows:
            return
        if self._fd < 0:
            handle, name = tempfile.mkstemp(prefix="spill-", suffix=".tmp", dir=self._directory)
            os.unlink(name)
            self._fd = handle
        written = os.pwrite(self._fd, rows, self._end)
        if written != len(rows):
            raise OSError(f"spill: wrote {written} of {len(rows)} bytes")
        records = records_of(rows)
        prefixes = prefixes_of(records)
        order = np.argsort(prefixes, kind="stable").astype(np.uint32)
        self._segments.append(_Segment(height, self._end, len(records), prefixes[order], order))
        self._end += len(rows)
        self.records += len(records)

    def get(self, node_hash: bytes) -> bytes | None:
        """The encoding of ``node_hash`` if a record here holds it (newest segment first)."""
        prefix = np.uint64(int.from_bytes(node_hash[:8], "little"))
        for segment in reversed(self._segments):
            at = int(np.searchsorted(segment.prefixes, prefix))
            while at < segment.count and segment.prefixes[at] == prefix:
                offset = segment.offset + int(segment.order[at]) * RECORD_BYTES
                found, encoding, _ = unpack_record(os.pread(self._fd, RECORD_BYTES, offset))
                if found == node_hash:
                    return encoding
                at += 1
        return None

    def segments(self) -> Iterator[tuple[int, bytes]]:
        """``(height, records)`` of every segment, in the order appended (a sequential read)."""
        for segment in self._segments:
            size = segment.count * RECORD_BYTES
            rows = os.pread(self._fd, size, segment.offset)
            if len(rows) != size:
                raise OSError(f"spill: read {len(rows)} of {size} bytes")
            yield segment.height, rows

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._segments = []

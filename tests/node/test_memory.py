"""The node's memory release (``node/memory.py``) on a real LMDB file, measured in
``/proc/self/smaps``: the pages a read maps leave the resident set, the data does not change."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import lmdb
import pytest

from strata.node.memory import release_mapped_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

KEYS = 50_000


def _mapped_kb(path: Path) -> int:
    """This process's resident kB of its mappings of ``path``."""
    name = str(path.resolve())
    total = 0
    current = ""
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields[0].endswith(":"):
                if fields[0] == "Rss:" and current == name:
                    total += int(fields[1])
            else:
                current = fields[5] if len(fields) > 5 else ""
    return total


def _key(i: int) -> bytes:
    return struct.pack(">Q", i)


def test_release_drops_mapped_pages_and_keeps_data(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path), map_size=1 << 28, readahead=False)
    try:
        values = {i: os.urandom(60) for i in range(KEYS)}
        with env.begin(write=True) as txn:
            for i, value in values.items():
                txn.put(_key(i), value)
        data = tmp_path / "data.mdb"
        with env.begin() as txn:
            for i in range(0, KEYS, 97):
                assert txn.get(_key(i)) == values[i]
        before = _mapped_kb(data)
        assert before >= 256, before  # the reads mapped pages of the file

        assert release_mapped_pages([data, tmp_path / "absent.mdb"]) == 1
        assert _mapped_kb(data) == 0

        # Every value reads back unchanged, through a transaction opened before the release
        # too, and the reads map pages again.
        reader = env.begin()
        with env.begin() as txn:
            for i in range(0, KEYS, 7):
                assert txn.get(_key(i)) == values[i]
        release_mapped_pages([data])
        for i in range(3, KEYS, 11):
            assert reader.get(_key(i)) == values[i]
        reader.abort()
        assert _mapped_kb(data) > 0
    finally:
        env.close()


def test_release_of_unmapped_files_does_nothing(tmp_path: Path) -> None:
    assert release_mapped_pages([tmp_path / "data.mdb"]) == 0

"""The node's memory release (``adapters/memory.py``) on a real LMDB file, measured in
``/proc/self/smaps``: the pages a read maps leave the resident set, the data does not change."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import lmdb
import pytest

from strata.adapters.memory import release_mapped_pages

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


ARENA_PROBE = """
import sys, threading
from strata.adapters.memory import use_one_malloc_arena
if sys.argv[1] == "one":
    assert use_one_malloc_arena()
def work():
    keep = [bytes(2048) for _ in range(2000)]  # malloc'd (over pymalloc's 512 bytes)
    done.wait()
done = threading.Event()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
# A glibc thread arena reserves 64 MB aligned to 64 MB: the part in use, then the rest of the
# reservation as an inaccessible anonymous mapping ending on the 64 MB boundary.
regions = 0
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.split()
        if len(fields) == 5 and fields[1] == "---p":
            start, end = (int(x, 16) for x in fields[0].split("-"))
            regions += end % (64 << 20) == 0 and end - start >= 32 << 20
done.set()
for t in threads:
    t.join()
print(regions)
"""


def test_one_malloc_arena_keeps_threads_on_the_main_heap() -> None:
    """With :func:`use_one_malloc_arena`, threads that allocate get no arenas of their own;
    without it, they do (in a fresh interpreter each time)."""
    import subprocess

    def thread_arenas(mode: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", ARENA_PROBE, mode], capture_output=True, text=True, check=True
        )
        return int(result.stdout)

    assert thread_arenas("default") >= 1
    assert thread_arenas("one") == 0

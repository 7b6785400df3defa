"""Giving freed memory back to the operating system.

CPython hands objects larger than 512 bytes (a transaction's bytes, a block's lists) to the C
allocator. Under load the node holds many of them at once (a full mempool, a large block); once
they are freed, glibc keeps the pages for reuse, so the resident set stays at its high-water mark
even though the memory is free. :func:`release_free_memory` asks glibc to return free pages
(``malloc_trim(0)``: the top of the heap and whole free pages inside it). The node calls it every
few seconds (:data:`TRIM_EVERY_BLOCKS`), when its mempool empties (a burst is over) and after
every empty block (what a burst leaves is freed over the next blocks); the chain store calls it
when a checkpoint has committed (its blocks' changes are then freed); measured on a heap of
200 MB, a call costs about 2 ms.
Elsewhere than glibc it does nothing.

The node's LMDB files are memory-mapped, and every page the node reads through a map stays in its
resident set (``RssFile``) until it exits; the kernel's fault-around maps up to 16 neighbouring
pages of the page cache with each read (measured: ten point reads of a freshly written 15 MB
database mapped 1.8 MB). The block log's appends and the tree's node reads land on pages
recently written (the checkpoint writer and LMDB's copy-on-write move them around the file), so
under load the mapped part grew by megabytes a minute although nothing in the node held more.
:func:`release_mapped_pages` drops the process's view of those pages (``madvise(MADV_DONTNEED)``
on a shared, read-only file mapping): the data stays in the operating system's page cache, the
next read of a page maps it again (a minor fault, no disk read), and nothing LMDB holds is
touched (its map is read-only; it writes with ``pwrite``). The node calls it every
:data:`TRIM_EVERY_BLOCKS` blocks (about 0.4 ms a call, plus the few pages it reads next mapped
again); the chain store every 256 reads at a height and after opening (whose checks read the
whole file).

glibc gives each thread that allocates its own heap ("arena"), and the node has several threads
beside the event loop's (the signature pool's and the queues' helpers, the reader of the index
process's texts, the DA poster): each arena keeps its own free pages and fragments on its own
(measured: the thread arenas held 0 MB at one reading of a `strata bench node` run and 15 MB at
the next). :func:`use_one_malloc_arena` makes every thread allocate from the main heap; the
interpreter lock already serializes most allocations, so the arena's lock costs little.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

TRIM_EVERY_BLOCKS = 25
"""Blocks between two calls (5 s at the devnet's 200 ms block time)."""


M_ARENA_MAX = -8
"""glibc's ``mallopt`` parameter: the most arenas ``malloc`` creates."""
MADV_DONTNEED = 4
"""Linux's ``madvise`` advice that drops a range's page-table entries."""


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _load_madvise(libc: ctypes.CDLL | None) -> Callable[[int, int, int], int] | None:
    madvise = getattr(libc, "madvise", None)
    if madvise is None or not sys.platform.startswith("linux"):
        return None
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise  # type: ignore[no-any-return]


_LIBC = _load_libc()
_TRIM: Callable[[int], int] | None = getattr(_LIBC, "malloc_trim", None)
_MADVISE = _load_madvise(_LIBC)
_MALLOPT: Callable[[int, int], int] | None = getattr(_LIBC, "mallopt", None)


def use_one_malloc_arena() -> bool:
    """Make threads started from now on allocate from glibc's main arena; whether the platform
    could (glibc). Call before any thread allocates: glibc fixes its arena limit when the first
    thread needs an arena, and a later call leaves it as it was (seen here: a diagnostic thread
    started at interpreter start-up got the node's threads arenas of their own again)."""
    if _MALLOPT is None or not sys.platform.startswith("linux"):
        return False
    return _MALLOPT(M_ARENA_MAX, 1) == 1


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; whether the platform could (glibc)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def mapped_ranges(files: Iterable[Path]) -> list[tuple[int, int]]:
    """The address ranges of this process's mappings of ``files`` (from ``/proc/self/maps``).

    A caller may keep them for as long as the mappings stay (an open LMDB environment keeps its
    map at one address); :func:`release_mapped_pages` on a range that has since been unmapped
    and reused would drop that memory's pages instead."""
    paths = {str(path.resolve()) for path in files}
    ranges: list[tuple[int, int]] = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n") in paths:
                start, _, end = fields[0].partition("-")
                ranges.append((int(start, 16), int(end, 16)))
    return ranges


def release_mapped_pages(files: Iterable[Path], ranges: list[tuple[int, int]] | None = None) -> int:
    """Drop this process's mapped pages of ``files`` (memory-mapped database files, mapped
    read-only and shared) from its resident set; return how many ranges were released (0 where
    the platform cannot: not Linux). The pages stay in the page cache; reads map them again.
    ``ranges``, if given, are the files' :func:`mapped_ranges`, read before (reading
    ``/proc/self/maps`` costs ~1 ms)."""
    if _MADVISE is None:
        return 0
    released = 0
    for start, end in mapped_ranges(files) if ranges is None else ranges:
        if _MADVISE(start, end - start, MADV_DONTNEED) == 0:
            released += 1
    return released

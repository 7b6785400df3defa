"""The data-file length check at open: LMDB may end a sound file before its last page (pages a
transaction took at the end of the file and freed again are listed as free and never written);
a file cut into pages in use is still refused.

``_leave_unwritten_tail`` builds that state deterministically: with free pages loaded from an
older transaction, a transaction stores a value too large for them (new overflow pages at the
end of the file) and deletes it again; ``mdb_ovpage_free`` puts those pages on the free list
without their ever being written, while the meta page's ``last_pgno`` counts them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import lmdb
import pytest

from strata.adapters.chain_store import STATE_DIR, ChainStore, StoreError, _check_data_file
from tests.storage.chain import extend
from tests.storage.workload import GENESIS

KEPT = b"K" * 10_000  # an overflow value written once: its pages stay in use


def _open(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), map_size=1 << 26, max_dbs=16, sync=True, writemap=False)


def _bytes_in_use(env: lmdb.Environment) -> int:
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]


def _leave_unwritten_tail(env: lmdb.Environment) -> None:
    """Four transactions on the main database that leave it as it was, and the file shorter
    than ``(last_pgno + 1) * psize``."""
    with env.begin(write=True) as txn:
        txn.put(b"scratch", b"x" * 64 * 1024)
    with env.begin(write=True) as txn:
        txn.delete(b"scratch")  # its overflow pages go to the free list
    with env.begin(write=True) as txn:
        txn.put(b"scratch", b"")
    with env.begin(write=True) as txn:
        txn.delete(b"scratch")  # loads the free list (older than any reader)
        txn.put(b"huge", b"y" * 160 * 1024)  # more pages than are free: at the end of the file
        txn.delete(b"huge")


@pytest.fixture
def short_file(tmp_path: Path) -> Path:
    path = tmp_path / "env"
    env = _open(path)
    with env.begin(write=True) as txn:
        txn.put(b"kept", KEPT)
    _leave_unwritten_tail(env)
    env.close()
    return path


def test_sound_file_shorter_than_last_pgno_is_accepted(short_file: Path) -> None:
    env = _open(short_file)
    try:
        size = (short_file / "data.mdb").stat().st_size
        assert size < _bytes_in_use(env)  # the check before this change refused it here
        _check_data_file(short_file, env)
        with env.begin() as txn:
            assert txn.get(b"kept") == KEPT
            assert list(txn.cursor().iternext(values=False)) == [b"kept"]
    finally:
        env.close()


@pytest.mark.parametrize("cut", ["into the kept value", "metas only"])
def test_file_cut_into_pages_in_use_is_refused(short_file: Path, tmp_path: Path, cut: str) -> None:
    path = tmp_path / "cut"
    shutil.copytree(short_file, path)
    data_file = path / "data.mdb"
    page = 4096
    new_size = {
        "into the kept value": data_file.read_bytes().index(KEPT[:100]) // page * page,
        "metas only": 2 * page,
    }[cut]
    os.truncate(data_file, new_size)
    env = _open(path)
    try:
        with pytest.raises(StoreError, match=r"data\.mdb is truncated"):
            _check_data_file(path, env)
    finally:
        env.close()


def test_store_with_unwritten_free_tail_opens(tmp_path: Path) -> None:
    """End to end: both data files of a sound store end before their last page, and the store
    opens (the crash test once saw this after ``kill -9``)."""
    path = tmp_path / "chain"
    store = ChainStore.create(path, GENESIS, checkpoint_every=4, retain_heights=8)
    store.background = False
    extend(store, 6)
    store.close()
    for env_path in (path, path / STATE_DIR):
        env = _open(env_path)
        try:
            _leave_unwritten_tail(env)
            assert (env_path / "data.mdb").stat().st_size < _bytes_in_use(env)
        finally:
            env.close()
    store = ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    try:
        assert store.tip.height == 6
    finally:
        store.close(checkpoint=False)

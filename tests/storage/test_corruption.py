"""A flipped byte or a truncated data file is detected when the store is opened, and refused with
a ``StoreError``; nothing is repaired. The bytes flipped are found in ``data.mdb`` itself (every
copy of a record, since LMDB's copy-on-write pages may still hold older copies)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.adapters.chain_store import ChainStore, StoreError, _height_key
from tests.storage.chain import extend, replay
from tests.storage.workload import GENESIS

BLOCKS = 14  # checkpoints at 4, 8, 12; blocks 13 and 14 are replayed at open
REFERENCE = replay(BLOCKS)

Picker = Callable[[ChainStore], bytes]


def _record(db: bytes, key: bytes) -> Picker:
    def pick(store: ChainStore) -> bytes:
        with store._env_for(db).begin() as txn:
            value = txn.get(key, db=store._dbs[db])
        assert value is not None
        return bytes(value)

    return pick


def _longest_state_value(store: ChainStore) -> bytes:
    with store._state_env.begin() as txn:
        values = [bytes(v) for _, v in txn.cursor(db=store._dbs[b"state"])]
    return max(values, key=len)


def _node(depth: int) -> Picker:
    """The encoding of the node reached from the checkpoint root by ``depth`` left steps."""

    def pick(store: ChainStore) -> bytes:
        tree = store._tree()
        node = store.get_header(store.checkpoint_height).state_root
        encoding = tree.get_node(node)
        for _ in range(depth):
            if encoding[0] == 0:
                break
            node = encoding[1:33]
            encoding = tree.get_node(node)
        return encoding

    return pick


def _leaf(store: ChainStore) -> bytes:
    tree = store._tree()
    path, value_hash = next(tree.iter_leaves(store.get_header(store.checkpoint_height).state_root))
    return b"\x00" + path + value_hash


CASES: dict[str, tuple[Picker, str]] = {
    "header": (_record(b"headers", _height_key(5)), "header 5"),
    "genesis header": (_record(b"headers", _height_key(0)), "header 0"),
    "block before checkpoint": (_record(b"blocks", _height_key(6)), "block 6"),
    "receipts": (_record(b"receipts", _height_key(3)), "receipts 3"),
    "tip": (_record(b"meta", b"tip"), "tip"),
    "checkpoint record": (_record(b"state-meta", b"checkpoint"), "checkpoint"),
    "pruned record": (_record(b"state-meta", b"pruned"), "pruned"),
    "genesis config": (_record(b"meta", b"genesis"), "genesis"),
    "state value": (_longest_state_value, "checkpoint state"),
    "root node": (_node(0), "node"),
    "inner node": (_node(3), "node"),
    "leaf node": (_leaf, "node"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 14 blocks whose process stopped without a final checkpoint: the blocks after
    the last checkpoint are only in ``blocks``, and recovery re-executes them. Its checkpoints
    run in the foreground, so they land at 4, 8 and 12 whatever the machine's load (in the
    background, the next starts at the first commit after one ends, and the last one lands
    anywhere from 8 to 14: a busy machine once left no block to replay)."""
    path = tmp_path_factory.mktemp("pristine") / "chain"
    store = ChainStore.create(path, GENESIS, checkpoint_every=4, retain_heights=8)
    store.background = False
    extend(store, BLOCKS)
    assert store.checkpoint_height == 12
    store.close(checkpoint=False)
    return path


def _copy(pristine: Path, tmp_path: Path) -> Path:
    path = tmp_path / "chain"
    shutil.copytree(pristine, path)
    return path


def _flip_everywhere(path: Path, needle: bytes) -> int:
    """Flip one byte in the middle of every copy of ``needle`` in both ``data.mdb`` files (the
    block log and the state store)."""
    count = 0
    for data_file in (path / "data.mdb", path / "state" / "data.mdb"):
        data = bytearray(data_file.read_bytes())
        start = data.find(needle)
        while start >= 0:
            data[start + len(needle) // 2] ^= 0x40
            count += 1
            start = data.find(needle, start + 1)
        data_file.write_bytes(bytes(data))
    return count


def test_pristine_store_opens(pristine: Path, tmp_path: Path) -> None:
    store = ChainStore.open(_copy(pristine, tmp_path), checkpoint_every=4, retain_heights=8)
    try:
        assert store.tip.height == BLOCKS
        assert store.get_header(BLOCKS) == REFERENCE.headers[BLOCKS]
    finally:
        store.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_flipped_byte_is_refused(pristine: Path, tmp_path: Path, case: str) -> None:
    picker, expected = CASES[case]
    path = _copy(pristine, tmp_path)
    store = ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    needle = picker(store)
    store.close(checkpoint=False)  # no checkpoint: keep the file as the crash left it
    assert len(needle) >= 8
    assert _flip_everywhere(path, needle) >= 1, "record not found in data.mdb"
    with pytest.raises(StoreError) as raised:
        ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    message = str(raised.value)
    assert expected in message and "refused" in message, message


@pytest.mark.parametrize("full_check", [True, False])
def test_flipped_byte_in_replayed_block_is_refused(
    pristine: Path, tmp_path: Path, full_check: bool
) -> None:
    """Block 13 is after the checkpoint: even without the full scan, replay finds it corrupt."""
    path = _copy(pristine, tmp_path)
    store = ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    needle = _record(b"blocks", _height_key(13))(store)
    store.close(checkpoint=False)
    assert _flip_everywhere(path, needle) >= 1
    with pytest.raises(StoreError, match="block 13"):
        ChainStore.open(path, checkpoint_every=4, retain_heights=8, full_check=full_check)


@pytest.mark.parametrize("cut", ["half", "one page", "two pages"])
@pytest.mark.parametrize("which", ["data.mdb", "state/data.mdb"])
def test_truncated_file_is_refused(pristine: Path, tmp_path: Path, cut: str, which: str) -> None:
    path = _copy(pristine, tmp_path)
    data_file = path / which
    size = data_file.stat().st_size
    new_size = {"half": size // 2, "one page": size - 4096, "two pages": 8192}[cut]
    os.truncate(data_file, new_size)
    with pytest.raises(StoreError, match=r"truncated|unreadable"):
        ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    assert data_file.stat().st_size == new_size  # nothing was rewritten


def test_missing_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no chain database"):
        ChainStore.open(tmp_path / "nothing")


def test_missing_state_store_is_refused(pristine: Path, tmp_path: Path) -> None:
    path = _copy(pristine, tmp_path)
    shutil.rmtree(path / "state")
    with pytest.raises(StoreError, match="state store"):
        ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    assert not (path / "state").exists()


def test_checkpoint_ahead_of_the_block_log_is_refused(pristine: Path, tmp_path: Path) -> None:
    """The state store of a longer run of the same chain next to a shorter block log: the
    checkpoint leads the tip, which no crash can produce; refused."""
    longer = tmp_path / "longer"
    shutil.copytree(pristine, longer)
    store = ChainStore.open(longer, checkpoint_every=4, retain_heights=8)
    extend(store, BLOCKS + 6)
    store.close()
    path = _copy(pristine, tmp_path)
    shutil.rmtree(path / "state")
    shutil.copytree(longer / "state", path / "state")
    with pytest.raises(StoreError, match="outside the block log") as raised:
        ChainStore.open(path, checkpoint_every=4, retain_heights=8)
    assert "refused" in str(raised.value)

"""Snapshots (state sync): export at the tip and at an older retained height, import into a new
store, continue the chain there, and compare every header with an in-memory replay; a damaged,
truncated or forged snapshot file is refused and writes nothing."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import msgspec
import pytest

from strata.adapters import snapshot_cli
from strata.adapters.chain_store import SNAPSHOT_MAGIC, ChainStore, StoreError
from strata.core.merkle import verify_proof
from tests.storage.chain import build_store, extend, replay

BLOCKS = 22
FINAL = 30
REFERENCE = replay(FINAL)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of 22 blocks (checkpoint at 20, window 15..22), stopped without a checkpoint."""
    path = tmp_path_factory.mktemp("source") / "chain"
    store = build_store(path, BLOCKS, checkpoint_every=4, retain_heights=8)
    store.close(checkpoint=False)
    return path


def _export(source: Path, height: int) -> bytes:
    store = ChainStore.open(source, checkpoint_every=4, retain_heights=8)
    try:
        out = io.BytesIO()
        count = store.export_snapshot(height, out)
        assert count == len(REFERENCE.entries[height])
        return out.getvalue()
    finally:
        store.close(checkpoint=False)


@pytest.mark.parametrize("height", [BLOCKS, 21, 17, 15])
def test_export_import_continue(source: Path, tmp_path: Path, height: int) -> None:
    """Heights 21-22 come from pending changes, 15-17 from history (before the checkpoint)."""
    data = _export(source, height)
    target = tmp_path / "imported"
    store = ChainStore.import_snapshot(
        target, io.BytesIO(data), checkpoint_every=4, retain_heights=8
    )
    try:
        assert store.tip.height == height
        assert store.get_header(height) == REFERENCE.headers[height]
        assert list(store.readable_heights()) == [height]
        key = max(REFERENCE.entries[height])
        value, proof, root = store.read(key)
        assert value == REFERENCE.entries[height][key] and verify_proof(root, key, value, proof)
        with pytest.raises(StoreError, match="outside the retained window"):
            store.read(key, height - 1)
        extend(store, height + 5)
    finally:
        store.close(checkpoint=False)  # as a crash would: the reopen replays blocks
    reopened = ChainStore.open(target, checkpoint_every=4, retain_heights=8)
    try:
        extend(reopened, FINAL)
        for h in range(height, FINAL + 1):
            assert reopened.get_header(h) == REFERENCE.headers[h], h
        for h in reopened.readable_heights():
            assert dict(reopened.iter_entries(h)) == REFERENCE.entries[h]
        with pytest.raises(StoreError, match="missing"):
            reopened.get_block(height)
    finally:
        reopened.close()


def test_export_outside_window_is_refused(source: Path) -> None:
    store = ChainStore.open(source, checkpoint_every=4, retain_heights=8)
    try:
        with pytest.raises(StoreError, match="outside the retained window"):
            store.export_snapshot(14, io.BytesIO())
    finally:
        store.close(checkpoint=False)


def _refused(tmp_path: Path, data: bytes, match: str) -> None:
    target = tmp_path / "imported"
    with pytest.raises(StoreError, match=match):
        ChainStore.import_snapshot(target, io.BytesIO(data))
    assert not (target / "data.mdb").exists()


def test_damaged_snapshot_is_refused(source: Path, tmp_path: Path) -> None:
    data = _export(source, BLOCKS)
    middle = len(data) // 2
    flipped = data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]
    _refused(tmp_path, flipped, "checksum mismatch|does not decode|implausibly|ends early")
    _refused(tmp_path, data[:-1], "checksum mismatch")
    _refused(tmp_path, data[: len(data) // 3], "ends early|checksum")
    _refused(tmp_path, data + b"\x00", "checksum mismatch")
    _refused(tmp_path, b"NOTASNAP" + data[8:], "bad magic")


def _reframe(data: bytes, edit_entries: object) -> bytes:
    """Re-encode a snapshot with its entry frames edited and a valid checksum (a forgery)."""
    frames: list[bytes] = []
    at = len(SNAPSHOT_MAGIC)
    while True:
        size = int.from_bytes(data[at : at + 4], "big")
        at += 4
        if size == 0:
            break
        frames.append(data[at : at + size])
        at += size
    entries = [
        tuple(pair)
        for frame in frames[1:]
        for pair in msgspec.msgpack.decode(frame, type=list[tuple[bytes, bytes]])
    ]
    entries = edit_entries(entries)  # type: ignore[operator]
    body = SNAPSHOT_MAGIC + len(frames[0]).to_bytes(4, "big") + frames[0]
    payload = msgspec.msgpack.encode(entries)
    body += len(payload).to_bytes(4, "big") + payload + bytes(4)
    return body + hashlib.sha256(body).digest()


def test_forged_snapshot_is_refused(source: Path, tmp_path: Path) -> None:
    data = _export(source, BLOCKS)
    assert ChainStore.import_snapshot(tmp_path / "ok", io.BytesIO(_reframe(data, lambda e: e)))

    def change_value(entries: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        key, value = entries[3]
        return [*entries[:3], (key, value + b"\x00"), *entries[4:]]

    _refused(tmp_path, _reframe(data, change_value), "do not hash to|not to the state root")
    _refused(tmp_path, _reframe(data, lambda e: e[:-1]), "entries, the header says")
    _refused(
        tmp_path,
        _reframe(data, lambda e: [e[1], e[0], *e[2:]]),
        "strictly increasing",
    )


def test_cli_export_import(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "node"
    (data_dir).mkdir()
    # The CLI reads DIR/chain: give it a copy of the source store.
    shutil.copytree(source, data_dir / "chain")
    file = tmp_path / "state.snap"
    assert (
        snapshot_cli.main(
            ["snapshot", "export", "--data-dir", str(data_dir), "--height", "18", str(file)]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "height 18" in err and REFERENCE.headers[18].state_root.hex() in err
    assert file.exists() and not file.with_name("state.snap.partial").exists()
    imported = tmp_path / "imported"
    assert snapshot_cli.main(["import", "--data-dir", str(imported), str(file)]) == 0
    assert "is at height 18" in capsys.readouterr().err
    # A second import into the same directory, a bad height, a missing file: exit 2.
    assert snapshot_cli.main(["import", "--data-dir", str(imported), str(file)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    out = tmp_path / "x.snap"
    assert (
        snapshot_cli.main(["export", "--data-dir", str(data_dir), "--height", "3", str(out)]) == 2
    )
    assert "outside the retained window" in capsys.readouterr().err
    assert not out.exists()
    missing = tmp_path / "missing.snap"
    assert snapshot_cli.main(["import", "--data-dir", str(tmp_path / "n2"), str(missing)]) == 2
    assert snapshot_cli.main(["export", "--data-dir", str(data_dir)]) == 2
    assert "usage" in capsys.readouterr().err
    damaged = tmp_path / "damaged.snap"
    damaged.write_bytes(file.read_bytes()[:-5])
    assert snapshot_cli.main(["import", "--data-dir", str(tmp_path / "n3"), str(damaged)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err

"""The file DA layer: posts are durable, idempotent and in order; a torn tail left by ``kill -9``
is cut; a corrupt record is refused with its offset and nothing is rewritten; a reader in
another process sees records as they are appended."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strata.adapters.da_file import (
    LOCK_NAME,
    LOG_NAME,
    RECORD_HEADER_BYTES,
    CorruptRecord,
    FileDa,
    encode_record,
)
from strata.da import batch_hash, decode_batch, encode_batch
from strata.ports.da import DaClient, DaError, DaReference
from tests.da.file_driver import seal_all, workload_batches
from tests.helpers.chain import make_chain

ROOT = Path(__file__).resolve().parents[2]
COUNT = 6
BATCHES = workload_batches(COUNT)  # heights 1-3, 4-6, ..., 16-18
HASHES = [batch_hash(decode_batch(data)) for data in BATCHES]
RECORD_SIZES = [RECORD_HEADER_BYTES + len(data) for data in BATCHES]
OFFSETS = [sum(RECORD_SIZES[:i]) for i in range(COUNT + 1)]


def _other_batches() -> list[bytes]:
    """Valid batches of another chain history (same heights, other blocks)."""
    chain = make_chain()
    for _ in range(6):
        chain.block()
    blocks = [block for block, _ in chain.blocks]
    return [encode_batch(b) for b in seal_all(blocks, 3, chain.params.chain_id)]


OTHER = _other_batches()


def filled(path: Path, count: int = 3) -> Path:
    with FileDa(path) as da:
        for index in range(count):
            da.post(index, BATCHES[index])
    return path / LOG_NAME


def expected_ref(index: int) -> DaReference:
    return DaReference(
        layer="file",
        batch_index=index,
        batch_hash=HASHES[index],
        first_height=3 * index + 1,
        last_height=3 * index + 3,
        locator=str(OFFSETS[index]),
    )


# --- the port ---


def test_post_get_list_prove(tmp_path: Path) -> None:
    da: DaClient = FileDa(tmp_path / "da")
    refs = [da.post(index, data) for index, data in enumerate(BATCHES)]
    assert refs == [expected_ref(i) for i in range(COUNT)]
    assert [da.get(ref) for ref in refs] == list(BATCHES)
    assert da.list() == refs
    assert da.list(4) == refs[1:]
    assert da.list(4, 6) == refs[1:2]
    assert da.list(3, 4) == refs[0:2]
    assert da.list(18) == refs[-1:]
    assert da.list(19) == []
    assert da.list(1, 0) == []
    assert da.prove(refs[0]) is None
    assert (tmp_path / "da" / LOG_NAME).stat().st_size == OFFSETS[COUNT]


def test_reopen_rebuilds_the_same_index(tmp_path: Path) -> None:
    log = filled(tmp_path, COUNT)
    with FileDa(tmp_path) as writer, FileDa(tmp_path, read_only=True) as reader:
        for da in (writer, reader):
            assert da.list() == [expected_ref(i) for i in range(COUNT)]
            assert [da.get(ref) for ref in da.list()] == list(BATCHES)
            assert da.next_index == COUNT
            assert da.recovered_tail_bytes == 0 and da.corruption is None
    assert log.stat().st_size == OFFSETS[COUNT]


def test_post_is_idempotent(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    with FileDa(tmp_path) as da:
        for index in range(3):
            assert da.post(index, BATCHES[index]) == expected_ref(index)
        assert log.stat().st_size == OFFSETS[3]
        assert da.post(3, BATCHES[3]) == expected_ref(3)
        assert da.post(3, BATCHES[3]) == expected_ref(3)
    assert log.stat().st_size == OFFSETS[4]


def test_a_conflicting_post_is_refused(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    before = log.read_bytes()
    with FileDa(tmp_path) as da:
        with pytest.raises(DaError, match="conflicting post: batch 1 is already"):
            da.post(1, OTHER[1])
        with pytest.raises(DaError, match="conflicting post: batch 0"):
            da.post(0, OTHER[0])
    assert log.read_bytes() == before


def test_posts_must_be_consecutive_valid_and_continue_the_log(tmp_path: Path) -> None:
    with FileDa(tmp_path) as da:
        with pytest.raises(DaError, match="out of order: the next index is 0"):
            da.post(1, BATCHES[1])
        with pytest.raises(DaError, match="the batch says index 0"):
            da.post(1, BATCHES[0])
        with pytest.raises(DaError, match="not a valid encoded batch: BAD_MAGIC"):
            da.post(0, b"junk")
        da.post(0, BATCHES[0])
        with pytest.raises(DaError, match="out of order: the next index is 1"):
            da.post(2, BATCHES[2])
        with pytest.raises(DaError, match="does not continue"):
            da.post(1, OTHER[1])  # another history: its parent is not our batch 0
        assert da.list() == [expected_ref(0)]
    assert (tmp_path / LOG_NAME).stat().st_size == OFFSETS[1]


def test_get_checks_the_reference(tmp_path: Path) -> None:
    filled(tmp_path, 2)
    with FileDa(tmp_path) as da:
        ref = expected_ref(1)
        for wrong in (
            DaReference("file", 1, HASHES[0], 4, 6, ref.locator),
            DaReference("file", 1, HASHES[1], 4, 7, ref.locator),
            DaReference("file", 1, HASHES[1], 4, 6, "0"),
            DaReference("ethereum", 1, HASHES[1], 4, 6, ref.locator),
            DaReference("file", 2, HASHES[2], 7, 9, str(OFFSETS[2])),
        ):
            with pytest.raises(DaError):
                da.get(wrong)
        assert da.get(ref) == BATCHES[1]


def test_two_writers_in_turn(tmp_path: Path) -> None:
    first, second = FileDa(tmp_path), FileDa(tmp_path)
    first.post(0, BATCHES[0])
    second.post(1, BATCHES[1])  # sees record 0 under the lock
    first.post(2, BATCHES[2])
    assert second.post(2, BATCHES[2]) == expected_ref(2)
    with pytest.raises(DaError, match="conflicting"):
        second.post(1, OTHER[1])
    first.close()
    second.close()
    with FileDa(tmp_path) as da:
        assert da.list() == [expected_ref(i) for i in range(3)]


# --- readers ---


def test_a_reader_sees_appended_records(tmp_path: Path) -> None:
    reader = FileDa(tmp_path / "da", read_only=True)
    assert reader.list() == []
    assert not (tmp_path / "da").exists()  # a reader creates nothing
    with pytest.raises(DaError, match="read-only"):
        reader.post(0, BATCHES[0])
    writer = FileDa(tmp_path / "da")
    writer.post(0, BATCHES[0])
    writer.post(1, BATCHES[1])
    assert reader.refresh() == 2
    assert reader.refresh() == 0
    writer.post(2, BATCHES[2])
    assert reader.list() == [expected_ref(i) for i in range(3)]  # list refreshes itself
    writer.post(3, BATCHES[3])
    assert reader.get(expected_ref(3)) == BATCHES[3]  # so does get of an unseen index
    writer.close()
    reader.close()


def test_a_reader_waits_for_an_unfinished_record(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    record = encode_record(2, BATCHES[2])
    with FileDa(tmp_path, read_only=True) as reader:
        with log.open("ab") as file:
            file.write(record[:100])
        assert reader.refresh() == 0
        assert log.stat().st_size == OFFSETS[2] + 100  # left alone
        with log.open("ab") as file:
            file.write(record[100:])
        assert reader.refresh() == 1
        assert reader.get(expected_ref(2)) == BATCHES[2]


def test_an_unfinished_record_of_a_live_writer_is_not_cut(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    with log.open("ab") as file:
        file.write(encode_record(2, BATCHES[2])[:100])
    lock = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another process is appending
    try:
        with FileDa(tmp_path) as da:
            assert da.next_index == 2 and da.recovered_tail_bytes == 0
        assert log.stat().st_size == OFFSETS[2] + 100
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    with FileDa(tmp_path) as da:  # the writer is gone: the tail was torn
        assert da.recovered_tail_bytes == 100
    assert log.stat().st_size == OFFSETS[2]


def test_a_reader_in_another_process_follows_a_writer(tmp_path: Path) -> None:
    count = 12
    writer = driver(tmp_path, "--batches", str(count))
    seen = 0
    with FileDa(tmp_path, read_only=True) as reader:
        deadline = time.monotonic() + 60
        while seen < count and time.monotonic() < deadline:
            seen += reader.refresh()
            time.sleep(0.002)
        assert writer.wait(timeout=60) == 0
        seen += reader.refresh()
        assert seen == count
        assert [reader.get(ref) for ref in reader.list()] == list(workload_batches(count))


# --- torn tails and corruption ---


@pytest.mark.parametrize("cut", [1, 30, RECORD_HEADER_BYTES - 1, RECORD_HEADER_BYTES, 60, -1])
def test_a_torn_tail_is_cut_on_open(tmp_path: Path, cut: int) -> None:
    log = filled(tmp_path, 3)
    torn = encode_record(3, BATCHES[3])[:cut]
    with log.open("ab") as file:
        file.write(torn)
    with FileDa(tmp_path, read_only=True) as reader:  # a reader never cuts
        assert reader.next_index == 3
    assert log.stat().st_size == OFFSETS[3] + len(torn)
    with FileDa(tmp_path) as da:
        assert da.recovered_tail_bytes == len(torn)
        assert da.corruption is None
        assert log.stat().st_size == OFFSETS[3]
        assert da.list() == [expected_ref(i) for i in range(3)]
        assert da.post(3, BATCHES[3]) == expected_ref(3)
    with FileDa(tmp_path) as da:
        assert da.next_index == 4 and da.recovered_tail_bytes == 0


def test_a_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    with log.open("ab") as file:
        file.write(bytes(5000))  # a file extended but never written (after a power loss)
    with FileDa(tmp_path) as da:
        assert da.recovered_tail_bytes == 5000 and da.corruption is None
    assert log.stat().st_size == OFFSETS[2]


def test_a_garbage_tail_is_refused_not_cut(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    with log.open("ab") as file:
        file.write(random.Random(5).randbytes(300))
    before = log.read_bytes()
    with FileDa(tmp_path) as da:
        assert da.corruption is not None and da.corruption.offset == OFFSETS[2]
        with pytest.raises(CorruptRecord, match=f"offset {OFFSETS[2]}"):
            da.post(2, BATCHES[2])
    assert log.read_bytes() == before


# where to flip, inside record 1: magic, index, length, crc, sha256, batch magic, compressed data
FLIPS = {"magic": 0, "index": 9, "length": 14, "crc": 18, "sha256": 40, "data": 53, "frame": 120}


@pytest.mark.parametrize("where", FLIPS)
def test_a_flipped_byte_is_refused_with_its_offset(tmp_path: Path, where: str) -> None:
    log = filled(tmp_path, 3)
    blob = bytearray(log.read_bytes())
    blob[OFFSETS[1] + FLIPS[where]] ^= 0x01
    log.write_bytes(bytes(blob))
    for read_only in (True, False):
        with FileDa(tmp_path, read_only=read_only) as da:
            assert da.corruption is not None
            assert da.corruption.offset == OFFSETS[1]
            assert f"corrupt record at offset {OFFSETS[1]}" in str(da.corruption)
            refs = da.list()
            # the good record before it, then one reference standing for the bad one
            assert refs[0] == expected_ref(0)
            assert len(refs) == 2 and refs[1].batch_index == 1 and refs[1].batch_hash == b""
            assert refs[1].first_height == 4 and refs[1].locator == str(OFFSETS[1])
            assert da.get(refs[0]) == BATCHES[0]
            with pytest.raises(CorruptRecord, match=f"offset {OFFSETS[1]}"):
                da.get(refs[1])
            with pytest.raises(CorruptRecord):
                da.get(expected_ref(2))
            if not read_only:
                with pytest.raises(CorruptRecord):
                    da.post(3, BATCHES[3])
                with pytest.raises(CorruptRecord):
                    da.post(1, BATCHES[1])
    assert log.read_bytes() == bytes(blob)  # nothing rewritten, nothing cut


@pytest.mark.parametrize("where", ["length", "data"])
def test_a_flipped_byte_in_the_last_record_is_not_taken_for_a_torn_tail(
    tmp_path: Path, where: str
) -> None:
    log = filled(tmp_path, 3)
    blob = bytearray(log.read_bytes())
    blob[OFFSETS[2] + FLIPS[where]] ^= 0x80
    log.write_bytes(bytes(blob))
    with FileDa(tmp_path) as da:
        assert da.corruption is not None and da.corruption.offset == OFFSETS[2]
        assert da.recovered_tail_bytes == 0
    assert log.read_bytes() == bytes(blob)


def test_get_rechecks_the_record_on_disk(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    with FileDa(tmp_path) as da:
        with log.open("r+b") as file:  # bit rot after open
            file.seek(OFFSETS[1] + 200)
            byte = file.read(1)
            file.seek(OFFSETS[1] + 200)
            file.write(bytes([byte[0] ^ 0x10]))
        assert da.get(expected_ref(0)) == BATCHES[0]
        with pytest.raises(CorruptRecord, match=f"offset {OFFSETS[1]}: the data checksum fails"):
            da.get(expected_ref(1))


def test_a_record_that_breaks_the_chain_is_corrupt(tmp_path: Path) -> None:
    log = filled(tmp_path, 1)
    with log.open("ab") as file:  # well-formed record, but of another history
        file.write(encode_record(1, OTHER[1]))
    with FileDa(tmp_path) as da:
        assert da.corruption is not None
        assert "parent batch hash" in da.corruption.reason


# --- kill -9 ---


def driver(directory: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT}")
    return subprocess.Popen(
        [sys.executable, "-m", "tests.da.file_driver", str(directory), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def run_driver(directory: Path, *args: str) -> tuple[int, dict[int, tuple[str, str]], str]:
    process = driver(directory, *args)
    out, err = process.communicate(timeout=120)
    acks: dict[int, tuple[str, str]] = {}
    for line in out.splitlines():
        if line.startswith("ACK"):
            _, index, name, locator = line.split()
            acks[int(index)] = (name, locator)
    return process.returncode, acks, err


def check_log(directory: Path, acks: dict[int, tuple[str, str]], count: int) -> FileDa:
    """Every acknowledged post is there, as acknowledged; the log is whole up to its end."""
    da = FileDa(directory)
    batches = workload_batches(count)
    assert da.corruption is None, da.corruption
    refs = da.list()
    assert [ref.batch_index for ref in refs] == list(range(len(refs)))
    assert len(refs) >= len(acks)
    for index, (name, locator) in acks.items():
        assert (refs[index].batch_hash.hex(), refs[index].locator) == (name, locator)
    for ref in refs:
        assert da.get(ref) == batches[ref.batch_index]
    assert (directory / LOG_NAME).stat().st_size == offsets_of(count)[len(refs)]
    return da


def offsets_of(count: int) -> list[int]:
    sizes = [RECORD_HEADER_BYTES + len(data) for data in workload_batches(count)]
    return [sum(sizes[:i]) for i in range(count + 1)]


@pytest.mark.parametrize(
    ("point", "crash_at", "seed"),
    [
        ("torn", 0, 1),
        ("torn", 3, 2),
        ("torn", 3, 3),
        ("unsynced", 0, 0),
        ("unsynced", 4, 0),
        ("unacked", 2, 0),
    ],
)
def test_kill9_mid_post_then_reopen(tmp_path: Path, point: str, crash_at: int, seed: int) -> None:
    count = 6
    code, acks, err = run_driver(
        tmp_path,
        "--batches",
        str(count),
        "--crash-point",
        point,
        "--crash-at",
        str(crash_at),
        "--seed",
        str(seed),
    )
    assert code == -signal.SIGKILL, err
    assert sorted(acks) == list(range(crash_at))  # killed inside the post of crash_at
    left = (tmp_path / LOG_NAME).stat().st_size - offsets_of(count)[crash_at]
    assert left > 0  # the killed post got some of its record out
    da = check_log(tmp_path, acks, count)
    assert da.recovered_tail_bytes == (left if point == "torn" else 0)
    # a torn record is cut; a whole one (written, killed before fsync or before the
    # acknowledgement) survived in the page cache and is kept: re-posting it is idempotent
    assert da.next_index == (crash_at if point == "torn" else crash_at + 1)
    da.close()
    code, acks_after, err = run_driver(tmp_path, "--batches", str(count))
    assert code == 0, err
    for index, value in acks.items():
        assert acks_after[index] == value
    with check_log(tmp_path, acks_after, count) as da:
        assert da.next_index == count


@pytest.mark.long
def test_kill9_torn_at_many_points(tmp_path: Path) -> None:
    count = 6
    for seed in range(40):
        directory = tmp_path / str(seed)
        crash_at = seed % count
        code, acks, err = run_driver(
            directory,
            "--batches",
            str(count),
            "--crash-point",
            "torn",
            "--crash-at",
            str(crash_at),
            "--seed",
            str(seed),
        )
        assert code == -signal.SIGKILL, err
        check_log(directory, acks, count).close()
        code, acks_after, err = run_driver(directory, "--batches", str(count))
        assert code == 0, err
        check_log(directory, acks_after, count).close()


@pytest.mark.long
def test_kill9_at_random_times(tmp_path: Path) -> None:
    """Kills at random moments of long runs, each followed by a check; the last run finishes."""
    rng = random.Random(11)
    count = 60
    workload_batches(count)
    for _ in range(12):
        process = driver(tmp_path, "--batches", str(count))
        assert process.stdout is not None
        assert process.stdout.readline().startswith("START")
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
        acks = {
            int(line.split()[1]): (line.split()[2], line.split()[3])
            for line in out.splitlines()
            if line.startswith("ACK")
        }
        check_log(tmp_path, acks, count).close()
    code, acks, err = run_driver(tmp_path, "--batches", str(count))
    assert code == 0, err
    with check_log(tmp_path, acks, count) as da:
        assert da.next_index == count

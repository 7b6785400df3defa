"""The file-backed DA layer: an append-only log of encoded batches (``docs/da.md``).

Layout
------
``DIR/batches.log`` is a sequence of records, one per batch index (0, 1, 2, ... in order)::

    magic     4 bytes   b"SDA1"
    index     8 bytes   big-endian batch index
    length    4 bytes   big-endian length of data (1 .. MAX_BATCH_BYTES)
    crc32     4 bytes   big-endian CRC-32 of magic ‖ index ‖ length ‖ sha256 (the record header)
    sha256   32 bytes   SHA-256 of data
    data                the encoded batch (``strata.da.batch.encode_batch``)

``DIR/batches.lock`` is only ever locked (``flock``), never written: whoever appends or cuts the
log holds it, so writers in several processes serialize, and a reader never takes it.

Durability and recovery
-----------------------
A post writes its whole record with one ``pwrite`` at the end of the last record, then ``fsync``;
it is acknowledged (returns its reference) only after that. A crash mid-post leaves an incomplete
record at the tail: fewer bytes than a record header, a valid header whose data runs past the end
of the file, or zero bytes where the file was extended but not written. That torn tail was never
acknowledged; it is cut off (``ftruncate`` + ``fsync``) when a writable instance opens, or before
the next post, and the number of bytes cut is kept in :attr:`FileDa.recovered_tail_bytes`.
Anything else that does not check out is a corrupt record, and nothing is rewritten: a record
header whose CRC fails (and is not all zero), a data checksum that fails, an index out of
sequence, a length over the bound, data that is not a batch, or a batch that does not continue
the previous one (index, parent batch hash, heights). An all-zero region at the tail is taken as
torn because no record starts with a zero byte; a tail whose header is intact but whose data is
not is refused rather than guessed at.

A corrupt record ends the readable log without making the records before it unreadable: the log
opens, :attr:`FileDa.corruption` holds the :class:`CorruptRecord` (with the record's offset),
:meth:`FileDa.list` shows the good records and then one reference for the bad one (its
``batch_hash`` is empty: it is not known), and :meth:`FileDa.get` of that reference, and every
:meth:`FileDa.post`, raise the :class:`CorruptRecord`. A verifier thus checks every batch before
the damage and stops at it with the offset.

At open the whole log is read once: each record's checksums are checked and its batch header
decoded (``decode_batch_header``: the blocks were checked in full when posted) to rebuild the
in-memory index of (index, batch hash, heights, offset) that :meth:`FileDa.list` answers from.
:meth:`FileDa.get` re-reads a record and checks it again against the index before returning it.

Readers
-------
Another process (a verifier with ``--follow``) may open the same directory, with
``read_only=True`` to be sure it never writes: it sees records appended later after
:meth:`FileDa.refresh`, which :meth:`FileDa.list` (and :meth:`FileDa.get` of an index not yet
seen) call themselves. A record still being written is not visible until it is complete.
"""

from __future__ import annotations

import builtins
import fcntl
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from strata.core.codec import encode
from strata.core.hashing import sha256
from strata.da.batch import (
    MAX_BATCH_BYTES,
    ZERO_HASH,
    BatchError,
    batch_hash,
    decode_batch,
    decode_batch_header,
)
from strata.ports.da import DaError, DaReference, DaUnavailable

LAYER: Final = "file"
LOG_NAME: Final = "batches.log"
LOCK_NAME: Final = "batches.lock"
RECORD_MAGIC: Final = b"SDA1"
_HEADER: Final = struct.Struct(">4sQII32s")
_CRC_PREFIX: Final = struct.Struct(">4sQI")  # the header fields before the crc
RECORD_HEADER_BYTES: Final = _HEADER.size  # 52
_ZERO_CHUNK: Final = 1 << 20


class CorruptRecord(DaError):
    """A record of the log does not check out; ``offset`` is where it starts in the file."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt record at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Entry:
    index: int
    offset: int
    length: int
    data_sha256: bytes
    batch_hash: bytes
    first_height: int
    last_height: int

    def reference(self) -> DaReference:
        return DaReference(
            layer=LAYER,
            batch_index=self.index,
            batch_hash=self.batch_hash,
            first_height=self.first_height,
            last_height=self.last_height,
            locator=str(self.offset),
        )


def _record_crc(index: int, length: int, data_sha256: bytes) -> int:
    return zlib.crc32(_CRC_PREFIX.pack(RECORD_MAGIC, index, length) + data_sha256)


def encode_record(index: int, data: bytes) -> bytes:
    """The bytes of one log record holding ``data`` as batch ``index``."""
    digest = sha256(data)
    crc = _record_crc(index, len(data), digest)
    return _HEADER.pack(RECORD_MAGIC, index, len(data), crc, digest) + data


class FileDa:
    """A :class:`~strata.ports.da.DaClient` over an append-only log in directory ``path``.

    With ``read_only=False`` (the default) the directory and the log are created if missing
    and a torn tail is cut at open (unless another process is appending at that moment). With
    ``read_only=True`` nothing is ever created, locked or written, and :meth:`post` raises.

    Raises
    ------
    DaError
        When the log cannot be opened. A corrupt record does not prevent opening: see
        :attr:`corruption`.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.log_path = self.path / LOG_NAME
        self.read_only = read_only
        self.recovered_tail_bytes = 0
        """Bytes of torn tail cut off by this instance (at open or before a post)."""
        self.corruption: CorruptRecord | None = None
        """The first record that does not check out; the readable log ends before it."""
        self._entries: list[_Entry] = []
        self._end = 0  # the end of the last complete record
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._broken: str | None = None
        self._closed = False
        self._mutex = threading.RLock()
        try:
            if read_only:
                if self.log_path.exists():
                    self._fd = os.open(self.log_path, os.O_RDONLY)
            else:
                self._open_for_writing()
        except OSError as error:
            self.close()
            raise DaError(f"{self.log_path}: cannot open: {error}") from error
        try:
            self._scan(repair=False)
            if not read_only:
                self._repair_tail()
        except BaseException:
            self.close()
            raise

    # --- the DaClient port ---

    def post(self, index: int, data: bytes) -> DaReference:
        """Append the encoded batch ``index`` and ``fsync``; return its reference.

        Idempotent by (index, batch hash): the same batch (the same bytes) again gives the same
        reference.

        Raises
        ------
        DaError
            ``data`` is not a valid encoded batch of index ``index``; another batch is already
            at ``index``; ``index`` is not the next one; the batch does not continue the last
            one (parent batch hash, heights); the instance is read-only or broken;
            :class:`CorruptRecord` if the log holds a corrupt record.
        DaUnavailable
            The write or ``fsync`` failed (disk full, I/O error) and was rolled back.
        """
        try:
            batch = decode_batch(data)
        except BatchError as error:
            raise DaError(f"batch {index} is not a valid encoded batch: {error}") from None
        header = batch.header
        if header.index != index:
            raise DaError(f"posted as batch {index}, but the batch says index {header.index}")
        name = batch_hash(batch)
        digest = sha256(data)
        with self._mutex:
            fd = self._writable_fd()
            with self._write_lock():
                self._scan(repair=True)  # what other writers appended; a crashed one's tail
                self._check_not_corrupt()
                if index < len(self._entries):
                    entry = self._entries[index]
                    if entry.batch_hash == name and entry.data_sha256 == digest:
                        return entry.reference()
                    raise DaError(
                        f"conflicting post: batch {index} is already {entry.batch_hash.hex()} "
                        f"in {self.log_path}, not {name.hex()}"
                    )
                if index > len(self._entries):
                    raise DaError(
                        f"batch {index} posted out of order: the next index is {len(self._entries)}"
                    )
                reason = self._check_continues(index, header.parent_batch_hash, header.first_height)
                if reason:
                    raise DaError(f"batch {index} does not continue {self.log_path}: {reason}")
                offset = self._end
                record = encode_record(index, data)
                try:
                    _pwrite_all(fd, record, offset)
                    os.fsync(fd)
                except OSError as error:
                    self._roll_back(fd, offset, error)
                    raise DaUnavailable(f"{self.log_path}: write failed: {error}") from error
                self._end = offset + len(record)
                entry = _Entry(
                    index=index,
                    offset=offset,
                    length=len(data),
                    data_sha256=digest,
                    batch_hash=name,
                    first_height=header.first_height,
                    last_height=header.last_height,
                )
                self._entries.append(entry)
                return entry.reference()

    def get(self, ref: DaReference) -> bytes:
        """The encoded batch ``ref`` names, re-read and re-checked (CRC, SHA-256, index).

        Raises
        ------
        DaError
            ``ref`` is not of this layer, names a batch the log does not hold, or differs from
            the log's record at its index; :class:`CorruptRecord` if the record fails a check.
        """
        with self._mutex:
            if ref.layer != LAYER:
                raise DaError(f"a reference of layer {ref.layer!r}, not {LAYER!r}")
            if ref.batch_index >= len(self._entries):
                self.refresh()
            if ref.batch_index >= len(self._entries):
                self._check_not_corrupt()
            if not 0 <= ref.batch_index < len(self._entries):
                raise DaError(
                    f"{self.log_path} holds batches 0..{len(self._entries) - 1}, "
                    f"not {ref.batch_index}"
                )
            entry = self._entries[ref.batch_index]
            if entry.reference() != ref:
                raise DaError(
                    f"batch {ref.batch_index} in {self.log_path} is {entry.reference()}, "
                    f"the reference says {ref}"
                )
            fd = self._readable_fd()
            try:
                raw = _pread_exact(fd, RECORD_HEADER_BYTES + entry.length, entry.offset)
            except OSError as error:
                raise DaUnavailable(f"{self.log_path}: read failed: {error}") from error
            if raw is None:
                raise CorruptRecord(self.log_path, entry.offset, "the record is cut short")
            index, length, digest = self._parse_header(raw[:RECORD_HEADER_BYTES], entry.offset)
            data = raw[RECORD_HEADER_BYTES:]
            if (index, length) != (entry.index, entry.length):
                raise CorruptRecord(self.log_path, entry.offset, "the record header changed")
            if sha256(data) != digest or digest != entry.data_sha256:
                raise CorruptRecord(self.log_path, entry.offset, "the data checksum fails")
            return data

    def list(
        self, first_height: int = 1, last_height: int | None = None
    ) -> builtins.list[DaReference]:
        """References, in batch-index order, whose heights meet ``[first_height, last_height]``
        (``None``: no upper bound). Reads records appended since the last call first.

        After a corrupt record (:attr:`corruption`) comes one reference for it, at the next
        index and height, with an empty ``batch_hash``; :meth:`get` of it raises the
        :class:`CorruptRecord`.
        """
        with self._mutex:
            self.refresh()
            refs = [
                entry.reference()
                for entry in self._entries
                if entry.last_height >= first_height
                and (last_height is None or entry.first_height <= last_height)
            ]
            if self.corruption is not None:
                height = self._entries[-1].last_height + 1 if self._entries else 1
                if last_height is None or height <= last_height:
                    refs.append(
                        DaReference(
                            layer=LAYER,
                            batch_index=len(self._entries),
                            batch_hash=b"",
                            first_height=height,
                            last_height=height,
                            locator=str(self.corruption.offset),
                        )
                    )
            return refs

    def prove(self, ref: DaReference) -> bytes | None:
        """A file has no inclusion proofs."""
        return None

    # --- beyond the port ---

    def refresh(self) -> int:
        """Read the records appended since the last read (by this or another process); return
        how many there were. A record still being written is left for a later call.

        A new record that does not check out becomes :attr:`corruption` (nothing after it is
        read).
        """
        with self._mutex:
            if self._closed:
                raise DaError(f"{self.log_path} is closed")
            if self._fd is None and self.read_only:
                try:
                    self._fd = os.open(self.log_path, os.O_RDONLY)
                except FileNotFoundError:
                    return 0
                except OSError as error:
                    raise DaUnavailable(f"{self.log_path}: cannot open: {error}") from error
            before = len(self._entries)
            self._scan(repair=False)
            return len(self._entries) - before

    @property
    def next_index(self) -> int:
        """The index the next post must have (as of the last read)."""
        return len(self._entries)

    def close(self) -> None:
        self._closed = True
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)

    def __enter__(self) -> FileDa:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ---

    def _open_for_writing(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        created = not self.log_path.exists()
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._lock_fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if created:  # the new directory entries must survive a crash too
            directory = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _repair_tail(self) -> None:
        """Cut a torn tail now if no other process is appending (else the next post will)."""
        assert self._fd is not None and self._lock_fd is not None
        if os.fstat(self._fd).st_size == self._end:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a writer is appending: its record is not torn, only unfinished
        try:
            self._scan(repair=True)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write_lock(self) -> _FileLock:
        assert self._lock_fd is not None
        return _FileLock(self._lock_fd)

    def _writable_fd(self) -> int:
        if self.read_only:
            raise DaError(f"{self.path} is open read-only")
        if self._broken is not None:
            raise DaError(f"{self.log_path}: {self._broken}; reopen the log")
        if self._fd is None:
            raise DaError(f"{self.log_path} is closed")
        return self._fd

    def _check_not_corrupt(self) -> None:
        if self.corruption is not None:
            known = self.corruption
            raise CorruptRecord(known.path, known.offset, known.reason)

    def _readable_fd(self) -> int:
        if self._fd is None:
            raise DaError(f"{self.log_path} is closed or does not exist")
        return self._fd

    def _roll_back(self, fd: int, offset: int, error: OSError) -> None:
        """Cut a failed append; if even that fails the instance refuses further posts."""
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        except OSError as second:
            self._broken = f"a failed append ({error}) could not be rolled back ({second})"

    def _check_continues(self, index: int, parent_batch_hash: bytes, first_height: int) -> str:
        """Why batch ``index`` does not continue the log's last batch ('' if it does)."""
        if not self._entries:
            if parent_batch_hash != ZERO_HASH:
                return f"batch {index} is the first, but its parent batch hash is not zero"
            return ""
        last = self._entries[-1]
        if parent_batch_hash != last.batch_hash:
            return (
                f"batch {index} has parent batch hash {parent_batch_hash.hex()}, but batch "
                f"{last.index} is {last.batch_hash.hex()}"
            )
        if first_height != last.last_height + 1:
            return (
                f"batch {index} starts at height {first_height}, but batch {last.index} "
                f"ends at {last.last_height}"
            )
        return ""

    def _parse_header(self, raw: bytes, offset: int) -> tuple[int, int, bytes]:
        magic, index, length, crc, digest = _HEADER.unpack(raw)
        if magic != RECORD_MAGIC or crc != _record_crc(index, length, digest):
            raise CorruptRecord(self.log_path, offset, "the record header checksum fails")
        return index, length, digest

    def _scan(self, repair: bool) -> None:
        """Read the complete records after ``self._end`` into the index.

        At an incomplete tail: with ``repair`` (the caller holds the write lock) cut it off,
        else stop before it (a writer may be appending it). At a corrupt record: record it in
        :attr:`corruption` and read no further, now or later.
        """
        fd = self._fd
        if fd is None or self.corruption is not None:
            return
        size = os.fstat(fd).st_size
        if size < self._end:
            raise DaError(
                f"{self.log_path} shrank to {size} bytes, below its last record end {self._end}"
            )
        while self._end < size:
            offset = self._end
            try:
                torn = self._read_record(fd, offset, size)
            except CorruptRecord as error:
                self.corruption = error
                return
            except OSError as error:
                raise DaUnavailable(f"{self.log_path}: read failed: {error}") from error
            if torn:
                if repair:
                    try:
                        os.ftruncate(fd, offset)
                        os.fsync(fd)
                    except OSError as error:
                        raise DaUnavailable(f"{self.log_path}: cannot cut: {error}") from error
                    self.recovered_tail_bytes += size - offset
                return

    def _read_record(self, fd: int, offset: int, size: int) -> bool:
        """Index the record at ``offset``; return True if it is an incomplete (torn) tail."""
        raw = _pread_exact(fd, RECORD_HEADER_BYTES, offset)
        if raw is None or size - offset < RECORD_HEADER_BYTES:
            return True
        try:
            index, length, digest = self._parse_header(raw, offset)
        except CorruptRecord:
            if _is_zero(fd, offset, size):
                return True
            raise
        if index != len(self._entries):
            raise CorruptRecord(
                self.log_path, offset, f"index {index} where {len(self._entries)} belongs"
            )
        if not 0 < length <= MAX_BATCH_BYTES:
            raise CorruptRecord(self.log_path, offset, f"length {length} out of bounds")
        end = offset + RECORD_HEADER_BYTES + length
        if end > size:
            return True
        data = _pread_exact(fd, length, offset + RECORD_HEADER_BYTES)
        if data is None:
            return True
        if sha256(data) != digest:
            raise CorruptRecord(self.log_path, offset, "the data checksum fails")
        try:
            header = decode_batch_header(data)
        except BatchError as error:
            raise CorruptRecord(self.log_path, offset, f"not a batch: {error}") from None
        if header.index != index:
            raise CorruptRecord(self.log_path, offset, f"holds batch {header.index}")
        reason = self._check_continues(index, header.parent_batch_hash, header.first_height)
        if reason:
            raise CorruptRecord(self.log_path, offset, reason)
        self._entries.append(
            _Entry(
                index=index,
                offset=offset,
                length=length,
                data_sha256=digest,
                batch_hash=sha256(encode(header)),  # batch_hash, without decoding the blocks
                first_height=header.first_height,
                last_height=header.last_height,
            )
        )
        self._end = end
        return False


class _FileLock:
    """``flock`` held for a ``with`` block (blocking: holders keep it for one append)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_exact(fd: int, length: int, offset: int) -> bytes | None:
    """``length`` bytes at ``offset``, or None if the file ends first."""
    chunks: list[bytes] = []
    remaining = length
    while remaining:
        chunk = os.pread(fd, remaining, offset)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _is_zero(fd: int, offset: int, size: int) -> bool:
    """Whether every byte from ``offset`` to ``size`` is zero (a file extended, never written)."""
    while offset < size:
        chunk = os.pread(fd, min(_ZERO_CHUNK, size - offset), offset)
        if not chunk:
            return True
        if chunk.count(0) != len(chunk):
            return False
        offset += len(chunk)
    return True

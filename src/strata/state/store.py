"""The state container: one table per module, a transaction journal, and canonical leaves.

Layout
------
:class:`State` holds named :class:`Table` objects, one or more per module, each a dict from a typed
key to an immutable record. A module's ``state.py`` is the only code that reads or writes its
tables. Each table knows how to turn its entries into Merkle leaves (``prefix ‖ encoded key`` →
canonical record bytes), so the state root commits to every table without knowing their types.

The order books are consensus state too, but they are indexed structures rather than tables; they
live in ``State.books`` (owned by the ``book`` module, which provides their leaves).

Journal
-------
``begin()`` opens a journal; every write then records the value it replaced; ``rollback()`` puts
them back in reverse order and ``commit()`` forgets them. Journals do not nest. The state root is
refused while a journal is open. Books are not journaled: the phases that touch books (matching,
risk) never roll back, by construction (check, then apply).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

from strata.core.codec import encode
from strata.core.errors import ErrorCode, InvariantViolation
from strata.state.records import ChainTip as ChainTip

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Any = object()


class Journal:
    """Undo log shared by all tables of one :class:`State`."""

    __slots__ = ("spare", "undo")

    def __init__(self) -> None:
        self.undo: list[tuple[MutableMapping[Any, Any], Any, Any]] | None = None
        """The open journal's entries, or ``None`` when no journal is open."""
        self.spare: list[tuple[MutableMapping[Any, Any], Any, Any]] = []
        """The list the next journal records into (emptied when a journal closes): one list for
        every journal, not a new one for each transaction."""


class KeyCodec(NamedTuple):
    """How a table's keys become bytes (the tail of their Merkle key) and back."""

    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]


def _same(key: bytes) -> bytes:
    return key


BYTES_KEY = KeyCodec(_same, _same)
"""Keys that are already bytes (addresses, public keys, ``b""``)."""


def int_key(width: int) -> KeyCodec:
    """Non-negative integer keys as ``width`` big-endian bytes (so byte order is number order)."""

    def encode_int(key: int) -> bytes:
        return key.to_bytes(width, "big")

    def decode_int(data: bytes) -> int:
        if len(data) != width:
            raise ValueError(f"a {width}-byte key, got {len(data)} bytes")
        return int.from_bytes(data, "big")

    return KeyCodec(encode_int, decode_int)


class Table(Generic[K, V]):
    """A journaled map owned by one module.

    ``prefix`` is the table's one-byte leaf prefix (unique in the state); ``key`` turns keys into
    bytes and back; records are encoded canonically (``core.codec``) and decoded as
    ``value_type``, strictly, so a stored state reads back exactly as it was written.
    """

    __slots__ = (
        "data",
        "decode_key",
        "decode_value",
        "dirty",
        "encode_key",
        "encode_value",
        "journal",
        "name",
        "prefix",
        "value_type",
    )

    def __init__(
        self, name: str, prefix: int, journal: Journal, key: KeyCodec, value_type: Any
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.journal = journal
        self.encode_key: Callable[[K], bytes] = key.encode
        self.decode_key: Callable[[bytes], K] = key.decode
        self.encode_value: Callable[[V], bytes] = encode
        self.value_type = value_type
        self.decode_value: Callable[[bytes], V] = msgspec.msgpack.Decoder(value_type).decode
        # Typed as a mapping, not a dict: compiled (strata/compiled.py), a dict's get, `in` and
        # len would skip a dict subclass's own, and the verifier watches these maps with one
        # (verifier/witness.py: every key a block reads, for fraud proofs).
        self.data: MutableMapping[K, V] = {}
        self.dirty: set[K] = set()
        """Keys written since the commitment last consumed them (an incremental state root
        rehashes only these). Never iterated in ring 0 without sorting."""

    # get, put and delete test for an exact dict, and then do what the other branch does: in
    # that branch, compiled code uses the dict's own operations (``data`` is typed as a mapping,
    # so a plain ``data.get`` is a method call by name, about three times the instructions). A
    # dict subclass (the verifier's watched maps) takes the other branch and keeps its own.

    def get(self, key: K) -> V | None:
        """The value of ``key``, or ``None``."""
        data = self.data
        if type(data) is dict:
            return data.get(key)
        return data.get(key)

    def put(self, key: K, value: V) -> None:
        data = self.data
        undo = self.journal.undo
        if type(data) is dict:
            if undo is not None:
                undo.append((data, key, data.get(key, _MISSING)))
            data[key] = value
        else:
            if undo is not None:
                undo.append((data, key, data.get(key, _MISSING)))
            data[key] = value
        self.dirty.add(key)

    def delete(self, key: K) -> None:
        data = self.data
        if type(data) is dict:
            if key not in data:
                return
            old = data[key]
            del data[key]
        else:
            if key not in data:
                return
            old = data[key]
            del data[key]
        undo = self.journal.undo
        if undo is not None:
            undo.append((data, key, old))
        self.dirty.add(key)

    def copy(self, journal: Journal) -> Table[K, V]:
        """An independent copy on ``journal`` (records are immutable, so the map is copied)."""
        key = KeyCodec(self.encode_key, self.decode_key)
        clone: Table[K, V] = Table(self.name, self.prefix, journal, key, self.value_type)
        clone.data = dict(self.data)
        clone.dirty = set(self.dirty)
        return clone

    def load(self, key_bytes: bytes, value_bytes: bytes) -> None:
        """Put one stored entry (the tail of its Merkle key and its value bytes), outside any
        journal. Raises ``ValueError`` or ``msgspec.DecodeError`` on bytes that do not decode."""
        self.data[self.decode_key(key_bytes)] = self.decode_value(value_bytes)

    def leaves(self) -> list[tuple[bytes, bytes]]:
        """``(prefix ‖ key bytes, value bytes)`` for every entry (any order: the tree sorts)."""
        head = bytes((self.prefix,))
        ek = self.encode_key
        ev = self.encode_value
        return [(head + ek(key), ev(value)) for key, value in self.data.items()]


class State:
    """All consensus state. Construct through ``stf.genesis``; copy with ``stf.copy_state``."""

    __slots__ = ("books", "commitment", "journal", "tables", "tip")

    def __init__(self) -> None:
        self.journal = Journal()
        self.tables: dict[str, Table[Any, Any]] = {}
        self.books: MutableMapping[int, Any] = {}  # a mapping, as Table.data
        self.tip = ChainTip(-1, 0, bytes(32))
        self.commitment: Any = None
        """How the state root is computed: ``None`` for the readable reference tree over every
        entry, or an incremental commitment (``stf.commitment``) that rehashes only dirty keys
        and must give the same root."""

    def table(self, name: str) -> Table[Any, Any]:
        return self.tables[name]

    def add_table(self, table: Table[Any, Any]) -> None:
        if table.name in self.tables or any(t.prefix == table.prefix for t in self.tables.values()):
            raise InvariantViolation(ErrorCode.INVARIANT_VIOLATION, f"table {table.name} twice")
        table.journal = self.journal
        self.tables[table.name] = table

    # --- journal ---
    def begin(self) -> None:
        journal = self.journal
        if journal.undo is not None:
            raise InvariantViolation(ErrorCode.JOURNAL_OPEN, "journals do not nest")
        journal.undo = journal.spare

    def commit(self) -> None:
        journal = self.journal
        journal.spare.clear()
        journal.undo = None

    def rollback(self) -> None:
        undo = self.journal.undo
        if undo is None:
            raise InvariantViolation(ErrorCode.JOURNAL_OPEN, "no journal to roll back")
        for i in range(len(undo) - 1, -1, -1):  # newest first (mypyc: not reversed())
            data, key, old = undo[i]
            if old is _MISSING:
                data.pop(key, None)
            else:
                data[key] = old
        undo.clear()
        self.journal.undo = None

    def is_journal_open(self) -> bool:
        return self.journal.undo is not None

"""What a block reads and writes: recorded while it executes, enforced while it is re-executed.

A fraud proof carries the part of the pre-state a block touches (its *witness*), each entry proven
against the parent header's state root, so that anyone can re-execute the block from the proof
alone (``verifier/fraud_proof.py``; the design is ``docs/fraud-proofs.md``). This module is the
two halves of "what the block touches":

- **Recording** (the prover's side). :func:`record_block` runs ``apply_block`` on a copy of the
  pre-state whose tables' ``data`` dicts and whose ``books`` dict are :class:`WatchedDict` s: every
  key looked up (a hit or a miss), written or deleted is recorded, and so is any iteration of a
  whole table. A market whose book is looked up at all is witnessed whole.
- **Enforcement** (the checker's side). :func:`load_partial_state` builds a state holding only the
  witness, with the same :class:`WatchedDict` s in front of it, now refusing (raising
  :class:`IncompleteWitness`) any key the witness does not cover, any iteration of a table the
  witness does not prove complete, and any book that is not witnessed whole. A missing key can
  therefore never pass for an absent one: re-execution either sees exactly what the full state
  holds, or stops.

What can be proven complete
---------------------------
A Merkle proof shows one key's value or absence; keys are hashed, so no proof shows "these are
*all* the keys of a table". Completeness is established two ways, and only these two:

- the ``markets`` table (iterated by every block: ``markets.get_market_ids``): markets are listed
  at genesis only (the state transition has no listing action), so the table is complete when the
  witness holds every genesis market;
- a market's book (matching walks its price levels): order ids are the market's sequence numbers,
  all below ``market_seq[m]``, so the book is complete when the witness holds ``market_seq[m]`` and
  an inclusion or exclusion proof for every order id from 1 below it.

Any other iteration found while recording is refused (:class:`WitnessError`): it would need a
committed index the state does not have.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from strata.core.errors import ErrorCode, InvalidBlock
from strata.modules.book.state import BOOK_PREFIX
from strata.state.smt import SparseMerkleTree
from strata.state.store import ChainTip, State, Table
from strata.stf.block import Block
from strata.stf.commitment import collect_changes
from strata.stf.genesis import new_empty_state
from strata.stf.params import ChainParams
from strata.stf.state_io import load_state
from strata.stf.state_root import clear_changes
from strata.stf.transition import apply_block, copy_state

MARKETS_TABLE = "markets"
MARKET_SEQ_TABLE = "market_seq"
BOOKS = "books"
"""The name under which accesses to ``State.books`` are recorded (keys: market ids)."""


class IncompleteWitness(Exception):
    """Re-execution needed state the witness does not cover (a key, a whole table, a book).

    Deliberately not a ``KeyError`` or a ``ChainError``: no handler in the state transition may
    catch it and carry on as if the key were absent."""


class WitnessError(Exception):
    """The prover cannot build a witness for this block (see the module docstring)."""


# -- Watched dicts ---------------------------------------------------------------------------------


class Watch:
    """What a :class:`WatchedDict` reports to: one key touched, or the whole map.

    ``active`` is shared by every watch of one state (a :class:`Switch`): the commitment turns it
    off while it collects the block's changes, which reads every dirty key and every book."""

    __slots__ = ("name", "switch")

    def __init__(self, name: str, switch: Switch) -> None:
        self.name = name
        self.switch = switch

    def on_key(self, key: Any) -> None:
        raise NotImplementedError

    def on_all(self) -> None:
        raise NotImplementedError


@dataclass
class Switch:
    active: bool = True


class WatchedDict(dict[Any, Any]):
    """A dict that reports every key looked up (hit or miss), written or deleted, and every
    operation that sees the whole map (iteration, length, views, comparison, copies)."""

    __slots__ = ("_watch",)

    def __init__(self, data: Iterable[Any] | dict[Any, Any], watch: Watch) -> None:
        super().__init__(data)
        self._watch = watch

    # -- one key --
    def __getitem__(self, key: Any) -> Any:
        self._watch.on_key(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._watch.on_key(key)
        return super().__contains__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self._watch.on_key(key)
        return super().get(key, default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._watch.on_key(key)
        return super().setdefault(key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self._watch.on_key(key)
        return super().pop(key, *default)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._watch.on_key(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._watch.on_key(key)
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        for key in other:
            self._watch.on_key(key)
        super().update(other)

    # -- the whole map --
    def __iter__(self) -> Iterator[Any]:
        self._watch.on_all()
        return super().__iter__()

    def __reversed__(self) -> Iterator[Any]:
        self._watch.on_all()
        return super().__reversed__()

    def __len__(self) -> int:
        self._watch.on_all()
        return super().__len__()

    def keys(self) -> Any:
        self._watch.on_all()
        return super().keys()

    def values(self) -> Any:
        self._watch.on_all()
        return super().values()

    def items(self) -> Any:
        self._watch.on_all()
        return super().items()

    def popitem(self) -> Any:
        self._watch.on_all()
        return super().popitem()

    def clear(self) -> None:
        self._watch.on_all()
        super().clear()

    def copy(self) -> dict[Any, Any]:
        self._watch.on_all()
        return dict(super().items())

    def __eq__(self, other: object) -> bool:
        self._watch.on_all()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self._watch.on_all()
        return super().__ne__(other)

    def __or__(self, other: Any) -> Any:
        self._watch.on_all()
        return dict(super().items()) | other

    def __ror__(self, other: Any) -> Any:
        self._watch.on_all()
        return other | dict(super().items())

    def __ior__(self, other: Any) -> Any:
        self.update(other)
        return self

    def __repr__(self) -> str:
        self._watch.on_all()
        return f"WatchedDict({super().__repr__()})"


# -- Recording (the prover) ------------------------------------------------------------------------


class _RecordingWatch(Watch):
    __slots__ = ("recording",)

    def __init__(self, name: str, switch: Switch, recording: Recording) -> None:
        super().__init__(name, switch)
        self.recording = recording

    def on_key(self, key: Any) -> None:
        if self.switch.active:
            self.recording.keys.setdefault(self.name, set()).add(key)

    def on_all(self) -> None:
        if self.switch.active:
            self.recording.whole.add(self.name)


@dataclass
class Recording:
    """What one execution of a block touched, and how it ended."""

    keys: dict[str, set[Any]] = field(default_factory=dict)
    """Per table name (and :data:`BOOKS`): every key looked up, written or deleted."""
    whole: set[str] = field(default_factory=set)
    """Tables (and :data:`BOOKS`) iterated or otherwise seen whole."""
    error: InvalidBlock | None = None
    """Why ``apply_block`` refused the block, or ``None`` if it checked out."""
    changes: dict[bytes, bytes | None] | None = None
    """The committed entries the block changed (``None`` if execution stopped before the
    state root)."""
    post_root: bytes | None = None
    """The state root honest execution gives (``None`` as for ``changes``)."""


def collect_changes_unwatched(state: State, switch: Switch) -> dict[bytes, bytes | None]:
    """``collect_changes`` with the watches off: reading the block's changes to commit them is
    not a read of the block's."""
    switch.active = False
    try:
        return collect_changes(state)
    finally:
        switch.active = True


class _TreeCommitment:
    """The copy's state commitment: collects the block's changes (watches off) and applies them
    to the pre-state tree, which keeps the pre-state root readable for proofs."""

    def __init__(self, tree: SparseMerkleTree, switch: Switch, recording: Recording) -> None:
        self.tree = tree
        self.switch = switch
        self.recording = recording

    def compute_root(self, state: State) -> bytes:
        changes = collect_changes_unwatched(state, self.switch)
        self.recording.changes = changes
        root = self.tree.apply(changes).root
        self.recording.post_root = root
        return root


def record_block(
    pre_state: State, block: Block, params: ChainParams, tree: SparseMerkleTree
) -> Recording:
    """Apply ``block`` to a watched copy of ``pre_state`` and return what it touched.

    ``tree`` holds the pre-state (its root is the pre-state root); the block's changes are applied
    to it, so it ends at the honest post-state root, and the pre-state root stays readable with
    ``root=``. ``pre_state`` itself is not modified. ``apply_block``'s ``InvalidBlock`` is kept in
    :attr:`Recording.error`; any other exception propagates.
    """
    work = copy_state(pre_state)
    clear_changes(work)
    switch = Switch()
    recording = Recording()
    for name, table in work.tables.items():
        table.data = WatchedDict(table.data, _RecordingWatch(name, switch, recording))
    work.books = WatchedDict(work.books, _RecordingWatch(BOOKS, switch, recording))
    work.commitment = _TreeCommitment(tree, switch, recording)
    try:
        apply_block(work, block, params)
    except InvalidBlock as error:
        recording.error = error
    return recording


def encode_table_key(table: Table[Any, Any], key: Any) -> bytes:
    """The committed key of ``key`` in ``table``: its prefix byte, then its encoded key."""
    return bytes((table.prefix,)) + table.encode_key(key)


def compute_book_key(market_id: int, order_id: int) -> bytes:
    """The committed key of a resting order: ``BOOK_PREFIX ‖ market id (4) ‖ order id (8)``."""
    return bytes((BOOK_PREFIX,)) + market_id.to_bytes(4, "big") + order_id.to_bytes(8, "big")


def compute_witness_keys(pre_state: State, recording: Recording) -> tuple[set[bytes], list[int]]:
    """The committed keys a witness of ``recording`` must hold, and the markets whose books it
    holds whole (ascending).

    Raises
    ------
    WitnessError
        If a table other than ``markets`` was iterated, or a key does not encode.
    """
    keys: set[bytes] = set()
    tables = pre_state.tables
    for name in sorted(recording.whole - {BOOKS}):
        if name != MARKETS_TABLE:
            raise WitnessError(f"the block iterates table {name}: its completeness is unprovable")
        table = tables[name]
        keys.update(encode_table_key(table, key) for key in table.data)
    for name, touched in sorted(recording.keys.items()):
        if name == BOOKS:
            continue
        table = tables[name]
        for key in touched:
            try:
                keys.add(encode_table_key(table, key))
            except (OverflowError, TypeError, ValueError) as error:
                raise WitnessError(f"table {name}: key {key!r} does not encode: {error}") from None
    if BOOKS in recording.whole:
        markets = set(pre_state.books)
    else:
        markets = {m for m in recording.keys.get(BOOKS, set()) if m in pre_state.books}
    seq_table = tables[MARKET_SEQ_TABLE]
    for market_id in sorted(markets):
        keys.add(encode_table_key(seq_table, market_id))
        next_order_id: int = seq_table.data[market_id]
        keys.update(compute_book_key(market_id, o) for o in range(1, next_order_id))
    return keys, sorted(markets)


# -- Enforcement (the checker) ---------------------------------------------------------------------


class _GuardWatch(Watch):
    __slots__ = ("allowed", "complete")

    def __init__(self, name: str, switch: Switch, allowed: set[Any], complete: bool) -> None:
        super().__init__(name, switch)
        self.allowed = allowed
        self.complete = complete

    def on_key(self, key: Any) -> None:
        if self.switch.active and not self.complete and key not in self.allowed:
            shown = key.hex() if isinstance(key, bytes) else repr(key)
            raise IncompleteWitness(f"{self.name}: key {shown} is not in the witness")

    def on_all(self) -> None:
        if self.switch.active and not self.complete:
            raise IncompleteWitness(f"{self.name}: the whole table is read, the witness is partial")


def load_partial_state(
    entries: Iterable[tuple[bytes, bytes | None]],
    books: Iterable[int],
    genesis_market_ids: Iterable[int],
    tip: ChainTip,
) -> tuple[State, Switch]:
    """A state holding only ``entries`` (committed key, value or ``None`` for absent), guarded
    so that re-execution cannot read past them (see the module docstring).

    ``books`` are the markets whose books the witness holds whole. Returns the state and the
    switch of its guards (off while the commitment collects changes).

    Raises
    ------
    IncompleteWitness
        If a witnessed book is not provably complete (``market_seq`` missing, an order id below
        it without an entry) or is of an unlisted market.
    InvalidBlock
        ``MALFORMED_BLOCK`` if an entry has an unknown prefix or does not decode.
    """
    entries = list(entries)
    present = [(key, value) for key, value in entries if value is not None]
    markets_prefix = bytes((new_empty_state().tables[MARKETS_TABLE].prefix,))
    listed = {key[1:] for key, _ in present if key[:1] == markets_prefix}
    for key, _ in present:
        if key[:1] == bytes((BOOK_PREFIX,)) and key[1:5] not in listed:
            raise IncompleteWitness(f"order {key.hex()}: its market is not in the witness")
    state = load_state(present, tip)
    clear_changes(state)
    by_prefix = {table.prefix: table for table in state.tables.values()}
    allowed: dict[str, set[Any]] = {name: set() for name in state.tables}
    present_keys: dict[str, set[Any]] = {name: set() for name in state.tables}
    book_keys: set[bytes] = set()
    for key, value in entries:
        if key and key[0] == BOOK_PREFIX:
            book_keys.add(key)
            continue
        table = by_prefix.get(key[0]) if key else None
        if table is None:
            raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, f"witness key {key.hex()}")
        try:
            decoded = table.decode_key(key[1:])
        except ValueError as error:
            detail = f"witness key {key.hex()}: {error}"
            raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, detail) from None
        allowed[table.name].add(decoded)
        if value is not None:
            present_keys[table.name].add(decoded)
    switch = Switch()
    genesis_ids = set(genesis_market_ids)
    for name, table in state.tables.items():
        # Only what the witness holds: not the defaults a new state starts with (the ledger).
        keep = present_keys[name]
        data = {key: value for key, value in table.data.items() if key in keep}
        complete = name == MARKETS_TABLE and set(data) == genesis_ids
        table.data = WatchedDict(data, _GuardWatch(name, switch, allowed[name], complete))
    witnessed: dict[int, Any] = {}
    seq = state.tables[MARKET_SEQ_TABLE]
    for market_id in sorted(set(books)):
        if market_id not in state.books or market_id not in allowed[MARKET_SEQ_TABLE]:
            raise IncompleteWitness(f"book {market_id}: its market or sequence is not witnessed")
        next_order_id = seq.data.get(market_id)
        if next_order_id is None:
            raise IncompleteWitness(f"book {market_id}: the market has no sequence")
        for order_id in range(1, next_order_id):
            if compute_book_key(market_id, order_id) not in book_keys:
                raise IncompleteWitness(f"book {market_id}: order {order_id} is not witnessed")
        witnessed[market_id] = state.books[market_id]
    state.books = WatchedDict(witnessed, _GuardWatch(BOOKS, switch, set(witnessed), False))
    return state, switch


__all__ = [
    "IncompleteWitness",
    "Recording",
    "WatchedDict",
    "WitnessError",
    "compute_witness_keys",
    "load_partial_state",
    "record_block",
]

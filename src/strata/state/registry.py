"""An indexed set of keys in three tables, so a phase can visit every member key by key.

A phase that must visit "every account with a position" or "every account with a scheduled
cancel" cannot iterate a table: a fraud proof could not show that its witness holds the whole
table (state keys sit at hashed paths). A registry holds the members at indexes ``0 .. n - 1``:

==================  =============  ==========================================================
table               key            value
==================  =============  ==========================================================
``NAME``            index (8 B)    the member key
``NAME_index``      member key     its index
``NAME_count``      ``b""``        ``n``, how many members
==================  =============  ==========================================================

Visiting reads ``NAME_count`` and then ``NAME[0] .. NAME[n - 1]``: each read is a key a witness
proves, and ``n`` bounds them. A member joins at index ``n``; when one leaves, the last member
takes its index (swap-remove), so the indexes stay dense. The order of members therefore depends
on the order of joins and leaves, which the phases that change a registry fix (and visitors that
need an order sort what they collect).
"""

from __future__ import annotations

from typing import Any

from strata.state.store import BYTES_KEY, KeyCodec, State, Table, int_key


def register_registry(
    state: State, name: str, prefix: int, key_codec: KeyCodec, key_type: Any
) -> None:
    """Create the registry ``name``: its tables take prefixes ``prefix`` to ``prefix + 2``."""
    j = state.journal
    state.add_table(Table(name, prefix, j, int_key(8), key_type))
    state.add_table(Table(f"{name}_index", prefix + 1, j, key_codec, int))
    state.add_table(Table(f"{name}_count", prefix + 2, j, BYTES_KEY, int))
    state.tables[f"{name}_count"].put(b"", 0)


def registry_contains(state: State, name: str, key: Any) -> bool:
    return key in state.tables[f"{name}_index"].data


def registry_add(state: State, name: str, key: Any) -> None:
    """Add ``key`` at the end (no effect if it is a member)."""
    index_table = state.tables[f"{name}_index"]
    if key in index_table.data:
        return
    count_table = state.tables[f"{name}_count"]
    count: int = count_table.data[b""]
    state.tables[name].put(count, key)
    index_table.put(key, count)
    count_table.put(b"", count + 1)


def registry_remove(state: State, name: str, key: Any) -> None:
    """Remove ``key`` (no effect if it is not a member); the last member takes its index."""
    index_table = state.tables[f"{name}_index"]
    index: int | None = index_table.data.get(key)
    if index is None:
        return
    members = state.tables[name]
    count_table = state.tables[f"{name}_count"]
    last: int = count_table.data[b""] - 1
    if index != last:
        moved = members.data[last]
        members.put(index, moved)
        index_table.put(moved, index)
    members.delete(last)
    index_table.delete(key)
    count_table.put(b"", last)


def registry_members(state: State, name: str) -> list[Any]:
    """Every member, by index, read key by key."""
    members = state.tables[name].data
    count: int = state.tables[f"{name}_count"].data[b""]
    return [members[i] for i in range(count)]

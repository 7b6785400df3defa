"""``state.store.Table``: its get, put and delete on a plain dict and on a dict subclass.

``Table`` takes a faster path when its ``data`` is exactly a ``dict``; a subclass (the
verifier's watched maps, ``verifier/witness.py``) must still see every key through its own
methods, or a fraud proof's witness would miss what a block read. Both kinds must also behave
the same, journal included.
"""

from __future__ import annotations

from typing import Any

import pytest

from strata.state.store import BYTES_KEY, State, Table


class _Seen(dict[Any, Any]):
    """A dict that records every key its own methods are asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, Any]] = []

    def get(self, key: Any, default: Any = None) -> Any:
        self.seen.append(("get", key))
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.append(("in", key))
        return super().__contains__(key)

    def __getitem__(self, key: Any) -> Any:
        self.seen.append(("getitem", key))
        return super().__getitem__(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.seen.append(("set", key))
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.seen.append(("del", key))
        super().__delitem__(key)


def _table(watched: bool) -> tuple[State, Table[bytes, int]]:
    state = State()
    table: Table[bytes, int] = Table("t", 0x7F, state.journal, BYTES_KEY, int)
    if watched:
        table.data = _Seen()
    return state, table


def test_a_dict_subclass_sees_every_key() -> None:
    state, table = _table(watched=True)
    seen = table.data.seen  # type: ignore[attr-defined]
    assert table.get(b"a") is None
    state.begin()
    table.put(b"a", 1)
    table.delete(b"a")
    table.delete(b"b")  # absent: looked up all the same
    state.commit()
    keys = {key for _, key in seen}
    assert keys == {b"a", b"b"}
    assert ("get", b"a") in seen and ("set", b"a") in seen and ("del", b"a") in seen
    assert ("in", b"b") in seen


@pytest.mark.parametrize("watched", [False, True])
def test_get_put_delete_and_rollback_agree(watched: bool) -> None:
    state, table = _table(watched)
    table.put(b"a", 1)  # outside a journal: kept
    state.begin()
    table.put(b"a", 2)
    table.put(b"b", 3)
    table.delete(b"a")
    assert table.get(b"a") is None and table.get(b"b") == 3
    state.rollback()
    assert dict(table.data) == {b"a": 1}
    assert table.dirty == {b"a", b"b"}
    state.begin()
    table.delete(b"a")
    state.commit()
    assert dict(table.data) == {} and table.get(b"a") is None

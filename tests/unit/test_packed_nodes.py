"""The packed live table of tree nodes (``state/packed.py``) against a dict, op by op.

Hashes are drawn so that many share their first 8 bytes (the bucket and the compared prefix)
and every table starts at its smallest size, so the probes, tombstones, index rebuilds and map
growth all happen in a few hundred operations.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from strata.state.packed import (
    RECORD_BYTES,
    PackedNodes,
    born_in,
    born_of,
    full_height,
    records_of,
)


def _hash(rng: random.Random, prefixes: list[bytes]) -> bytes:
    return rng.choice(prefixes) + rng.randbytes(24)


def _encoding(node_hash: bytes) -> bytes:
    return b"\x01" + hashlib.sha256(node_hash).digest() + node_hash


def _borns(table: PackedNodes) -> dict[bytes, int]:
    """``hash -> born`` of every record the table holds (read through ``rows_born``)."""
    records = records_of(table.rows_born(0, 2**31))
    return {
        row[:32].tobytes(): int(born) for row, born in zip(records, born_of(records), strict=True)
    }


def _check(table: PackedNodes, model: dict[bytes, tuple[bytes, int]]) -> None:
    assert len(table) == len(model)
    borns = _borns(table)
    assert len(borns) == len(model)
    for node_hash, (encoding, born) in model.items():
        assert table.get(node_hash) == encoding
        assert node_hash in table
        assert borns[node_hash] == born & 0xFFFFFFFF


@pytest.mark.parametrize("seed", range(6))
def test_replace_matches_a_dict(seed: int) -> None:
    rng = random.Random(seed)
    # Few distinct 8-byte prefixes: most hashes collide in the index and in the prefix compare.
    prefixes = [rng.randbytes(8) for _ in range(rng.choice([3, 50, 5000]))]
    table = PackedNodes()
    model: dict[bytes, tuple[bytes, int]] = {}
    gone: set[bytes] = set()
    for height in range(1, 40):
        held = list(model)
        stale = rng.sample(held, min(len(held), rng.randrange(0, 400)))
        stale.append(_hash(rng, prefixes))  # not held: skipped
        new = {_hash(rng, prefixes): b"" for _ in range(rng.randrange(0, 600))}
        new.update(dict.fromkeys(rng.sample(held, min(len(held), 20)), b""))  # rebuilt
        new.update(dict.fromkeys(rng.sample(sorted(gone), min(len(gone), 10)), b""))  # back
        for node_hash in stale:
            new.pop(node_hash, None)
        nodes = {node_hash: _encoding(node_hash) for node_hash in new}
        removed = records_of(table.replace(nodes, stale, height))
        expected = [h for h in stale if h in model]
        assert [row[:32].tobytes() for row in removed] == expected
        for row in removed:
            node_hash = row[:32].tobytes()
            assert row[32:97].tobytes() == model[node_hash][0]
            assert int(born_of(row.reshape(1, RECORD_BYTES))[0]) == model[node_hash][1]
            del model[node_hash]
            gone.add(node_hash)
        for node_hash, encoding in nodes.items():
            model[node_hash] = (encoding, height)
            gone.discard(node_hash)
        _check(table, model)
        borns = _borns(table)
        for node_hash in rng.sample(sorted(gone), min(len(gone), 50)):
            assert table.get(node_hash) is None
            assert node_hash not in borns
    # The slots freed by removals are reused: the table never holds more than it ever had to.
    assert table.slots_used <= max(len(model), 1) + 1000


def test_rows_born_and_load_rows_round_trip() -> None:
    rng = random.Random(7)
    table = PackedNodes()
    model: dict[bytes, tuple[bytes, int]] = {}
    for height in (5, 6, 7):
        nodes = {rng.randbytes(32): b"" for _ in range(300)}
        nodes = {h: _encoding(h) for h in nodes}
        table.replace(nodes, [], height)
        model.update({h: (e, height) for h, e in nodes.items()})
    dropped = rng.sample(sorted(model), 100)
    table.replace({}, dropped, 8)
    for node_hash in dropped:
        del model[node_hash]
    rows = table.rows_born(6, 7)
    picked = {row[:32].tobytes(): row for row in records_of(rows)}
    assert set(picked) == {h for h, (_, born) in model.items() if born in (6, 7)}
    copy = PackedNodes()
    copy.load_rows(table.rows_born(0, 100))
    _check(copy, model)


def test_born_wraps_modulo_2_to_the_32() -> None:
    assert born_in(5, 2**32 - 3, 2**32 + 10)
    assert not born_in(12, 2**32 - 3, 2**32 + 10)
    assert full_height(5, 2**32 - 3) == 2**32 + 5
    assert full_height(7, 3) == 7


def test_bad_records_are_refused_and_change_nothing() -> None:
    table = PackedNodes()
    good = bytes(range(1, 33))
    table.replace({good: _encoding(good)}, [], 1)
    with pytest.raises(ValueError, match="32-byte"):
        table.replace({b"short": _encoding(good)}, [good], 2)
    with pytest.raises(ValueError, match="65-byte"):
        table.replace({bytes(range(2, 34)): b"x"}, [good], 2)
    with pytest.raises(ValueError, match="all-zero"):
        table.replace({bytes(32): _encoding(good)}, [good], 2)
    with pytest.raises(ValueError, match="104 bytes"):
        table.load_rows(b"x" * 50)
    assert table.get(good) == _encoding(good)
    assert len(table) == 1


def test_walk_and_top_levels_stop_where_the_table_does() -> None:
    """A small tree: the root over a leaf and a node ``top``; ``top`` over a node ``inner``
    (over ``EMPTY`` and a leaf) and a hash the table does not hold. ``walk`` returns a leaf's
    encoding, ``b""`` at ``EMPTY`` and the unheld hash; ``top_levels`` stops at the first level
    that is not all held internal nodes."""
    empty = bytes(32)
    leaf = b"\x00" + b"\x11" * 32 + b"\x22" * 32
    deep_leaf = b"\x00" + b"\x33" * 32 + b"\x44" * 32
    leaf_hash, deep_leaf_hash, missing = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    inner = b"\x01" + empty + deep_leaf_hash
    inner_hash = b"\x04" * 32
    top = b"\x01" + inner_hash + missing
    top_hash = b"\x05" * 32
    root = b"\x01" + leaf_hash + top_hash
    root_hash = b"\x06" * 32
    table = PackedNodes()
    table.replace(
        {
            leaf_hash: leaf,
            deep_leaf_hash: deep_leaf,
            inner_hash: inner,
            top_hash: top,
            root_hash: root,
        },
        [],
        1,
    )
    siblings: list[bytes] = []
    assert table.walk(root_hash, "0" * 256, 0, siblings) == leaf
    assert siblings == [top_hash]
    siblings = []
    assert table.walk(root_hash, "11" + "0" * 254, 0, siblings) == missing
    assert siblings == [leaf_hash, inner_hash]
    siblings = []
    assert table.walk(root_hash, "100" + "0" * 253, 0, siblings) == b""
    assert siblings == [leaf_hash, missing, deep_leaf_hash]
    siblings = []
    assert table.walk(root_hash, "101" + "0" * 253, 0, siblings) == deep_leaf
    assert table.walk(missing, "0" * 256, 5, siblings) == missing
    # Level 1 holds a leaf: the full levels end there.
    assert table.top_levels(root_hash, 10) == [root_hash, leaf_hash + top_hash]
    assert table.top_levels(top_hash, 10) == [top_hash, inner_hash + missing]
    assert table.top_levels(inner_hash, 0) == [inner_hash]
    assert table.top_levels(missing, 10) == [missing]

"""The transactions of the golden state-transition vectors (``tests/vectors/stf/``), for tests
that check a decoder or a reading of transaction bytes on every kind of transaction the vectors
hold, malformed ones included."""

from __future__ import annotations

import json
from pathlib import Path

from strata.stf.block import decode_block

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "stf"


def vector_transactions() -> list[bytes]:
    """Every distinct transaction of the vectors' blocks and candidate lists, sorted."""
    found: set[bytes] = set()
    for path in sorted(VECTORS.glob("*.json")):
        vector = json.loads(path.read_text())
        for data, expect in zip(vector["blocks"], vector["expect"], strict=True):
            found.update(decode_block(bytes.fromhex(data)).transactions)
            found.update(bytes.fromhex(tx) for tx in expect.get("candidates", ()))
    return sorted(found)

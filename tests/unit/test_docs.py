"""The user docs name every stable code: a new code cannot ship undocumented."""

from __future__ import annotations

from pathlib import Path

from strata.core.errors import ErrorCode
from strata.modules.book.types import OrderReason

PROTOCOL = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def test_every_error_code_is_in_the_protocol_doc() -> None:
    missing = [c for c in ErrorCode if f"| {int(c)} | `{c.name}` |" not in PROTOCOL]
    assert missing == []


def test_every_order_reason_is_in_the_protocol_doc() -> None:
    missing = [r for r in OrderReason if f"| {int(r)} | `{r.name}` |" not in PROTOCOL]
    assert missing == []


def test_codes_sit_in_their_family_ranges() -> None:
    families = {1: "InvalidBlock", 2: "InvalidTransaction", 3: "ExecutionFailure", 9: "Invariant"}
    assert {int(c) // 1000 for c in ErrorCode} <= set(families)

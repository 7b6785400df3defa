"""End-to-end tests of ``strata replay-book`` (``strata.replay.book_replay.main``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.replay.book_replay import main

ROOT = Path(__file__).resolve().parents[2]
LOBSTER = ROOT / "data" / "lobster"
MESSAGES = LOBSTER / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
ORDERBOOK = LOBSTER / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv"

EVENTS = """\
{"op": "limit", "id": 1, "side": "sell", "price": 101, "qty": 5}
{"op": "limit", "id": 2, "side": "sell", "price": 102, "qty": 5}
{"op": "limit", "id": 3, "side": "buy", "price": 99, "qty": 4}

{"op": "reduce", "id": 1, "qty": 2}
{"op": "market", "id": 4, "side": "buy", "qty": 6}
{"op": "limit", "id": 5, "side": "sell", "price": 98, "qty": 10}
{"op": "cancel", "id": 2}
{"op": "cancel", "id": 42}
{"op": "limit", "id": 6, "side": "buy", "price": 98, "qty": 1}
"""

EXPECTED_FILLS = """\
{"taker":4,"maker":1,"price":101,"qty":3}
{"taker":4,"maker":2,"price":102,"qty":3}
{"taker":5,"maker":3,"price":99,"qty":4}
{"taker":6,"maker":5,"price":98,"qty":1}
"""


def _summary(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out.strip().splitlines()
    return dict(json.loads(out[-1]))


def test_jsonl_fills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(EVENTS)
    fills = tmp_path / "fills.jsonl"
    assert main(["--format", "jsonl", str(events), "--fills", str(fills), "--json"]) == 0
    assert fills.read_text() == EXPECTED_FILLS
    summary = _summary(capsys)
    assert summary["events"] == 9
    assert summary["fills"] == 4
    assert summary["unknown_ids"] == 1
    assert isinstance(summary["events_per_s"], int)


def test_jsonl_plain_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(EVENTS)
    assert main(["--format", "jsonl", str(events)]) == 0
    out = capsys.readouterr().out
    assert "events: 9" in out and "events_per_s:" in out and "elapsed_s:" in out


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"op": "limit", "id": 7, "side": "up", "price": 1, "qty": 1}', "side"),
        ('{"op": "limit", "id": 7, "side": "buy", "price": 0, "qty": 1}', "price"),
        ('{"op": "explode", "id": 7}', "op"),
        ("not json", "malformed"),
        ('{"op": "limit", "id": 1, "side": "buy", "price": 90, "qty": 1}', "already resting"),
    ],
)
def test_jsonl_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, needle: str
) -> None:
    events = tmp_path / "bad.jsonl"
    events.write_text('{"op": "limit", "id": 1, "side": "sell", "price": 101, "qty": 5}\n\n' + line)
    assert main(["--format", "jsonl", str(events)]) == 2
    err = capsys.readouterr().err
    assert f"{events}:3:" in err and needle in err


def test_lobster_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshots = tmp_path / "snap.csv"
    argv = ["--format", "lobster", str(MESSAGES), "--initial-book", str(ORDERBOOK)]
    argv += ["--check-steps", str(ORDERBOOK), "--snapshots", str(snapshots), "--json"]
    assert main(argv) == 0
    summary = _summary(capsys)
    # 999 messages: step 0 (row 0 with message 0 taken out) plus the 998 steps k >= 1.
    assert summary["events"] == 999
    assert summary["steps_checked"] == 999
    assert summary["steps_matching"] == 999
    rows = int(summary["top_of_book_rows"])  # type: ignore[call-overload]
    assert rows == 999
    assert int(summary["top_of_book_matching"]) >= 0.95 * rows  # type: ignore[call-overload]
    lines = snapshots.read_text().splitlines()
    assert len(lines) == 999 and all(len(line.split(",")) == 40 for line in lines)
    # Row 0 is exact: the start book plus message 0.
    assert lines[0] == ORDERBOOK.read_text().splitlines()[0]


def test_lobster_bad_message_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = tmp_path / "m.csv"
    good = MESSAGES.read_text().splitlines()[:3]
    messages.write_text("\n".join([*good, "34200.1,9,1,1,1,1"]) + "\n")
    argv = ["--format", "lobster", str(messages), "--initial-book", str(ORDERBOOK)]
    assert main(argv) == 2
    assert f"{messages}:4:" in capsys.readouterr().err


def test_lobster_needs_initial_book(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--format", "lobster", str(MESSAGES)]) == 2
    assert "--initial-book" in capsys.readouterr().err

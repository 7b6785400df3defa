"""``strata bench engine --record`` / ``--runs-of``: runs kept over time, counted against the
targets, plotted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bench.engine_bench import main as bench_main
from bench.engine_runs import (
    ENGINE_TARGET,
    best_pass_steal_ms,
    host_steal_ms,
    load_runs,
    print_summary,
    record_run,
    summarize_runs,
)


def _run(book: int, engine: int, bulk: int, **extra: object) -> dict[str, object]:
    return {
        "book_events_per_s": book,
        "engine_events_per_s": engine,
        "engine_bulk_events_per_s": bulk,
        **extra,
    }


def test_record_appends_a_line_with_the_time_and_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "engine.jsonl"
    record_run(path, _run(1_000_000, 140_000, 160_000), tmp_path)  # not a git checkout
    record_run(path, _run(1_100_000, 151_000, 170_000), Path(__file__).parent)
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["commit"] is None and first["engine_events_per_s"] == 140_000
    assert isinstance(second["commit"], str) and second["commit"]
    assert second["time"].endswith("Z") and second["time"] >= first["time"]
    assert load_runs(path) == [first, second]


def test_the_summary_counts_the_runs_at_each_target() -> None:
    runs = [
        _run(900_000, ENGINE_TARGET - 1, 190_000, time="2026-12-03T20:00:00Z"),
        _run(1_200_000, ENGINE_TARGET, 200_000, time="2026-12-03T19:00:00Z"),
        _run(1_500_000, 200_000, 140_000),
    ]
    summary = summarize_runs(runs)
    assert summary["runs"] == 3
    assert (summary["first"], summary["last"]) == ("2026-12-03T19:00:00Z", "2026-12-03T20:00:00Z")
    assert summary["engine"] == {
        "target": ENGINE_TARGET,
        "at_target": 2,  # the target itself counts as reached
        "min": ENGINE_TARGET - 1,
        "median": ENGINE_TARGET,
        "max": 200_000,
        "missed_with_steal_known": 0,  # the run that missed has no passes recorded
        "missed_with_steal": 0,
    }
    assert summary["engine_bulk"]["at_target"] == 2
    assert summary["book"]["at_target"] == 3


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("not json", "line 2: not JSON"),
        ("[1, 2]", "line 2: not a JSON object"),
        (json.dumps(_run(1, 0, 1)), "line 2: engine_events_per_s must be a positive integer"),
        (json.dumps({"book_events_per_s": 1}), "engine_events_per_s must be a positive integer"),
        (json.dumps(_run(True, 1, 1)), "book_events_per_s must be a positive integer"),
    ],
)
def test_a_bad_record_names_its_line(tmp_path: Path, line: str, error: str) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(_run(1, 1, 1)) + "\n" + line + "\n")
    with pytest.raises(SystemExit, match=error):
        load_runs(path)


def test_runs_of_prints_the_summary_and_draws_the_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.jsonl"
    lines = [
        _run(
            1_100_000,
            160_000,
            200_000,
            engine_runs_events_per_s=[150_000, 160_000],
            engine_runs_steal_ms=[0, 30],  # drawn ringed
        ),
        _run(950_000, 130_000, 150_000),
    ]
    path.write_text("".join(json.dumps(r) + "\n\n" for r in lines))
    plot = tmp_path / "runs.png"
    assert bench_main(["--runs-of", str(path), "--plot", str(plot), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"]["at_target"] == 1 and summary["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench_main(["--runs-of", str(path)]) == 0
    assert "engine           150,000     1 of 2" in capsys.readouterr().out


def test_runs_of_a_missing_file_and_plot_alone_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_main(["--runs-of", str(tmp_path / "none.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_main(["--plot", str(tmp_path / "x.png")])


def test_the_steal_is_read_from_the_cpu_line(tmp_path: Path) -> None:
    hz = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    stat.write_text("cpu  74831 0 3113 1063364 185 0 38 317 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert host_steal_ms(stat) == 317 * 1000 // hz
    stat.write_text("cpu  74831 0 3113 1063364 185 0 38\n")  # a kernel without the column
    assert host_steal_ms(stat) is None
    stat.write_text("intr 1 2 3 4 5 6 7 8 9\n")
    assert host_steal_ms(stat) is None
    assert host_steal_ms(tmp_path / "none") is None  # not Linux
    if Path("/proc/stat").is_file():
        assert isinstance(host_steal_ms(), int)


def test_the_summary_says_which_missed_runs_lost_time_to_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    below = ENGINE_TARGET - 10_000
    runs = [
        # below the target, its best pass (the second) lost 40 ms to the host
        _run(
            1,
            below,
            200_000,
            engine_runs_events_per_s=[below - 5, below],
            engine_runs_steal_ms=[0, 40],
        ),
        # below the target, but the steal was in a pass that was not its best
        _run(
            1,
            below,
            200_000,
            engine_runs_events_per_s=[below, below - 5],
            engine_runs_steal_ms=[0, 40],
        ),
        # below the target, steal not recorded (an older record)
        _run(1, below, 200_000, engine_runs_events_per_s=[below]),
        # at the target with steal: not counted, it did not miss
        _run(
            1,
            ENGINE_TARGET,
            200_000,
            engine_runs_events_per_s=[ENGINE_TARGET],
            engine_runs_steal_ms=[70],
        ),
    ]
    assert [best_pass_steal_ms(r, "engine") for r in runs] == [40, 0, None, 70]
    assert best_pass_steal_ms(runs[0], "engine_bulk") is None
    summary = summarize_runs(runs)
    assert summary["engine"]["missed_with_steal_known"] == 2
    assert summary["engine"]["missed_with_steal"] == 1
    assert summary["engine_bulk"]["missed_with_steal_known"] == 0
    assert "missed_with_steal" not in summary["book"]
    print_summary(summary)
    out = capsys.readouterr().out
    assert "engine: of the 3 runs below the target, 2 recorded steal; 1 of those lost" in out
    assert "engine_bulk:" not in out  # no run missed


def test_a_run_records_each_pass_and_its_steal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real (small) run: the passes of (b), the steal in each, and a record that reads back."""
    path = tmp_path / "runs.jsonl"
    argv = ["--events", "300", "--runs", "2", "--json", "--record", str(path)]
    assert bench_main(argv) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert len(summary["engine_runs_events_per_s"]) == 2
    assert max(summary["engine_runs_events_per_s"]) == summary["engine_events_per_s"]
    if host_steal_ms() is not None:
        for key in ("engine_runs_steal_ms", "engine_bulk_runs_steal_ms"):
            assert len(summary[key]) == 2 and all(ms >= 0 for ms in summary[key])
        assert summary["book_steal_ms"] >= 0
        assert best_pass_steal_ms(summary, "engine") is not None
    (record,) = load_runs(path)
    assert record["engine_events_per_s"] == summary["engine_events_per_s"]

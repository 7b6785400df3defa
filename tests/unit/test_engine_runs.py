"""``strata bench engine --record`` / ``--runs-of``: runs kept over time, counted against the
targets, plotted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.engine_bench import main as bench_main
from bench.engine_runs import ENGINE_TARGET, load_runs, record_run, summarize_runs


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
        _run(1_100_000, 160_000, 200_000, engine_runs_events_per_s=[150_000, 160_000]),
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

"""``strata bench parallel`` averages its ABBA rounds into one ratio per workload."""

from __future__ import annotations

from typing import Any

from bench.parallel_bench import compute_speedups


def _run(workload: str, cpus: str, round_: int, rate: int) -> dict[str, Any]:
    return {"workload": workload, "cpus": cpus, "round": round_, "included_tx_per_s": rate}


def test_a_steady_drift_cancels_out_of_the_abba_ratio() -> None:
    # The machine slows by 1,000 tx/s per run; the node is exactly 1.5x faster on two cores.
    # Round 1 runs one core first (10,000 then 1.5 * 9,000), round 2 two cores first.
    speeds = iter((10_000, 9_000, 8_000, 7_000))
    runs = []
    for round_, order in ((0, ("0", "0,1")), (1, ("0,1", "0"))):
        for cpus in order:
            speed = next(speeds)
            runs.append(_run("single", cpus, round_, int(speed * (1.5 if cpus == "0,1" else 1))))
    summary = compute_speedups(runs)
    assert summary["speedups_by_round"]["speedup_single_orders"] == [1.35, 1.71]
    assert summary["speedup_single_orders"] == 1.5
    assert "speedup_bulk" not in summary  # a workload not run has no figure


def test_a_round_with_a_missing_or_zero_one_core_rate_gives_no_figure() -> None:
    runs = [_run("bulk", "0,1", 0, 5_000)]
    assert "speedup_bulk" not in compute_speedups(runs)
    runs.append(_run("bulk", "0", 0, 0))
    assert "speedup_bulk" not in compute_speedups(runs)

"""Each built-in incident scenario runs on the real engine and holds (``strata.scenarios``)."""

from __future__ import annotations

import json

import pytest

from strata.cli.main import main
from strata.scenarios.harness import ScenarioRun
from strata.scenarios.library import SCENARIOS, run_cascade

FAST = ("mango", "jelly", "yfi", "adl-fairness", "cascade")


def _assert_passed(run: ScenarioRun) -> None:
    failed = [c for c in run.chain.checks if not c.ok]
    assert run.invariants_held, run.chain.violations[:5]
    assert not failed, failed
    # Builder and validator agreed on every block, and the invariants were checked at each.
    assert run.chain.rows and all(r.invariants_ok for r in run.chain.rows)


@pytest.mark.parametrize("name", FAST)
def test_scenario_holds(name: str) -> None:
    _assert_passed(SCENARIOS[name].run(None))


def test_mango_bounds_the_loss_to_the_insurance_fund() -> None:
    run = SCENARIOS["mango"].run(None)
    figures = run.chain.figures()
    assert figures["bad_debt_quote"] == 0
    assert -figures["insurance_fund_change_quote"] <= 2_000_000 * 10**6


def test_yfi_lets_no_loss_reach_a_bystander() -> None:
    run = SCENARIOS["yfi"].run(None)
    figures = run.chain.figures()
    assert figures["adl_count"] > 0 and figures["backstop_value_quote"] > 0
    assert figures["bad_debt_quote"] == 0


def test_cascade_spreads_over_blocks_within_the_limit() -> None:
    run = run_cascade(None, accounts=400)
    _assert_passed(run)
    assert sum(1 for r in run.chain.rows if r.liquidated_accounts) >= 3


@pytest.mark.long
def test_cascade_of_ten_thousand_accounts() -> None:
    _assert_passed(run_cascade(None, accounts=10_000))


def test_scenario_list_and_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in FAST)
    assert main(["scenario", "run", "adl-fairness", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in (
        "invariants_held",
        "bad_debt_quote",
        "insurance_fund_change_quote",
        "liquidated_notional_quote",
        "adl_count",
    ):
        assert key in summary
    assert summary["invariants_held"] is True and summary["adl_count"] == 4


def test_scenario_run_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "jelly"]) == 0
    out = capsys.readouterr().out
    assert "fund equity" in out and "scenario jelly: passed" in out


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "nope"]) == 2
    assert "no scenario" in capsys.readouterr().err

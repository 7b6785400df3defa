"""``strata explain``: the story of a liquidation from the events alone, from a scenario and
from a chain database written by the node's store (``ChainStore``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strata.adapters.chain_store import ChainStore
from strata.cli.main import main
from strata.scenarios.library import SCENARIOS
from strata.stf.transition import apply_block


def test_explain_in_a_scenario_tells_why_and_who(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "victim", "--scenario", "adl-fairness"]) == 0
    out = capsys.readouterr().out
    assert "liquidation 1, block 5" in out
    assert "equity 316.96 USDC < maintenance 2,592.00 USDC" in out
    assert "bankruptcy value 51,523.04 USDC" in out
    assert "because the insurance fund's limits left no room" in out
    ranks = [line for line in out.splitlines() if line.strip().startswith("rank ")]
    assert [r.split("(key")[0].strip() for r in ranks] == ["rank 0", "rank 1", "rank 2", "rank 3"]
    assert "s-high" in ranks[0] and "s-low" in ranks[3]


def test_explain_a_counterparty_and_a_bystander(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "s-high", "--scenario", "adl-fairness"]) == 0
    assert "deleveraged as a counterparty" in capsys.readouterr().out
    assert main(["explain", "saver", "--scenario", "adl-fairness"]) == 0
    assert "no liquidation and no auto-deleveraging" in capsys.readouterr().out


def test_explain_shows_the_limits_applied(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "whale-short", "--scenario", "jelly", "--json"]) == 0
    story = json.loads(capsys.readouterr().out)
    slices = [s for liq in story["liquidations"] for s in liq["slices"]]
    assert any(s["slice_lots"] < s["wanted_lots"] for s in slices)  # per-block notional limit
    assert any(s["backstop_lots"] for s in slices) and any(s["adl_lots"] for s in slices)
    assert main(["explain", "whale-short", "--scenario", "jelly"]) == 0
    out = capsys.readouterr().out
    assert "per-block notional limit left" in out
    assert "would pass the per-account limit" in out


def test_explain_from_a_chain_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = SCENARIOS["adl-fairness"].run(None)
    chain = run.chain
    store = ChainStore.create(tmp_path / "node" / "chain", chain.genesis)
    for record in chain.records:
        output = apply_block(store.state, record.block, chain.params)
        store.commit_block(record.block, output)
    store.close()
    victim = "0x" + chain.addr("victim").hex()
    assert main(["explain", victim, "--height", "5", "--data-dir", str(tmp_path / "node")]) == 0
    from_store = capsys.readouterr().out
    assert main(["explain", victim, "--scenario", "adl-fairness"]) == 0
    from_scenario = capsys.readouterr().out
    # The same story; the scenario also knows the accounts' names.
    assert "liquidation 1, block 5" in from_store
    assert "bankruptcy value 51,523.04 USDC" in from_store
    assert len(from_store.splitlines()) == len(from_scenario.splitlines())
    # Up to height 4 nothing has happened yet.
    assert main(["explain", victim, "--height", "4", "--data-dir", str(tmp_path / "node")]) == 0
    assert "no liquidation" in capsys.readouterr().out


def test_explain_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "0x" + "00" * 20, "--height", "3", "--data-dir", str(tmp_path)]) == 2
    assert "no chain database" in capsys.readouterr().err
    assert main(["explain", "not-an-address", "--height", "3", "--data-dir", str(tmp_path)]) == 2
    assert main(["explain", "nobody", "--scenario", "adl-fairness"]) == 2

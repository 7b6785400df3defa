"""``strata scenario`` and ``strata explain``.

::

    strata scenario list
    strata scenario run NAME [--json]
    strata explain ACCOUNT --height H [--data-dir DIR] [--json]
    strata explain ACCOUNT --scenario NAME [--height H] [--json]

``scenario run`` prints one row per block while it runs, then the figures and the checks; with
``--json`` one JSON object (at least ``invariants_held``, ``bad_debt_quote``,
``insurance_fund_change_quote``, ``liquidated_notional_quote``, ``adl_count``) and the rows go to
stderr when it is a terminal. Exit status 0 when every invariant and check held, 1 otherwise, 2
on a usage error.

``explain`` reads the risk events of blocks ``1..H`` (a node's chain database in ``DIR/chain``,
opened by ``strata.cli`` and read through its public read methods, or a built-in scenario's
blocks) and prints the account's liquidations (see ``explain.py``). ``ACCOUNT`` is a 0x address;
with ``--scenario`` also an account name of the scenario (``victim``), and ``insurance-fund``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from strata.modules.markets import Market
from strata.scenarios.explain import collect_story, render_story, story_to_json
from strata.scenarios.harness import FUND, BlockRow, ScenarioRun, format_usdc
from strata.scenarios.library import SCENARIOS
from strata.stf.events import Event


@dataclass
class ChainEvents:
    """What ``explain`` reads of a chain database (built by ``strata.cli``, which owns the
    store): its markets, the heights it holds, and a block's risk events by height."""

    markets: dict[int, Market]
    first_height: int
    tip_height: int
    risk_events: Callable[[int], Sequence[Event]]
    close: Callable[[], None]


OpenChain = Callable[[Path], ChainEvents]

_HEADER = (
    f"{'height':>6} {'liq':>5} {'notional':>16} {'book':>14} {'backstop':>14} {'adl':>14} "
    f"{'adl#':>5} {'fund equity':>16} {'bad debt':>12} {'inv':>3}  marks / what happened"
)


def _row_line(row: BlockRow) -> str:
    marks = " ".join(f"{m}:{p:,}" for m, p in sorted(row.marks.items()))
    return (
        f"{row.height:>6} {row.liquidated_accounts:>5} "
        f"{format_usdc(row.liquidated_notional_quote):>16} {format_usdc(row.book_value_quote):>14} "
        f"{format_usdc(row.backstop_value_quote):>14} {format_usdc(row.adl_value_quote):>14} "
        f"{row.adl_count:>5} {format_usdc(row.fund_equity_quote):>16} "
        f"{format_usdc(row.bad_debt_quote):>12} {'ok' if row.invariants_ok else 'NO':>3}  "
        f"{marks}  {row.label}"
    )


def _printer(out: TextIO | None) -> Callable[[BlockRow], None] | None:
    if out is None:
        return None
    print(_HEADER, file=out, flush=True)

    def show(row: BlockRow) -> None:
        print(_row_line(row), file=out, flush=True)

    return show


def _list() -> int:
    width = max(len(n) for n in SCENARIOS)
    for scenario in SCENARIOS.values():
        print(f"{scenario.name:<{width}}  {scenario.title}")
    return 0


def run_scenario(name: str, out: TextIO | None) -> ScenarioRun:
    """Run a built-in scenario, printing its rows to ``out`` as they come (``None``: silent)."""
    return SCENARIOS[name].run(_printer(out))


def _run(name: str, as_json: bool) -> int:
    if name not in SCENARIOS:
        print(f"error: no scenario {name!r} (strata scenario list)", file=sys.stderr)
        return 2
    if as_json:
        run = run_scenario(name, sys.stderr if sys.stderr.isatty() else None)
        print(json.dumps(run.summary()))
        return 0 if run.passed else 1
    print(f"scenario {name}: {SCENARIOS[name].title}\n")
    run = run_scenario(name, sys.stdout)
    summary = run.summary()
    print()
    for key in (
        "bad_debt_quote",
        "peak_bad_debt_quote",
        "insurance_fund_change_quote",
        "liquidated_notional_quote",
        "book_value_quote",
        "backstop_value_quote",
        "adl_value_quote",
    ):
        value = summary[key]
        assert isinstance(value, int)
        print(f"{key:<30}{format_usdc(value):>22} USDC")
    print(f"{'adl_count':<30}{summary['adl_count']:>22}")
    print(f"{'liquidations':<30}{summary['liquidations']:>22}")
    print(f"{'invariants_held':<30}{summary['invariants_held']!s:>22}")
    for note in run.notes:
        print(f"note: {note}")
    for check in run.chain.checks:
        detail = f"  ({check.detail})" if check.detail else ""
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}{detail}")
    for violation in run.chain.violations[:20]:
        print(f"VIOLATION {violation}")
    print(f"\nscenario {name}: {'passed' if run.passed else 'FAILED'}")
    return 0 if run.passed else 1


def scenario_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="strata scenario", description="incident scenarios")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the built-in scenarios")
    run = commands.add_parser("run", help="run one scenario")
    run.add_argument("name")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    return _run(args.name, args.json)


def _parse_address(text: str) -> bytes | None:
    raw = text[2:] if text.lower().startswith("0x") else text
    try:
        address = bytes.fromhex(raw)
    except ValueError:
        return None
    return address if len(address) == 20 else None


def explain_main(argv: list[str], open_chain: OpenChain | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata explain", description="the story of an account's liquidations"
    )
    parser.add_argument("account", help="0x address (or, with --scenario, an account name)")
    parser.add_argument("--height", type=int, default=None, help="up to this height (default: tip)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data-dir", type=Path, default=None, help="a node's data directory")
    source.add_argument("--scenario", default=None, help="a built-in scenario (runs it first)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.scenario is not None:
        if args.scenario not in SCENARIOS:
            print(f"error: no scenario {args.scenario!r} (strata scenario list)", file=sys.stderr)
            return 2
        print(f"running scenario {args.scenario}...", file=sys.stderr)
        run = run_scenario(args.scenario, None)
        chain = run.chain
        if args.account == "insurance-fund":
            account: bytes | None = FUND
        elif args.account in chain.wallets:
            account = chain.addr(args.account)
        else:
            account = _parse_address(args.account)
        if account is None:
            names = ", ".join(sorted(chain.wallets)[:12])
            print(
                f"error: {args.account!r} is not an account of the scenario ({names}, ...)",
                file=sys.stderr,
            )
            return 2
        tip = len(chain.records)
        height = tip if args.height is None else min(args.height, tip)
        blocks = ((r.block.header.height, r.output.block_events.risk) for r in chain.records)
        story = collect_story(account, blocks, height)
        if args.json:
            print(json.dumps(story_to_json(story)))
        else:
            print(render_story(story, chain.markets, chain.name_of))
        return 0
    if args.data_dir is None:
        print(
            "error: give --data-dir DIR (a node's data directory) or --scenario NAME",
            file=sys.stderr,
        )
        return 2
    if args.height is None:
        print("error: --height H is required with --data-dir", file=sys.stderr)
        return 2
    address = _parse_address(args.account)
    if address is None:
        print(f"error: {args.account!r} is not a 20-byte 0x address", file=sys.stderr)
        return 2
    if open_chain is None:
        print("error: no chain database reader (run through `strata explain`)", file=sys.stderr)
        return 2
    try:
        events = open_chain(args.data_dir)
    except Exception as error:  # the store says why it refused; show it, do not trace
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        last = min(args.height, events.tip_height)
        if args.height > events.tip_height:
            print(
                f"note: the chain's tip is {events.tip_height}; reading up to it", file=sys.stderr
            )
        first = max(1, events.first_height + 1)
        stored = ((h, events.risk_events(h)) for h in range(first, last + 1))
        story = collect_story(address, stored, last)
    finally:
        events.close()
    if args.json:
        print(json.dumps(story_to_json(story)))
    else:
        print(render_story(story, events.markets))
    return 0

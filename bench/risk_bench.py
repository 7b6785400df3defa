"""``strata bench engine --risk``: the risk phase alone, with N leveraged accounts under water.

For each N (default 1,000 / 2,000 / 5,000 / 10,000) a chain is built on the real engine (signed
transactions through ``build_block``, checked by ``apply_block`` on a second state, untimed):

- four market makers quote BTC with ``BulkPlace``: the asks the traders buy from, and a ladder
  of bids 0.5% apart below the price (the book the liquidations sell into);
- N traders each buy 5 to 40 lots at 60,000 with a balance of one ninth of the notional (about
  9x), and N/4 traders sell short at 3x (the auto-deleveraging counterparties, many and small);
- the insurance fund's capital depends on the mode (below), and the per-block notional limit
  is lifted (1e15 quote) so every under-water account is liquidated in the one block.

Two modes: ``backstop`` (the fund holds 2,000 USDC per trader and takes every account over) and
``adl`` (10 USDC per trader: the fund takes the first accounts, auto-deleveraging the rest).
Then the index and mark are set 15% lower on a copy of the state (every long is now below its
maintenance requirement, most bankrupt) and ``stf.risk.process_risk`` is timed on fresh copies
(the best of ``--repeat`` runs). Printed: the risk phase's time, the accounts it liquidated,
milliseconds per liquidated account, and that figure relative to the smallest N (1.0 everywhere
means linear growth). Progress goes to stderr.

    .venv/bin/strata bench engine --risk [--accounts 1000,2000,5000,10000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from strata.modules import markets  # noqa: E402
from strata.modules.liquidation import AccountLiquidated, Deleveraged  # noqa: E402
from strata.modules.markets import Market  # noqa: E402
from strata.modules.oracle import OracleRecord  # noqa: E402
from strata.scenarios.harness import USDC, ScenarioChain  # noqa: E402
from strata.state.store import State  # noqa: E402
from strata.stf.risk import process_risk  # noqa: E402
from strata.stf.transactions import PlaceOrder  # noqa: E402
from strata.stf.transition import copy_state  # noqa: E402

BTC = Market(
    market_id=1,
    symbol="BTC-PERP",
    quote_per_tick_lot=1_000,
    min_size_lots=1,
    max_size_lots=10_000_000,
    max_price_ticks=10_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=200,
)
PRICE = 60_000
SHOCK_PPM = 150_000
MODES = {"backstop": 2_000, "adl": 10}
"""The insurance fund's capital per trader (USDC): 2,000 backstops every account (a trader holds
about 1,150 USDC of notional, and the fund takes over at most its equity in notional,
``insurance_max_leverage_ppm``); 10 backstops a few, and auto-deleveraging closes the rest."""


def build(accounts: int, seed: int, fund_per_account: int) -> tuple[ScenarioChain, int]:
    """The chain with ``accounts`` leveraged longs and ``accounts // 4`` shorts; returns it and
    the number of longs that hold a position."""
    rng = random.Random(seed)
    longs = [(f"long-{i}", rng.randint(5, 40)) for i in range(accounts)]
    shorts = [(f"short-{i}", rng.randint(5, 40)) for i in range(accounts // 4)]
    per_lot = PRICE * BTC.quote_per_tick_lot
    balances = {name: lots * per_lot // 9 + lots * per_lot // 1_000 for name, lots in longs}
    balances.update({name: lots * per_lot // 3 for name, lots in shorts})
    makers = [f"mm-{k}" for k in range(4)]
    balances.update(dict.fromkeys(makers, 10**9 * USDC))
    chain = ScenarioChain(
        markets_=(BTC,),
        prices={1: PRICE},
        balances=balances,
        fund_quote=accounts * fund_per_account * USDC,
        liquidation_max_notional_per_block_quote=10**15,
    )
    chain.set_price(1, PRICE)
    bought = sum(lots for _, lots in longs)
    sold = sum(lots for _, lots in shorts)
    depth = max(1, bought // 400)
    txs: list[bytes] = []
    for k, mm in enumerate(makers):
        orders = [PlaceOrder(1, False, PRICE, -(-bought // 4), 0)]
        orders.append(PlaceOrder(1, True, PRICE - 1, -(-sold // 4), 0))
        orders += [PlaceOrder(1, True, PRICE - 300 * (j + 1) - k, depth, 0) for j in range(40)]
        txs += chain.bulk(mm, orders)
    chain.block(txs, "makers quote")
    print(f"  N={accounts}: signing {len(longs) + len(shorts)} orders", file=sys.stderr)
    txs = [chain.tx(name, PlaceOrder(1, True, PRICE, lots, 1)) for name, lots in longs]
    txs += [chain.tx(name, PlaceOrder(1, False, PRICE - 1, lots, 1)) for name, lots in shorts]
    print(f"  N={accounts}: building and validating the opening block", file=sys.stderr)
    chain.block(txs, "traders open")
    assert not chain.violations, chain.violations[:3]
    opened = sum(1 for name, _ in longs if chain.position(name, 1) > 0)
    return chain, opened


def shocked(state: State) -> State:
    """A copy of ``state`` with market 1's index and mark ``SHOCK_PPM`` lower (what the
    prologue of the shock block would have set)."""
    copy = copy_state(state)
    price = PRICE * (1_000_000 - SHOCK_PPM) // 1_000_000
    copy.tables["oracle"].put(1, OracleRecord(price, price))
    return copy


def measure(accounts: int, seed: int, repeat: int, mode: str) -> dict[str, float | int | str]:
    chain, opened = build(accounts, seed, MODES[mode])
    market_ids = markets.get_market_ids(chain.state)
    best = float("inf")
    liquidated = adl = 0
    for _ in range(repeat):
        state = shocked(chain.state)
        start = time.perf_counter()
        events = process_risk(state, chain.params, market_ids)
        best = min(best, time.perf_counter() - start)
        liquidated = sum(1 for e in events if isinstance(e, AccountLiquidated))
        adl = sum(1 for e in events if isinstance(e, Deleveraged))
    return {
        "mode": mode,
        "accounts": accounts,
        "longs_open": opened,
        "liquidated": liquidated,
        "deleveraged_events": adl,
        "risk_phase_ms": round(best * 1000, 1),
        "ms_per_liquidated": round(best * 1000 / max(liquidated, 1), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="strata bench engine --risk", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--accounts", default="1000,2000,5000,10000", help="comma-separated Ns")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.accounts.split(",")]
    results: list[dict[str, float | int | str]] = []
    for mode in MODES:
        first = len(results)
        for n in sizes:
            print(f"risk bench: {mode}, N={n}", file=sys.stderr, flush=True)
            results.append(measure(n, args.seed, args.repeat, mode))
            print(f"  N={n}: {results[-1]['risk_phase_ms']} ms", file=sys.stderr, flush=True)
        base = float(results[first]["ms_per_liquidated"]) or 1.0
        for r in results[first:]:
            r["per_account_vs_smallest"] = round(float(r["ms_per_liquidated"]) / base, 2)
    if args.json:
        print(json.dumps({"benchmark": "risk_phase", "shock_ppm": SHOCK_PPM, "results": results}))
        return 0
    print(
        f"{'mode':<10}{'accounts':>9}{'liquidated':>12}{'ADL events':>12}{'risk phase ms':>15}"
        f"{'ms/account':>12}{'vs smallest':>13}"
    )
    for r in results:
        print(
            f"{r['mode']:<10}{r['accounts']:>9,}{r['liquidated']:>12,}{r['deleveraged_events']:>12,}"
            f"{r['risk_phase_ms']:>15,}{r['ms_per_liquidated']:>12}{r['per_account_vs_smallest']:>13}"
        )
    print("(vs smallest: ms per liquidated account relative to the smallest N of the same mode;")
    print(" 1.0 is linear growth; mode backstop: the fund takes every account, adl: mostly ADL)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

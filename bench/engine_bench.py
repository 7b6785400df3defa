"""``strata bench engine``: the matching engine alone and the full state transition, side by side.

Three figures from one run, on one core (the machine is shared and noisy: compare the ratios):

(a) ``book_events_per_s``: the book workload of ``bench/workload.py`` through ``Book`` alone;
(b) ``engine_events_per_s``: full ``apply_block`` (admission with nonces and margin reservation,
    matching, clearing and settlement, events, receipts and every root) on a chain workload, with
    signatures checked upstream, as a verifier re-executes blocks;
(c) ``reference_events_per_s``: the naive list-based model book on the book workload.

(a) and (b) are each the best of ``--runs`` passes (3 by default; each pass of (b) re-executes the
chain from genesis): on a shared machine a pass is only ever slowed down by other work, never sped
up, so the fastest pass is the closest to what the code costs (``timeit``'s advice). Every pass of
(b) is in the JSON too (``engine_runs_events_per_s``, ``engine_bulk_runs_events_per_s``), and on
a Linux virtual machine the CPU time its hypervisor took away during each (``engine_runs_steal_ms``,
``engine_bulk_runs_steal_ms``; ``book_steal_ms`` during (a) and (c)): a pass that lost time to
the host was slowed by the machine, not the code (``bench/engine_runs.py``).

With ring 0 compiled (``strata/compiled.py``, what ``make setup`` builds), (b) is timed again in
a fresh interpreter running ring 0 from source (``STRATA_PURE=1``):
``engine_interpreted_events_per_s`` and ``compiled_vs_interpreted`` (and their bulk twins).

``--record FILE`` appends the run's JSON line, with the time and the commit, to ``FILE``;
``--runs-of FILE [--plot OUT]`` runs nothing and sums up the runs recorded there against the
targets, and draws each run's engine rates against its book rate (``bench/engine_runs.py``).

The chain workload (seeded): ``accounts`` funded accounts trade one market around a fixed oracle
price; each block holds ``block_size`` single-order transactions: 45% passive GTC/post-only
placements at 0-5 ticks behind the touch, 30% cancels of the sender's own live orders, 15% IOC
takers that cross 1-3 levels, 10% modifies of a live order. The blocks are first built with
``build_block`` (untimed, real secp256k1 signatures), then re-executed from genesis with
``apply_block`` (timed), checking every header root.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.engine_runs import (  # noqa: E402
    host_steal_ms,
    load_runs,
    plot_runs,
    print_summary,
    record_run,
    steal_during,
    summarize_runs,
)
from strata import compiled  # noqa: E402
from strata.adapters.lifetime import collector_paused, tune_collector  # noqa: E402
from strata.client.signing import wallet_from_seed  # noqa: E402
from strata.core.signatures import compute_transaction_digest  # noqa: E402
from strata.modules.clearing.events import OrderUpdate  # noqa: E402
from strata.modules.markets import Market  # noqa: E402
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis  # noqa: E402
from strata.stf.params import ChainParams  # noqa: E402
from strata.stf.transactions import (  # noqa: E402
    Action,
    BulkCancel,
    BulkModify,
    BulkPlace,
    CancelOrder,
    ModifyOrder,
    PlaceOrder,
    SignedTransaction,
    encode_action,
    encode_transaction,
)
from strata.stf.transition import apply_block, build_block  # noqa: E402

MARKET = Market(
    market_id=1,
    symbol="BTC-PERP",
    quote_per_tick_lot=10,
    min_size_lots=1,
    max_size_lots=1_000_000,
    max_price_ticks=10_000_000,
    initial_margin_ppm=50_000,
    maintenance_margin_ppm=30_000,
    max_open_orders_per_account=1_000,
)
MID = 100_000
GENESIS_MS = 1_700_000_000_000


def _passive_price(rng: random.Random, is_buy: bool, best_bid: int, best_ask: int) -> int:
    return max(best_bid - rng.randrange(6) if is_buy else best_ask + rng.randrange(6), 1)


def build_chain_workload(
    events: int,
    seed: int,
    accounts: int = 200,
    block_size: int = 10_000,
    bulk: bool = False,
) -> tuple[GenesisConfig, list[tuple[object, list[bytes | None]]]]:
    """Build the blocks of the chain workload (untimed).

    ``events`` counts order operations (a placement, a cancel or a modify); a block holds about
    ``block_size`` of them. With ``bulk``, the first quarter of the accounts are market makers
    whose transactions are bulk actions of 8 to 32 operations (requotes as ``BulkModify``, new
    quotes as ``BulkPlace`` of post-only orders, pulls as ``BulkCancel``), as market makers use
    them on venues with bulk actions; the other accounts send single orders as without ``bulk``.
    Returns the genesis and, per block, the block and its upstream signature results.
    """
    rng = random.Random(seed)
    wallets = [wallet_from_seed(f"bench-{i}") for i in range(accounts)]
    makers = accounts // 4 if bulk else 0
    params = ChainParams(chain_id=1, block_gas_limit=10**12, max_transactions_per_block=10**6)
    config = GenesisConfig(
        params=params,
        timestamp_ms=GENESIS_MS,
        markets=(MARKET,),
        allocations=tuple(Allocation(w.address, 10**15) for w in wallets),
        prices=(InitialPrice(1, MID),),
    )
    state, _ = make_genesis(config)
    live: dict[int, list[int]] = {i: [] for i in range(accounts)}
    owner_of: dict[bytes, int] = {w.address: i for i, w in enumerate(wallets)}
    blocks: list[tuple[object, list[bytes | None]]] = []
    nonce = GENESIS_MS
    now = GENESIS_MS
    made = 0
    book = state.books[1]
    while made < events:
        txs: list[bytes] = []
        signers: list[bytes | None] = []
        in_block = 0
        while in_block < block_size and made < events:
            who = rng.randrange(accounts)
            wallet = wallets[who]
            best_bid = book.best_bid() or MID - 1
            best_ask = book.best_ask() or MID + 1
            action: Action
            ops = 1
            if who < makers:
                ops = rng.randint(8, 32)
                roll = rng.random()
                mine = live[who]
                if roll < 0.5 and len(mine) >= ops:
                    chosen = [mine.pop(rng.randrange(len(mine))) for _ in range(ops)]
                    action = BulkModify(
                        tuple(
                            ModifyOrder(
                                1,
                                oid,
                                None,
                                (is_buy := rng.random() < 0.5),
                                _passive_price(rng, is_buy, best_bid, best_ask),
                                rng.randint(1, 10),
                                3,
                            )
                            for oid in chosen
                        )
                    )
                elif roll < 0.7 and len(mine) >= ops:
                    chosen = [mine.pop(rng.randrange(len(mine))) for _ in range(ops)]
                    action = BulkCancel(tuple(CancelOrder(1, oid, None) for oid in chosen))
                else:
                    action = BulkPlace(
                        tuple(
                            PlaceOrder(
                                1,
                                (is_buy := rng.random() < 0.5),
                                _passive_price(rng, is_buy, best_bid, best_ask),
                                rng.randint(1, 10),
                                3,
                            )
                            for _ in range(ops)
                        )
                    )
            else:
                roll = rng.random()
                if roll < 0.30 and live[who]:
                    order_id = live[who].pop(rng.randrange(len(live[who])))
                    action = CancelOrder(1, order_id, None)
                elif roll < 0.40 and live[who]:
                    order_id = live[who].pop(rng.randrange(len(live[who])))
                    is_buy = rng.random() < 0.5
                    price = _passive_price(rng, is_buy, best_bid, best_ask)
                    action = ModifyOrder(1, order_id, None, is_buy, price, rng.randint(1, 10), 0)
                elif roll < 0.55:
                    is_buy = rng.random() < 0.5
                    depth = rng.randint(0, 2)
                    price = best_ask + depth if is_buy else best_bid - depth
                    action = PlaceOrder(1, is_buy, max(price, 1), rng.randint(5, 30), 1)
                else:
                    is_buy = rng.random() < 0.5
                    price = _passive_price(rng, is_buy, best_bid, best_ask)
                    tif = 3 if rng.random() < 0.5 else 0
                    action = PlaceOrder(1, is_buy, price, rng.randint(1, 10), tif)
            nonce += 1
            digest = compute_transaction_digest(
                params.chain_id, params.bridge_address, wallet.address, nonce, encode_action(action)
            )
            txs.append(
                encode_transaction(
                    SignedTransaction(
                        wallet.address, nonce, action, None, wallet.sign_digest(digest)
                    )
                )
            )
            signers.append(wallet.address)
            made += ops
            in_block += ops
        now += 1_000
        nonce = max(nonce, now)
        block, output = build_block(state, now, (), txs, params, signers)
        assert not output.rejected, output.rejected[:3]
        for receipt in output.receipts:
            for event in receipt.events:
                if isinstance(event, OrderUpdate) and event.order_id:
                    who = owner_of[event.owner]
                    if event.status == 0 and event.filled_lots == 0 and event.remaining_lots:
                        live[who].append(event.order_id)
        for i in live:
            live[i] = [o for o in live[i] if book.get_order(o) is not None]
        blocks.append((block, signers))
    return config, blocks


def run_engine(config: GenesisConfig, blocks: list[tuple[object, list[bytes | None]]]) -> float:
    """Re-execute the blocks from genesis with ``apply_block``; return the seconds taken.

    The garbage collector is set as the node and the verifier set it (``tune_collector``, and
    held off during each block: ``collector_paused``), and put back afterwards."""
    state, _ = make_genesis(config)
    thresholds = gc.get_threshold()
    tune_collector()
    elapsed = 0.0
    try:
        for block, signers in blocks:
            start = time.perf_counter()
            with collector_paused():
                apply_block(state, block, config.params, signers)  # type: ignore[arg-type]
            elapsed += time.perf_counter() - start
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    return elapsed


def run_passes(
    config: GenesisConfig, blocks: list[tuple[object, list[bytes | None]]], runs: int
) -> tuple[list[float], list[int | None]]:
    """``runs`` passes of :func:`run_engine`: the seconds of each, and the steal during each
    (milliseconds the hypervisor took away; ``None`` if the machine does not count it)."""
    seconds: list[float] = []
    steal: list[int | None] = []
    for _ in range(runs):
        before = host_steal_ms()
        seconds.append(run_engine(config, blocks))
        steal.append(steal_during(before))
    return seconds, steal


def run_book(events: int, seed: int, runs: int = 3) -> tuple[float, float, int]:
    """(book events/s (best of ``runs``), model book events/s, events given to the model)."""
    from bench.book_bench import run_book_bench

    result = run_book_bench(events, seed, runs=runs)
    return (
        float(result["book_events_per_s"]),
        float(result["model_events_per_s"]),
        int(result["model_events"]),
    )


def _ring0(how: dict[str, object]) -> str:
    return f"compiled ({how['modules']} modules)" if how["compiled"] else "interpreted"


def _interpreted_engine(events: int, seed: int, runs: int) -> tuple[float, float]:
    """(b) again in a fresh interpreter running ring 0 from source (``STRATA_PURE=1``): the
    seconds of the single-order and the bulk workloads (each the best of ``runs`` passes)."""
    print("timing apply_block again, ring 0 interpreted...", file=sys.stderr)
    env = dict(os.environ, STRATA_PURE="1")
    argv = ["--engine-only", "--events", str(events), "--seed", str(seed), "--runs", str(runs)]
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return float(result["engine_s"]), float(result["bulk_s"])


def _report_runs(path: Path, plot: Path | None, as_json: bool) -> int:
    """``--runs-of``: the recorded runs summed up (and drawn)."""
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    runs = load_runs(path)
    summary = summarize_runs(runs)
    if plot is not None:
        plot_runs(runs, plot)
        summary["plot"] = str(plot)
    if as_json:
        print(json.dumps(summary))
    else:
        print_summary(summary)
        if plot is not None:
            print(f"plot: {plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata bench engine", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="book and engine events")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--runs", type=int, default=3, help="passes of (a) and (b); the fastest is reported"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--engine-only", action="store_true", help="(b) alone, as JSON (the interpreted run)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append this run's JSON line, with the time and the commit, to FILE",
    )
    parser.add_argument(
        "--runs-of",
        type=Path,
        metavar="FILE",
        help="run nothing: sum up the runs recorded in FILE (--record) against the targets",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="OUT",
        help="with --runs-of: draw each run's engine rates against its book rate (.png, .svg)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.plot is not None and args.runs_of is None:
        parser.error("--plot draws the runs of --runs-of FILE")
    if args.runs_of is not None:
        return _report_runs(args.runs_of, args.plot, args.json)

    print(f"building the chain workloads ({args.events} order operations each)...", file=sys.stderr)
    config, blocks = build_chain_workload(args.events, args.seed)
    bulk_config, bulk_blocks = build_chain_workload(args.events, args.seed, bulk=True)
    how = compiled.status()
    print(f"timing apply_block (ring 0 {_ring0(how)})...", file=sys.stderr)
    engine_runs, engine_steal = run_passes(config, blocks, args.runs)
    bulk_runs, bulk_steal = run_passes(bulk_config, bulk_blocks, args.runs)
    engine_s, bulk_s = min(engine_runs), min(bulk_runs)
    if args.engine_only:
        print(json.dumps({"engine_s": engine_s, "bulk_s": bulk_s}))
        return 0
    interpreted = (
        _interpreted_engine(args.events, args.seed, args.runs) if how["compiled"] else None
    )
    print("timing the book and the model book...", file=sys.stderr)
    before = host_steal_ms()
    book_rate, model_rate, model_events = run_book(args.events, args.seed, args.runs)
    book_steal = steal_during(before)
    engine_rate = args.events / engine_s
    summary = {
        "events": args.events,
        "seed": args.seed,
        "runs": args.runs,
        "book_events_per_s": round(book_rate),
        "engine_events_per_s": round(engine_rate),
        "engine_bulk_events_per_s": round(args.events / bulk_s),
        "engine_runs_events_per_s": [round(args.events / s) for s in engine_runs],
        "engine_bulk_runs_events_per_s": [round(args.events / s) for s in bulk_runs],
        "reference_events_per_s": round(model_rate),
        "reference_events": model_events,
        "book_vs_reference": round(book_rate / model_rate, 1),
        "engine_vs_book": round(engine_rate / book_rate, 3),
        "ring0": _ring0(how),
    }
    if book_steal is not None:  # (known for one pass, known for all: the same file is read)
        summary["engine_runs_steal_ms"] = engine_steal
        summary["engine_bulk_runs_steal_ms"] = bulk_steal
        summary["book_steal_ms"] = book_steal
    if interpreted is not None:
        summary["engine_interpreted_events_per_s"] = round(args.events / interpreted[0])
        summary["engine_bulk_interpreted_events_per_s"] = round(args.events / interpreted[1])
        summary["compiled_vs_interpreted"] = round(interpreted[0] / engine_s, 2)
        summary["compiled_vs_interpreted_bulk"] = round(interpreted[1] / bulk_s, 2)
    if args.record is not None:
        record_run(args.record, summary, ROOT)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'benchmark':<40}{'events/s':>14}")
        print(f"{'(a) book only':<40}{summary['book_events_per_s']:>14,}")
        print(f"{'(b) full apply_block, single orders':<40}{summary['engine_events_per_s']:>14,}")
        bulk_rate = summary["engine_bulk_events_per_s"]
        print(f"{'(b) full apply_block, with MM bulk actions':<40}{bulk_rate:>14,}")
        print(f"{'(c) naive model book':<40}{summary['reference_events_per_s']:>14,}")
        if interpreted is not None:
            for label, key in (
                ("(b) single orders, ring 0 interpreted", "engine_interpreted_events_per_s"),
                ("(b) with bulk, ring 0 interpreted", "engine_bulk_interpreted_events_per_s"),
            ):
                print(f"{label:<40}{summary[key]:>14,}")
            print(
                f"compiled / interpreted = {summary['compiled_vs_interpreted']}x single, "
                f"{summary['compiled_vs_interpreted_bulk']}x bulk"
            )
        passes = ", ".join(f"{rate:,}" for rate in summary["engine_runs_events_per_s"])
        print(f"(b) single orders, each pass: {passes} (the best is reported)")
        if book_steal is not None:
            print(
                "CPU time the host took away (steal, ms): (b) single orders "
                f"{', '.join(map(str, engine_steal))}, with bulk {', '.join(map(str, bulk_steal))}"
                f"; (a) and (c) {book_steal}"
            )
        print(f"ring 0: {summary['ring0']}")
        print(f"book / model book = {summary['book_vs_reference']}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

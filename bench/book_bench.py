"""Book benchmark: the indexed ``Book`` against the naive model book on one synthetic stream.

Run from a checkout::

    PYTHONPATH=src python bench/book_bench.py --events 300000 --seed 1

Both books replay the same pre-decoded events (``bench/workload.py``) in a tight loop; the timed
loop includes building each incoming ``Order`` (as a handler would). The naive model book
(``tests/differential/model_book.py``) is far slower, so it runs on a prefix of the stream
(``--model-events``) and the ratio compares rates. Figures are events per second of one core,
with the garbage collector left on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for entry in (str(ROOT / "src"), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from tests.differential.model_book import ModelBook  # noqa: E402

from bench.workload import OP_CANCEL, OP_PLACE, Event, generate  # noqa: E402
from strata.modules.book import Book, Order  # noqa: E402


def _replay(factory: Callable[[], Any], setup: list[Event], events: list[Event]) -> float:
    """Seconds to apply ``events`` to a book built by ``factory`` and seeded with ``setup``."""
    book = factory()
    for ev in setup:
        book.place(Order(ev[1], ev[2], ev[3], ev[4], ev[5]), ev[6])  # type: ignore[arg-type]
    place, cancel, reduce = book.place, book.cancel, book.reduce
    start = time.perf_counter()
    for ev in events:
        op = ev[0]
        if op == OP_PLACE:
            place(Order(ev[1], ev[2], ev[3], ev[4], ev[5]), ev[6])  # type: ignore[arg-type]
        elif op == OP_CANCEL:
            cancel(ev[1])
        else:
            reduce(ev[1], ev[2])
    return time.perf_counter() - start


def run_book_bench(
    events: int, seed: int, model_events: int | None = None, runs: int = 3
) -> dict[str, Any]:
    """Measure the book (best of ``runs`` passes) and the naive model book on the same stream.

    Returns ``events``, ``book_events_per_s``, ``model_events``, ``model_events_per_s``,
    ``speedup`` (book rate / model rate), and the stream's ``mix``.
    """
    workload = generate(events, seed)
    book_s = min(
        _replay(lambda: Book(1, 10**9), workload.setup, workload.events) for _ in range(runs)
    )
    n_model = min(events, model_events if model_events is not None else 20_000)
    model_s = _replay(lambda: ModelBook(1, 10**9), workload.setup, workload.events[:n_model])
    book_rate = events / book_s
    model_rate = n_model / model_s
    return {
        "events": events,
        "seed": seed,
        "book_events_per_s": round(book_rate),
        "model_events": n_model,
        "model_events_per_s": round(model_rate),
        "speedup": round(book_rate / model_rate, 1),
        "mix": dict(workload.mix),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model-events", type=int, default=20_000)
    args = p.parse_args(argv)
    r = run_book_bench(args.events, args.seed, args.model_events)
    mix = ", ".join(f"{k} {100 * v / r['events']:.1f}%" for k, v in r["mix"].items())
    print(f"workload: {r['events']:,} events, seed {r['seed']} ({mix})")
    print(f"{'book':<24}{'events':>12}{'events/s':>14}{'ratio':>8}")
    print(
        f"{'Book (indexed)':<24}{r['events']:>12,}{r['book_events_per_s']:>14,}{r['speedup']:>7}x"
    )
    print(f"{'ModelBook (naive)':<24}{r['model_events']:>12,}{r['model_events_per_s']:>14,}{1:>7}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

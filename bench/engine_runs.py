"""Runs of ``strata bench engine`` kept over time, summed up against the targets and plotted.

This shared machine's speed moves by a third and more from one hour to the next, and a run's engine
figure moves with it. A run of ``strata bench engine --record FILE`` appends its JSON line to
``FILE`` with the time (UTC) and the checkout's commit; ``strata bench engine --runs-of FILE`` then
reads every run recorded there and prints, for the full engine with single orders and with bulk
actions, how many runs reached the 150,000 events/s target and their range, and with ``--plot OUT``
draws each run's engine figure against its book figure: the book workload, timed in the same run,
is the gauge of the machine's speed in that minute (it runs the book alone: a change to admission,
clearing or the roots leaves it alone), and a run whose engine misses the target can be seen to be
a slow minute or not.

Some slow minutes can be named: a virtual machine's kernel counts the CPU time its hypervisor
gave to other guests while this one's CPUs had work ("steal", in ``/proc/stat``). A run records the
steal during each pass of the engine and during the book's timing (:func:`host_steal_ms`), and
``--runs-of`` says how many of the runs that missed a target lost time to the host during their
best pass. Steal names only one kind of slow minute: another guest sharing the CPU's caches or
memory bandwidth slows a pass without taking its CPU away, and shows up as nothing here.

A record needs ``book_events_per_s``, ``engine_events_per_s`` and ``engine_bulk_events_per_s``
(what ``--json`` prints); ``time``, ``commit``, the passes (``engine_runs_events_per_s``) and
their steal (``engine_runs_steal_ms``) are used when present.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.plotting import pyplot

BOOK_TARGET = 500_000
"""The book alone: events/s on one core (issue 2)."""

ENGINE_TARGET = 150_000
"""The full engine, single orders and bulk: events/s on one core (issue 2)."""

FIGURES = (("book", BOOK_TARGET), ("engine", ENGINE_TARGET), ("engine_bulk", ENGINE_TARGET))
"""The figures counted against their targets: ``LABEL_events_per_s`` in a record."""

REQUIRED = tuple(f"{label}_events_per_s" for label, _ in FIGURES)

PROC_STAT = Path("/proc/stat")


def host_steal_ms(stat: Path = PROC_STAT) -> int | None:
    """The CPU time this machine's hypervisor has given to other guests while this one's CPUs had
    work, since boot, in milliseconds: the steal column of ``/proc/stat``'s ``cpu`` line (every
    CPU; an idle CPU has no work to lose, so it is the busy ones'). ``None`` where there is no such
    file or column (not Linux, or a kernel too old to count it)."""
    try:
        with stat.open() as file:
            fields = file.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu" or not fields[8].isdigit():
        return None
    return int(fields[8]) * 1000 // os.sysconf("SC_CLK_TCK")


def steal_during(before: int | None) -> int | None:
    """The steal (ms) since ``before`` (a :func:`host_steal_ms` reading), or ``None`` if unknown."""
    after = host_steal_ms()
    return None if before is None or after is None else after - before


def record_run(path: Path, summary: dict[str, Any], root: Path) -> dict[str, Any]:
    """Append ``summary`` (``strata bench engine --json``'s line) to ``path`` as one JSON line,
    with ``time`` (UTC, to the second) and ``commit`` (``root``'s ``git describe``, or ``None``
    outside a git checkout); return the record."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": _commit(root)}
    record.update(summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(record) + "\n")
    return record


def _commit(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def load_runs(path: Path) -> list[dict[str, Any]]:
    """Every record in ``path`` (one JSON object a line; blank lines skipped).

    Raises
    ------
    SystemExit
        Naming the line, if a line is not a JSON object with the :data:`REQUIRED` figures as
        positive integers.
    """
    runs: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"error: {path}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise SystemExit(f"error: {path}, line {number}: not a JSON object")
        for key in REQUIRED:
            value = record.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise SystemExit(f"error: {path}, line {number}: {key} must be a positive integer")
        runs.append(record)
    return runs


def summarize_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per figure (``book``, ``engine``, ``engine_bulk``): the runs, how many reached the target,
    and the lowest, median and highest rate; for the engine's figures, of the runs below the
    target, how many recorded the steal of their best pass and how many of those lost time to the
    host in it (:func:`best_pass_steal_ms`); and the time span of the records."""
    summary: dict[str, Any] = {"runs": len(runs)}
    times = sorted(str(r["time"]) for r in runs if r.get("time"))
    if times:
        summary["first"], summary["last"] = times[0], times[-1]
    for label, target in FIGURES:
        rates = [int(r[f"{label}_events_per_s"]) for r in runs]
        summary[label] = {
            "target": target,
            "at_target": sum(rate >= target for rate in rates),
            "min": min(rates, default=0),
            "median": round(statistics.median(rates)) if rates else 0,
            "max": max(rates, default=0),
        }
        if label != "book":
            steals = [best_pass_steal_ms(r, label) for r in runs]
            missed = [
                steal
                for steal, rate in zip(steals, rates, strict=True)
                if rate < target and steal is not None
            ]
            summary[label]["missed_with_steal_known"] = len(missed)
            summary[label]["missed_with_steal"] = sum(steal > 0 for steal in missed)
    return summary


def best_pass_steal_ms(run: dict[str, Any], label: str) -> int | None:
    """The steal (ms) during the pass that gave a run's ``label`` figure (``engine`` or
    ``engine_bulk``: its best pass), or ``None`` if the run did not record it."""
    passes = run.get(f"{label}_runs_events_per_s")
    steal = run.get(f"{label}_runs_steal_ms")
    if not isinstance(passes, list) or not isinstance(steal, list) or len(passes) != len(steal):
        return None
    best = run[f"{label}_events_per_s"]
    for rate, ms in zip(passes, steal, strict=True):
        if rate == best and isinstance(ms, int):
            return ms
    return None


def plot_runs(runs: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Each run's full-engine rates (single orders, bulk actions; the best pass filled, every pass
    as a dot) against its book rate, under the engine's target line. The suffix of ``path``
    picks the format.

    Raises
    ------
    SystemExit
        If matplotlib is not installed (``pip install 'strata[plot]'``; ``make setup`` has it).
    """
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(7.2, 4.6))
    books = [r["book_events_per_s"] / 1e6 for r in runs]  # each run's x, in million events/s
    stolen_seen = False
    for key, passes_key, label, color in (
        ("engine_events_per_s", "engine_runs_events_per_s", "single orders", "tab:blue"),
        ("engine_bulk_events_per_s", "engine_bulk_runs_events_per_s", "bulk actions", "tab:orange"),
    ):
        ax.scatter(books, [r[key] / 1e3 for r in runs], color=color, label=f"{label}, best pass")
        stolen = [
            (book, r[key] / 1e3)
            for book, r in zip(books, runs, strict=True)
            if (best_pass_steal_ms(r, key.removesuffix("_events_per_s")) or 0) > 0
        ]
        if stolen:
            xs, ys = zip(*stolen, strict=True)
            ax.scatter(xs, ys, s=90, facecolors="none", edgecolors=color, linewidths=1.2)
            stolen_seen = True
        dots = [
            (book, rate / 1e3)
            for book, r in zip(books, runs, strict=True)
            for rate in r.get(passes_key) or ()
        ]
        if dots:
            xs, ys = zip(*dots, strict=True)
            ax.scatter(xs, ys, color=color, s=8, alpha=0.35, label=f"{label}, each pass")
    ax.axhline(ENGINE_TARGET / 1e3, color="black", linestyle="--", linewidth=1)
    ax.annotate(
        f"target {ENGINE_TARGET:,}",
        (0.01, ENGINE_TARGET / 1e3),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(0, 3),
        fontsize=8,
    )
    if stolen_seen:  # one legend entry for the rings of both series
        ax.scatter(
            [], [], s=90, facecolors="none", edgecolors="gray", label="steal in the best pass"
        )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("book alone, same run (million events/s): the machine's speed that minute")
    ax.set_ylabel("full engine (thousand events/s)")
    commits = sorted({str(r["commit"]) for r in runs if r.get("commit")})
    at = f" at {', '.join(commits)}" if commits else ""
    ax.set_title(title or f"strata bench engine: {len(runs)} runs{at}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def print_summary(summary: dict[str, Any]) -> None:
    """The summary as a table."""
    span = f", {summary['first']} to {summary['last']}" if "first" in summary else ""
    print(f"{summary['runs']} runs{span}")
    print(f"{'figure':<14}{'target':>10}{'at target':>11}{'min':>11}{'median':>11}{'max':>11}")
    for label, _ in FIGURES:
        row = summary[label]
        print(
            f"{label:<14}{row['target']:>10,}{row['at_target']:>6} of {summary['runs']:<3}"
            f"{row['min']:>10,}{row['median']:>11,}{row['max']:>11,}"
        )
    for label, _ in FIGURES:
        row = summary[label]
        below = summary["runs"] - row["at_target"]
        if below and row.get("missed_with_steal_known"):
            print(
                f"{label}: of the {below} runs below the target, {row['missed_with_steal_known']}"
                f" recorded steal; {row['missed_with_steal']} of those lost CPU time to the host"
                " (steal) in their best pass"
            )

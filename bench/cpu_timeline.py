"""Where each core's time goes: the CPU of a node and its worker processes, by role, over time.

A node names itself and each helper process (``strata-node``, ``strata-sig``, ``strata-match``,
``strata-commit``, ``strata-index``, ``strata-ckpt``: ``adapters/lifetime.py``), so its process
tree can be read from ``/proc`` by role:

- ``node``: the node's main thread (block production, the API, the feeds: the event loop);
- ``node threads``: its other threads (signature checks when it has no signature processes, the
  DA poster, the index hand-off);
- ``signatures``, ``matching``, ``commitment``, ``index``: the worker processes of each kind,
  summed;
- ``checkpoint``: checkpoint and bulk writers, live or exited (a writer the node has waited for
  counts in its ``cutime``);
- ``other``: any other child (the ``multiprocessing`` resource tracker).

:class:`CpuSampler` reads the tree every ``interval`` seconds on a thread of its own (a read costs
about a millisecond); :func:`plot_timelines` draws one panel per run: each role's share of a core
stacked over time, under the line of the cores the run had.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.plotting import pyplot

TICKS = os.sysconf("SC_CLK_TCK")
ROLE_OF_NAME = {
    "strata-sig": "signatures",
    "strata-match": "matching",
    "strata-commit": "commitment",
    "strata-index": "index",
    "strata-ckpt": "checkpoint",
}
ROLES = (
    "node",
    "node threads",
    "signatures",
    "matching",
    "commitment",
    "index",
    "checkpoint",
    "other",
)
"""Every role, in the order the plot stacks them (the node's main thread at the bottom)."""


def _stat(path: Path) -> list[str]:
    """The fields of a ``/proc`` ``stat`` file after the command name (which may hold spaces)."""
    return path.read_text().rsplit(")", 1)[1].split()


def _seconds(fields: list[str], children: bool = False) -> float:
    """``utime + stime`` (and, with ``children``, ``cutime + cstime``) in seconds."""
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def read_tree_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the process ``pid`` and its descendants, by role (see the module
    docstring), with ``total``. A process that exits while it is read is left out."""
    cpu = dict.fromkeys(ROLES, 0.0)

    def children_of(proc: Path) -> list[int]:
        return [
            int(child)
            for task in proc.joinpath("task").iterdir()
            for child in (task / "children").read_text().split()
        ]

    def visit(child: int) -> None:
        proc = Path(f"/proc/{child}")
        try:
            name = proc.joinpath("comm").read_text().strip()
            seconds = _seconds(_stat(proc / "stat"), children=True)
            grandchildren = children_of(proc)
        except (FileNotFoundError, ProcessLookupError):
            return
        cpu[ROLE_OF_NAME.get(name, "other")] += seconds
        for grandchild in grandchildren:
            visit(grandchild)

    proc = Path(f"/proc/{pid}")
    try:
        fields = _stat(proc / "stat")
        main = _seconds(_stat(proc / "task" / str(pid) / "stat"))
        cpu["node"] = main
        cpu["node threads"] = _seconds(fields) - main  # the process counts its ended threads
        cpu["checkpoint"] = _seconds(fields, children=True) - _seconds(fields)
        children = children_of(proc)
    except (FileNotFoundError, ProcessLookupError):
        return {**cpu, "total": 0.0}
    for child in children:
        visit(child)
    cpu["total"] = sum(cpu.values())
    return cpu


def cpu_percent(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, int]:
    """Each role's CPU between two readings, in percent of one core (roles that used none left
    out, ``total`` kept)."""
    pct = {
        role: round(100 * (after.get(role, 0.0) - before.get(role, 0.0)) / seconds)
        for role in after
    }
    return {role: p for role, p in pct.items() if p > 0 or role == "total"}


@dataclass
class CpuTimeline:
    """One run's samples: ``times`` in seconds from the first reading, ``shares[role][i]`` the
    role's percent of one core between readings ``i`` and ``i + 1``."""

    title: str
    cores: int
    times: list[float] = field(default_factory=list)
    shares: dict[str, list[float]] = field(default_factory=dict)


class CpuSampler:
    """Reads :func:`read_tree_cpu` of ``pid`` every ``interval`` seconds, on a thread, from
    :meth:`start` to :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self._readings: list[tuple[float, dict[str, float]]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._readings.append((time.monotonic(), read_tree_cpu(self.pid)))
            if self._stopped.wait(self.interval):
                self._readings.append((time.monotonic(), read_tree_cpu(self.pid)))
                return

    def stop(self, cores: int, title: str = "") -> CpuTimeline:
        """Stop sampling; the timeline of what was read, for a run on ``cores`` cores."""
        self._stopped.set()
        self._thread.join()
        timeline = CpuTimeline(title, cores, shares={role: [] for role in ROLES})
        if not self._readings:
            return timeline
        start = self._readings[0][0]
        for (t0, before), (t1, after) in zip(self._readings, self._readings[1:], strict=False):
            if t1 <= t0:
                continue
            timeline.times.append(t0 - start)
            for role in ROLES:
                used = after.get(role, 0.0) - before.get(role, 0.0)
                timeline.shares[role].append(max(0.0, 100 * used / (t1 - t0)))
        return timeline


def plot_timelines(timelines: Sequence[CpuTimeline], path: Path, columns: int = 2) -> None:
    """One panel per timeline, ``columns`` to a row: each role's percent of one core stacked over
    time (step-wise, as sampled), under a dashed line at the run's cores. The file's suffix
    picks the format (``.svg``, ``.png``, ``.pdf``).

    Raises
    ------
    SystemExit
        If matplotlib is not installed (``pip install 'strata[plot]'``; ``make setup`` has it).
    """
    plt = pyplot()
    rows = max(1, -(-len(timelines) // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(6.4 * columns, 3.2 * rows), squeeze=False, sharey=True
    )
    palette = plt.get_cmap("tab10")
    colors = {role: palette(i) for i, role in enumerate(ROLES)}
    top = max((t.cores for t in timelines), default=1) * 100
    drawn: dict[str, Any] = {}  # role -> its first area, for the figure's one legend
    for ax, timeline in zip(axes.flat, timelines, strict=False):
        used = [role for role in ROLES if any(timeline.shares.get(role, ()))]
        if timeline.times:
            areas = ax.stackplot(
                timeline.times,
                [timeline.shares[role] for role in used],
                colors=[colors[role] for role in used],
                step="post",
            )
            for role, area in zip(used, areas, strict=True):
                drawn.setdefault(role, area)
        ax.axhline(100 * timeline.cores, color="black", linestyle="--", linewidth=1)
        ax.set_title(timeline.title, fontsize=9)
        ax.set_ylim(0, top * 1.05)
        ax.set_xlabel("seconds under load")
        ax.set_ylabel("% of one core")
    for ax in list(axes.flat)[len(timelines) :]:
        ax.set_visible(False)
    roles = [role for role in ROLES if role in drawn]
    figure.legend(
        [drawn[role] for role in roles], roles, loc="upper center", ncol=len(ROLES), frameon=False
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (3.2 * rows)))
    figure.savefig(path)
    plt.close(figure)

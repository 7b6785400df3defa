"""Where each core's time goes (``bench/cpu_timeline.py``): a real process tree read from
``/proc`` by the names its processes give themselves (``adapters/lifetime.py``), sampled over
time, and drawn."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.cpu_timeline import ROLES, CpuSampler, CpuTimeline, plot_timelines, read_tree_cpu

# A root process: a thread and a child named strata-sig each burn CPU, a child named
# strata-index sleeps, a forked child burns CPU and is waited for (in the root's cutime); the
# main thread sleeps. It prints "ready" once all the burning is done, then waits for stdin.
TREE = textwrap.dedent(
    """
    import os, sys, threading, time, multiprocessing as mp
    from strata.adapters.lifetime import name_process

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def worker(name, seconds, done):
        name_process(name)
        burn(seconds)
        done.set()
        time.sleep(60)

    if __name__ == "__main__":
        ctx = mp.get_context("spawn")
        done = [ctx.Event(), ctx.Event()]
        kids = [
            ctx.Process(target=worker, args=("strata-sig", 0.6, done[0]), daemon=True),
            ctx.Process(target=worker, args=("strata-index", 0.0, done[1]), daemon=True),
        ]
        for kid in kids:
            kid.start()
        thread = threading.Thread(target=burn, args=(0.6,))
        thread.start()
        pid = os.fork()
        if pid == 0:
            name_process("strata-ckpt")
            burn(0.4)
            os._exit(0)
        os.waitpid(pid, 0)
        thread.join()
        for event in done:
            event.wait(30)
        print("ready", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(30)


def test_the_tree_is_read_by_role(tree: subprocess.Popen[str]) -> None:
    cpu = read_tree_cpu(tree.pid)
    assert set(cpu) == {*ROLES, "total"}
    assert cpu["signatures"] >= 0.5  # the child that named itself strata-sig
    assert cpu["node threads"] >= 0.5  # the root's other thread
    assert cpu["checkpoint"] >= 0.3  # the forked writer, waited for: in the root's cutime
    # The index child only started, as the signature child did before burning 0.6 s; the root's
    # main thread only started and slept while its other thread burned. (Relative bounds: a
    # start-up's CPU time grows when the machine is busy, a burn's does not.)
    assert cpu["index"] < cpu["signatures"] - 0.4
    assert cpu["node"] < cpu["node threads"]
    assert cpu["total"] == pytest.approx(sum(cpu[r] for r in ROLES))


def test_a_process_names_itself_as_ps_shows_it(tree: subprocess.Popen[str]) -> None:
    children = [
        int(c)
        for task in Path(f"/proc/{tree.pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]
    names = {Path(f"/proc/{c}/comm").read_text().strip() for c in children}
    assert {"strata-sig", "strata-index"} <= names


def test_a_gone_process_reads_as_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert read_tree_cpu(proc.pid)["total"] == 0.0


def test_the_sampler_follows_a_busy_process_over_time() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass",
        ]
    )
    try:
        time.sleep(0.2)  # past the interpreter's start
        sampler = CpuSampler(proc.pid, interval=0.1)
        sampler.start()
        time.sleep(0.8)
        timeline = sampler.stop(cores=1, title="busy")
    finally:
        proc.wait(10)
    assert timeline.title == "busy" and timeline.cores == 1
    assert len(timeline.times) >= 5
    assert timeline.times == sorted(timeline.times)
    assert all(len(timeline.shares[r]) == len(timeline.times) for r in ROLES)
    # One busy main thread: about a whole core in every interval (the scheduler's ticks are
    # 10 ms, so a 100 ms interval reads within a few tens of percent).
    busy = timeline.shares["node"]
    assert sum(busy) / len(busy) > 60
    assert max(timeline.shares["signatures"]) == 0


def test_the_plot_has_a_panel_per_run_with_its_roles(tmp_path: Path) -> None:
    timelines = [
        CpuTimeline(
            f"bulk, {cores} core(s), round 1: {rate} orders/s",
            cores,
            times=[0.0, 0.25, 0.5],
            shares={
                "node": [90.0, 95.0, 99.0],
                "signatures": [30.0 * (cores - 1)] * 3,
                "index": [20.0, 25.0, 30.0],
            },
        )
        for cores, rate in ((1, "24,031"), (2, "35,090"))
    ]
    path = tmp_path / "cpu.svg"
    plot_timelines(timelines, path)
    svg = path.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for text in ("bulk, 1 core(s), round 1: 24,031 orders/s", "35,090", "signatures", "index"):
        assert text in svg
    assert "matching" not in svg  # a role that used nothing gets no legend entry


def test_without_matplotlib_the_plot_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit, match=r"pip install 'strata\[plot\]'"):
        plot_timelines([CpuTimeline("t", 1)], tmp_path / "cpu.svg")
    assert not (tmp_path / "cpu.svg").exists()

"""``strata bench engine --instructions``: its counts are exact and they count the blocks.

Runs real interpreters under Valgrind's callgrind (skipped where Valgrind is not installed).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
from bench.engine_bench import build_chain_workload
from bench.engine_instructions import count_instructions, count_operations

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")


def test_the_count_is_the_same_every_run_and_grows_with_the_blocks(tmp_path: Path) -> None:
    config, blocks = build_chain_workload(100, seed=3, block_size=100, bulk=True)
    assert len(blocks) == 1
    assert count_operations(blocks[0][0]) >= 100  # bulk items count one each
    workload = tmp_path / "workload.pickle"
    with workload.open("wb") as f:
        pickle.dump((config, blocks), f)
    first = count_instructions(workload, 1, pure=False)
    again = count_instructions(workload, 1, pure=False)
    setup = count_instructions(workload, 0, pure=False)
    assert first == again  # not a timing: the same blocks through the same code count the same
    assert setup < first
    assert 1_000 < (first - setup) / 100 < 10_000_000  # per operation: the block was executed

"""The garbage collector around block execution (``adapters/lifetime.collector_paused``).

The node and the verifier hold the cyclic collector off while a block executes, on the premise
that a block makes (almost) no reference cycles: its garbage is freed by reference counting. The
last test checks that premise on real blocks, so that a change that made a cycle per transaction
(which would pile up until the block ends) fails here rather than in a node's memory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from bench.engine_bench import build_chain_workload

from strata.adapters.lifetime import collector_paused
from strata.stf.genesis import make_genesis
from strata.stf.transition import apply_block


@pytest.fixture
def restore_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("restore_collector")
@pytest.mark.parametrize("enabled_before", [True, False])
def test_paused_inside_and_as_it_was_after(enabled_before: bool) -> None:
    if enabled_before:
        gc.enable()
    else:
        gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled() is enabled_before


@pytest.mark.usefixtures("restore_collector")
def test_an_error_inside_restores_the_collector_and_propagates() -> None:
    gc.enable()
    with pytest.raises(RuntimeError, match="boom"), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


@pytest.mark.usefixtures("restore_collector")
def test_blocks_make_almost_no_reference_cycles() -> None:
    # Single orders and market makers' bulk actions: placements, takers, cancels, modifies.
    for bulk in (False, True):
        config, blocks = build_chain_workload(3_000, seed=7, block_size=1_000, bulk=bulk)
        state, _ = make_genesis(config)
        gc.collect()
        gc.disable()
        for block, signers in blocks:
            apply_block(state, block, config.params, signers)  # type: ignore[arg-type]
        unreachable = gc.collect()
        # Measured: 15 objects with ring 0 compiled, 0 interpreted, for these three blocks of
        # each workload; one cycle per transaction would be thousands.
        assert unreachable < 100, f"bulk={bulk}: {unreachable} objects in reference cycles"

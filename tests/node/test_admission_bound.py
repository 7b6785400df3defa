"""At most ``ADMITTING_REQUESTS`` submissions are decoded and checked at once; the next wait
with their raw bytes only, and every one of them is admitted, in arrival order, once a slot
frees. Under an overload the requests waiting for the signature workers used to hold their
decoded transactions (about 50 small objects for a bulk), more of them than the mempool held.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from strata.node import node as node_module
from tests.node.test_block_cutting import open_node, resting_sells


def test_submissions_beyond_the_bound_wait_undecoded_and_are_all_admitted(tmp_path: Path) -> None:
    node, trader = open_node(tmp_path / "node")
    bound = node_module.ADMITTING_REQUESTS
    requests = [[data] for data in resting_sells(trader, bound + 3)]
    release = asyncio.Event()
    decoding = 0
    most = 0
    plain_submit = node._submit

    async def counted(datas: list[bytes]) -> list[dict[str, object]]:
        nonlocal decoding, most
        decoding += 1
        most = max(most, decoding)
        try:
            await release.wait()  # parked as if waiting for the signature workers
            return await plain_submit(datas)
        finally:
            decoding -= 1

    node._submit = counted  # type: ignore[method-assign]

    async def scenario() -> list[list[dict[str, object]]]:
        calls = [asyncio.create_task(node.submit(r)) for r in requests]
        await asyncio.sleep(0.2)
        assert decoding == bound  # the rest wait before decoding anything
        release.set()
        return await asyncio.gather(*calls)

    results = asyncio.run(scenario())
    assert most == bound
    assert all("hash" in result for (result,) in results), results
    # arrival order kept: the mempool holds them in the order they were sent
    assert [p.data for p in node.mempool.pending()] == [data for (data,) in requests]
    node.close()

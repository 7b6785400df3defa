"""Derivation: the chain's blocks out of its batches, checked link by link (``docs/da.md``).

The node's own history and a verifier's come out of :func:`derive_blocks` identically: whoever
holds the genesis and the batches gets the same blocks in the same order, or a
:class:`~strata.da.batch.BatchError` at the first link that does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from strata.da.batch import ZERO_HASH, Batch, BatchError, batch_hash, check_batch
from strata.stf.block import Block


def derive_blocks(genesis_header_hash: bytes, batches: Iterable[Batch]) -> Iterator[Block]:
    """Yield the blocks of ``batches`` in order, checking that they form one chain.

    Checked for each batch, before any of its blocks is yielded: the batch itself
    (:func:`~strata.da.batch.check_batch`: header fields, count, chain id, heights, header
    hashes, canonical blocks); its index (0, 1, 2, ...); its ``parent_batch_hash`` (the previous
    batch's :func:`~strata.da.batch.batch_hash`, zero for batch 0); its chain id (the first
    batch's); its first height (1, then the previous batch's last height + 1); and each block's
    ``parent_hash`` (the previous block's header hash; for height 1, ``genesis_header_hash``).
    Blocks of earlier batches have been yielded when a later batch is refused.

    Raises
    ------
    BatchError
        ``BROKEN_CHAIN`` for a link that does not hold, or any code of ``check_batch``.
    """
    expected_parent_batch = ZERO_HASH
    expected_height = 1
    parent_hash = genesis_header_hash
    chain_id: int | None = None
    for expected_index, batch in enumerate(batches):
        header = batch.header
        blocks = check_batch(batch)
        if header.index != expected_index:
            raise BatchError(
                "BROKEN_CHAIN", f"batch index {header.index}, expected {expected_index}"
            )
        if header.parent_batch_hash != expected_parent_batch:
            raise BatchError(
                "BROKEN_CHAIN",
                f"batch {header.index}: parent batch hash {header.parent_batch_hash.hex()}, "
                f"expected {expected_parent_batch.hex()}",
            )
        if chain_id is not None and header.chain_id != chain_id:
            raise BatchError(
                "BROKEN_CHAIN",
                f"batch {header.index} is of chain {header.chain_id}, not {chain_id}",
            )
        if header.first_height != expected_height:
            raise BatchError(
                "BROKEN_CHAIN",
                f"batch {header.index} starts at height {header.first_height}, "
                f"expected {expected_height}",
            )
        for block, header_hash in zip(blocks, header.block_header_hashes, strict=True):
            if block.header.parent_hash != parent_hash:
                raise BatchError(
                    "BROKEN_CHAIN",
                    f"batch {header.index}: block {block.header.height} has parent "
                    f"{block.header.parent_hash.hex()}, expected {parent_hash.hex()}",
                )
            parent_hash = header_hash
        chain_id = header.chain_id
        expected_parent_batch = batch_hash(batch)
        expected_height = header.last_height + 1
        yield from blocks

"""Ring 1, pure: batches of blocks for the data-availability layer, and derivation of the chain
from them (``docs/da.md``). No I/O, no clock, no randomness."""

from strata.da.batch import (
    BATCH_ERROR_CODES,
    BATCH_MAGIC,
    BATCH_VERSION,
    MAX_BATCH_BLOCKS,
    MAX_BATCH_BYTES,
    MAX_DECOMPRESSED_BYTES,
    ZERO_HASH,
    Batch,
    BatchError,
    BatchHeader,
    batch_hash,
    check_batch,
    decode_batch,
    decode_batch_header,
    encode_batch,
    seal_batch,
)
from strata.da.derive import derive_blocks

__all__ = [
    "BATCH_ERROR_CODES",
    "BATCH_MAGIC",
    "BATCH_VERSION",
    "MAX_BATCH_BLOCKS",
    "MAX_BATCH_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "ZERO_HASH",
    "Batch",
    "BatchError",
    "BatchHeader",
    "batch_hash",
    "check_batch",
    "decode_batch",
    "decode_batch_header",
    "derive_blocks",
    "encode_batch",
    "seal_batch",
]

"""The state store: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


class ChainTip(msgspec.Struct, frozen=True, array_like=True):
    """The last applied block: its height, timestamp and header hash.

    The tip travels with the state (a block's header hash commits to its state root, so it cannot
    be under that root); storage persists it beside the state.
    """

    height: int
    timestamp_ms: int
    header_hash: bytes

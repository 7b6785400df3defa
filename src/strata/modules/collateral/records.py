"""``collateral``: its records (msgspec Structs), kept apart from its rules.

The rules are compiled by mypyc (``strata/compiled.py``), which would drop a Struct's class
keywords; the records stay interpreted. The module of the rules re-exports every name here.
"""

from __future__ import annotations

import msgspec


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class Ledger(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """Chain-wide totals: quote deposited and withdrawn since genesis, and the next ids."""

    deposited_quote: int = 0
    withdrawn_quote: int = 0
    next_deposit_index: int = 0
    next_withdrawal_id: int = 0


class WithdrawalRecord(msgspec.Struct, frozen=True, array_like=True):
    """A withdrawal the bridge will pay out on the settlement chain."""

    withdrawal_id: int
    account: bytes
    destination: bytes
    """The settlement-chain address the bridge pays."""
    amount_quote: int
    height: int

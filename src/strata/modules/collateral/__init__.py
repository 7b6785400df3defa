"""Collateral: each account's quote balance, deposits from the settlement chain, withdrawals.

==================  ======  =======================  ==========================================
table               prefix  key                      value
==================  ======  =======================  ==========================================
``balances``        0x40    address (20 bytes)       balance in quote units (signed, see below)
``ledger``          0x41    ``b""``                  :class:`Ledger` (totals and sequences)
``withdrawals``     0x42    withdrawal id (8 bytes)  :class:`WithdrawalRecord`
==================  ======  =======================  ==========================================

The balance is the account's quote *cash* in the sense of dYdX v4: a trade moves the notional
between the two sides (the buyer pays ``price * size``, the seller receives it), fees move to the
fee pool, funding and deposits add, withdrawals subtract. A long position's balance can therefore
be negative while its equity (balance plus the marked value of its positions) is positive. Every
quote unit is conserved exactly::

    sum(balances) + fee pool + funding in transit - recorded bad debt
        == deposited - withdrawn                                 (checked as an invariant)

The **insurance fund is an account**: :data:`INSURANCE_FUND_ACCOUNT`, an address no key signs
for. Its balance is the fund's cash (funding's rounding remainder, liquidation fees, anyone's
transfer); it takes over positions the book cannot absorb (the backstop, ``modules/liquidation``)
and holds them like any account, so margin, funding and the API treat it like one.
"Funding in transit" is the quote that settled funding payers have paid and settled receivers
have not yet taken (per market, see ``modules/funding``; it may be negative for a while).
"Recorded bad debt" is the loss nothing could cover (``modules/liquidation``).
"""

from __future__ import annotations

import msgspec

from strata.core.errors import ErrorCode, InvalidBlock
from strata.state.store import BYTES_KEY, State, Table, int_key

INSURANCE_FUND_ACCOUNT = b"\xff" * 20
"""The insurance fund's account (``0xff...ff``): no key signs for it; only the risk phase moves
its positions."""


class Ledger(msgspec.Struct, frozen=True, array_like=True):
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


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("balances", 0x40, j, BYTES_KEY, int))
    state.add_table(Table("ledger", 0x41, j, BYTES_KEY, Ledger))
    state.add_table(Table("withdrawals", 0x42, j, int_key(8), WithdrawalRecord))
    state.tables["ledger"].put(b"", Ledger())


def get_balance(state: State, account: bytes) -> int:
    """The account's quote balance (0 for an unknown account)."""
    balance: int | None = state.tables["balances"].data.get(account)
    return 0 if balance is None else balance


def add_balance(state: State, account: bytes, delta_quote: int) -> None:
    """Move the account's balance by ``delta_quote``. Callers pair every change with its
    counterpart (another balance, the fee pool, the ledger), so the sum is conserved."""
    table = state.tables["balances"]
    table.put(account, table.data.get(account, 0) + delta_quote)


def get_ledger(state: State) -> Ledger:
    ledger: Ledger = state.tables["ledger"].data[b""]
    return ledger


def process_deposit(state: State, index: int, account: bytes, amount_quote: int) -> None:
    """Credit a deposit from the settlement chain's inbox.

    Deposits arrive in the inbox's order with consecutive indexes, so each is credited exactly
    once.

    Raises
    ------
    InvalidBlock
        ``BAD_SYSTEM_INPUT`` if ``index`` is not the next inbox index, the amount is not
        positive or the address is not 20 bytes.
    """
    ledger = get_ledger(state)
    if index != ledger.next_deposit_index or amount_quote <= 0 or len(account) != 20:
        raise InvalidBlock(
            ErrorCode.BAD_SYSTEM_INPUT,
            f"deposit {index} (expected {ledger.next_deposit_index}), amount {amount_quote}",
        )
    add_balance(state, account, amount_quote)
    state.tables["ledger"].put(
        b"",
        msgspec.structs.replace(
            ledger,
            deposited_quote=ledger.deposited_quote + amount_quote,
            next_deposit_index=index + 1,
        ),
    )


def credit_genesis(state: State, account: bytes, amount_quote: int) -> None:
    """A genesis allocation: counted as a deposit, outside the inbox sequence."""
    ledger = get_ledger(state)
    add_balance(state, account, amount_quote)
    state.tables["ledger"].put(
        b"", msgspec.structs.replace(ledger, deposited_quote=ledger.deposited_quote + amount_quote)
    )


def record_withdrawal(
    state: State, account: bytes, destination: bytes, amount_quote: int, height: int
) -> WithdrawalRecord:
    """Debit ``amount_quote`` and record the withdrawal for the bridge (after the margin check)."""
    ledger = get_ledger(state)
    record = WithdrawalRecord(ledger.next_withdrawal_id, account, destination, amount_quote, height)
    add_balance(state, account, -amount_quote)
    state.tables["withdrawals"].put(record.withdrawal_id, record)
    state.tables["ledger"].put(
        b"",
        msgspec.structs.replace(
            ledger,
            withdrawn_quote=ledger.withdrawn_quote + amount_quote,
            next_withdrawal_id=ledger.next_withdrawal_id + 1,
        ),
    )
    return record


def sum_balances(state: State) -> int:
    """Sum of all balances (for the conservation invariant)."""
    return sum(state.tables["balances"].data.values())


def get_insurance_fund(state: State) -> int:
    """The insurance fund's cash (its account's balance) in quote units."""
    return get_balance(state, INSURANCE_FUND_ACCOUNT)


def add_insurance_fund(state: State, delta_quote: int) -> None:
    """Move the insurance fund's cash by ``delta_quote``; callers pair it with its counterpart."""
    add_balance(state, INSURANCE_FUND_ACCOUNT, delta_quote)

"""Collateral: each account's quote balance, deposits from the settlement chain, withdrawals.

==================  ======  =======================  ==========================================
table               prefix  key                      value
==================  ======  =======================  ==========================================
``balances``        0x40    address (20 bytes)       balance in quote units (signed, see below)
``ledger``          0x41    ``b""``                  :class:`Ledger` (totals and sequences)
``withdrawals``     0x42    withdrawal id (8 bytes)  :class:`WithdrawalRecord`
``isolated``        0x44    address ‖ market (24 B)  cash of the account's isolated position
==================  ======  =======================  ==========================================

Isolated margin
---------------
An account trades a market *isolated* once it says so (``SetMarginMode``, with no position
there); the key in ``isolated`` is the mode, its value the position's own cash. Every cash flow of
that position (trade notional, fees, funding, liquidation transfers) goes to that cash instead of
the balance (:func:`add_position_cash`), so the position's equity is ``cash + value - funding
owed``, margined and liquidated on its own: its losses stop at its cash. Margin moves in and out
by ``MoveIsolatedMargin``; when the position grows, settlement tops its equity up to the initial
requirement from the balance; when it closes, its cash returns to the balance
(:func:`release_isolated_cash`). Cross margin counts neither the isolated position nor its cash.

The balance is the account's quote *cash* in the sense of dYdX v4: a trade moves the notional
between the two sides (the buyer pays ``price * size``, the seller receives it), fees move to the
fee pool, funding and deposits add, withdrawals subtract. A long position's balance can therefore
be negative while its equity (balance plus the marked value of its positions) is positive. Every
quote unit is conserved exactly::

    sum(balances) + sum(isolated cash) + fee pool + funding in transit - recorded bad debt
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
from strata.modules.collateral.records import Ledger as Ledger
from strata.modules.collateral.records import WithdrawalRecord as WithdrawalRecord
from strata.state.store import BYTES_KEY, KeyCodec, State, Table, int_key

INSURANCE_FUND_ACCOUNT = b"\xff" * 20
"""The insurance fund's account (``0xff...ff``): no key signs for it; only the risk phase moves
its positions."""


def _encode_isolated_key(key: tuple[bytes, int]) -> bytes:
    return key[0] + key[1].to_bytes(4, "big")


def _decode_isolated_key(data: bytes) -> tuple[bytes, int]:
    if len(data) != 24:
        raise ValueError(f"a 24-byte key, got {len(data)} bytes")
    return data[:20], int.from_bytes(data[20:], "big")


ISOLATED_KEY = KeyCodec(_encode_isolated_key, _decode_isolated_key)
"""``(account, market_id)`` as the 20-byte address ‖ 4 big-endian bytes."""


def register_tables(state: State) -> None:
    j = state.journal
    state.add_table(Table("balances", 0x40, j, BYTES_KEY, int))
    state.add_table(Table("ledger", 0x41, j, BYTES_KEY, Ledger))
    state.add_table(Table("withdrawals", 0x42, j, int_key(8), WithdrawalRecord))
    state.add_table(Table("isolated", 0x44, j, ISOLATED_KEY, int))
    state.tables["ledger"].put(b"", Ledger())


def get_balance(state: State, account: bytes) -> int:
    """The account's quote balance (0 for an unknown account)."""
    balance: int | None = state.tables["balances"].get(account)
    return 0 if balance is None else balance


def add_balance(state: State, account: bytes, delta_quote: int) -> None:
    """Move the account's balance by ``delta_quote``. Callers pair every change with its
    counterpart (another balance, the fee pool, the ledger), so the sum is conserved."""
    table = state.tables["balances"]
    table.put(account, (table.get(account) or 0) + delta_quote)


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
    """Sum of all balances and isolated cash (for the conservation invariant)."""
    balances: int = sum(state.tables["balances"].data.values())
    isolated: int = sum(state.tables["isolated"].data.values())
    return balances + isolated


def is_isolated(state: State, account: bytes, market_id: int) -> bool:
    """Whether ``account`` trades ``market_id`` with isolated margin."""
    return (account, market_id) in state.tables["isolated"].data


def get_isolated_cash(state: State, account: bytes, market_id: int) -> int:
    """The cash of the account's isolated position in ``market_id`` (0 if not isolated)."""
    cash: int | None = state.tables["isolated"].get((account, market_id))
    return 0 if cash is None else cash


def set_margin_mode(state: State, account: bytes, market_id: int, isolated: bool) -> None:
    """Switch the account's mode in a market (the caller checks there is no position, so the
    isolated cash is 0)."""
    table = state.tables["isolated"]
    key = (account, market_id)
    if isolated:
        if key not in table.data:
            table.put(key, 0)
    elif key in table.data:
        table.delete(key)


def add_position_cash(state: State, account: bytes, market_id: int, delta_quote: int) -> None:
    """A cash flow of the account's position in ``market_id``: to its isolated cash if the
    market is isolated for the account, else to the balance."""
    table = state.tables["isolated"]
    key = (account, market_id)
    cash: int | None = table.get(key)
    if cash is None:
        add_balance(state, account, delta_quote)
    else:
        table.put(key, cash + delta_quote)


def move_isolated_cash(state: State, account: bytes, market_id: int, delta_quote: int) -> None:
    """Move ``delta_quote`` from the balance into the isolated cash (negative: back)."""
    table = state.tables["isolated"]
    key = (account, market_id)
    table.put(key, table.data[key] + delta_quote)
    add_balance(state, account, -delta_quote)


def release_isolated_cash(state: State, account: bytes, market_id: int) -> None:
    """A closed isolated position: its cash returns to the balance (the mode stays)."""
    cash = get_isolated_cash(state, account, market_id)
    if cash:
        move_isolated_cash(state, account, market_id, -cash)


def get_insurance_fund(state: State) -> int:
    """The insurance fund's cash (its account's balance) in quote units."""
    return get_balance(state, INSURANCE_FUND_ACCOUNT)


def add_insurance_fund(state: State, delta_quote: int) -> None:
    """Move the insurance fund's cash by ``delta_quote``; callers pair it with its counterpart."""
    add_balance(state, INSURANCE_FUND_ACCOUNT, delta_quote)

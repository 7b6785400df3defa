"""The four kinds of failure, each an exception family with stable numeric codes.

=====================  ==========  ===============================================================
family                 codes       meaning
=====================  ==========  ===============================================================
``InvalidBlock``       1000-1999   the block is rejected whole
``InvalidTransaction`` 2000-2999   the transaction is never included; it changes nothing
``ExecutionFailure``   3000-3999   included, rolled back, fee and nonce kept; code in the receipt
``InvariantViolation`` 9000-9999   a bug: the node halts rather than commit a wrong state
=====================  ==========  ===============================================================

Codes are part of the protocol: a code, once published, keeps its meaning forever. Order outcomes
that are not failures of the transaction (a post-only order that would take, an IOC remainder) are
*order statuses* with reasons, reported in events (see ``modules/book/types.py``), not errors.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Every stable error code of the protocol."""

    # --- invalid block (1xxx) ---
    BAD_PARENT_HASH = 1001
    BAD_HEIGHT = 1002
    BAD_TIMESTAMP = 1003
    BAD_CHAIN_ID = 1004
    BAD_STATE_ROOT = 1010
    BAD_TRANSACTIONS_ROOT = 1011
    BAD_RECEIPTS_ROOT = 1012
    BAD_WITHDRAWALS_ROOT = 1013
    BAD_GAS_USED = 1014
    BLOCK_GAS_LIMIT_EXCEEDED = 1015
    BAD_SYSTEM_INPUT = 1020
    BAD_ORACLE_SIGNATURE = 1021
    UNKNOWN_ORACLE_KEY = 1022
    TOO_MANY_TRANSACTIONS = 1023
    INVALID_TRANSACTION_IN_BLOCK = 1030
    MALFORMED_BLOCK = 1031

    # --- invalid transaction (2xxx) ---
    MALFORMED_TRANSACTION = 2001
    NON_CANONICAL_ENCODING = 2002
    TRANSACTION_TOO_LARGE = 2003
    BAD_SIGNATURE = 2010
    WRONG_SIGNER = 2011
    UNKNOWN_AGENT = 2012
    BAD_AGENT_CONSENT = 2013
    NONCE_ALREADY_USED = 2020
    NONCE_BELOW_WINDOW = 2021
    NONCE_OUT_OF_TIME_BOUND = 2022
    INSUFFICIENT_FEE_BALANCE = 2030
    UNKNOWN_MARKET = 2040
    MARKET_NOT_ACTIVE = 2041
    PRICE_OUT_OF_RANGE = 2042
    SIZE_OUT_OF_RANGE = 2043
    SIZE_BELOW_MINIMUM = 2044
    BULK_TOO_LARGE = 2045
    BULK_EMPTY = 2046
    BAD_AMOUNT = 2050
    SELF_TRANSFER = 2051
    AGENT_IS_WALLET_ONLY = 2060

    # --- execution failure (3xxx) ---
    INSUFFICIENT_FREE_COLLATERAL = 3001
    INSUFFICIENT_MARGIN = 3002
    AGENT_NOT_FOUND = 3010
    TOO_MANY_AGENTS = 3011
    AGENT_OF_ANOTHER_ACCOUNT = 3012
    UNKNOWN_ORDER = 3020
    NOT_ORDER_OWNER = 3021
    DUPLICATE_CLIENT_ID = 3022
    ORACLE_STALE = 3030
    OPEN_INTEREST_CAP = 3031
    ORDER_EXPIRED = 3032
    SCHEDULE_TOO_SOON = 3033
    TOO_MANY_TRIGGERS = 3034
    UNKNOWN_TRIGGER = 3035
    POSITION_OPEN = 3036
    NOT_ISOLATED = 3037
    WITHDRAWALS_GATED = 3040
    """Withdrawals wait while the chain records bad debt (``modules/liquidation``)."""

    # --- invariant violation (9xxx) ---
    INVARIANT_VIOLATION = 9000
    CONSERVATION_BROKEN = 9001
    OPEN_INTEREST_UNBALANCED = 9002
    BOOK_CROSSED = 9003
    RESERVATION_MISMATCH = 9004
    JOURNAL_OPEN = 9005
    UNSEALED_PARENT = 9006
    """A sealed block was asked for on top of a block still waiting for its state root."""


class ChainError(Exception):
    """Root of every error ring 0 raises on purpose. ``code`` is a stable :class:`ErrorCode`."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(f"{code.name} ({int(code)}): {message}" if message else code.name)
        self.code = code
        self.detail = message


class InvalidBlock(ChainError):
    """The block breaks a rule of the chain; it is rejected whole."""


class InvalidTransaction(ChainError):
    """The transaction can never be included; the sequencer must filter it out."""


class ExecutionFailure(ChainError):
    """The transaction is included but its effects are rolled back; fee and nonce are kept."""


class InvariantViolation(ChainError):
    """A bug: state that must never exist. The node halts instead of committing it."""

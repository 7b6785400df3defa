"""Accounts: 20-byte addresses, the recent-nonce window, and Ed25519 agent keys.

See ``README.md`` for the rules; this file is their executable form.
"""

from __future__ import annotations

from bisect import bisect_left, insort

from strata.core.errors import ErrorCode, ExecutionFailure, InvalidTransaction
from strata.modules.accounts.state import (
    AgentRecord,
    NonceWindow,
    delete_agent,
    get_account_agents,
    get_agent,
    get_nonces,
    register_tables,
    set_account_agents,
    set_agent,
    set_nonces,
)
from strata.state.store import State

__all__ = [
    "AgentRecord",
    "check_nonce",
    "get_account_agents",
    "get_agent_account",
    "get_nonces",
    "process_approve_agent",
    "process_nonce",
    "process_revoke_agent",
    "register_tables",
    "use_nonce",
]


def check_nonce(
    state: State,
    account: bytes,
    nonce: int,
    timestamp_ms: int,
    window: int,
    past_bound_ms: int,
    future_bound_ms: int,
) -> None:
    """Check that ``nonce`` may be used by ``account`` in a block at ``timestamp_ms``.

    A nonce is a millisecond timestamp chosen by the signer. It is accepted when it is within
    ``(timestamp_ms - past_bound_ms, timestamp_ms + future_bound_ms)``, is not among the
    account's ``window`` most recent nonces, and is above its floor: the largest nonce ever
    evicted from the window and, while the window is full, the smallest nonce in it. Several bots
    can therefore sign concurrently without coordinating a counter, and no nonce is ever accepted
    twice, even if ``window`` changes.

    Raises
    ------
    InvalidTransaction
        ``NONCE_OUT_OF_TIME_BOUND``, ``NONCE_ALREADY_USED`` or ``NONCE_BELOW_WINDOW``.
    """
    _check_nonce(
        get_nonces(state, account), nonce, timestamp_ms, window, past_bound_ms, future_bound_ms
    )


def _check_nonce(
    spent: NonceWindow,
    nonce: int,
    timestamp_ms: int,
    window: int,
    past_bound_ms: int,
    future_bound_ms: int,
) -> None:
    if not timestamp_ms - past_bound_ms < nonce < timestamp_ms + future_bound_ms:
        raise InvalidTransaction(
            ErrorCode.NONCE_OUT_OF_TIME_BOUND, f"nonce {nonce} vs block time {timestamp_ms}"
        )
    recent = spent.recent
    floor = spent.floor
    if len(recent) >= window and recent[0] > floor:
        floor = recent[0]  # a full window admits only nonces above its smallest
    if nonce <= floor:
        raise InvalidTransaction(
            ErrorCode.NONCE_BELOW_WINDOW, f"nonce {nonce} <= window floor {floor}"
        )
    at = bisect_left(recent, nonce)  # the window is sorted: O(log window), not a scan
    if at < len(recent) and recent[at] == nonce:
        raise InvalidTransaction(ErrorCode.NONCE_ALREADY_USED, f"nonce {nonce}")


def process_nonce(
    state: State,
    account: bytes,
    nonce: int,
    timestamp_ms: int,
    window: int,
    past_bound_ms: int,
    future_bound_ms: int,
) -> None:
    """:func:`check_nonce`, then record the nonce as used (:func:`use_nonce`), in one step.

    Raises
    ------
    InvalidTransaction
        As :func:`check_nonce`; then nothing is recorded.
    """
    nonces = get_nonces(state, account)
    _check_nonce(nonces, nonce, timestamp_ms, window, past_bound_ms, future_bound_ms)
    _record_nonce(state, account, nonces, nonce, window)


def use_nonce(state: State, account: bytes, nonce: int, window: int) -> None:
    """Record ``nonce`` as used (after :func:`check_nonce`), keeping the ``window`` largest."""
    _record_nonce(state, account, get_nonces(state, account), nonce, window)


def _record_nonce(
    state: State, account: bytes, spent: NonceWindow, nonce: int, window: int
) -> None:
    recent = spent.recent
    if not recent or nonce > recent[-1]:
        updated = (*recent, nonce)  # the common case: signers' clocks move forward
    else:
        as_list = list(recent)
        insort(as_list, nonce)
        updated = tuple(as_list)
    floor = spent.floor
    if len(updated) > window:
        evicted = len(updated) - window
        floor = updated[evicted - 1]  # the largest evicted nonce: everything up to it is spent
        updated = updated[evicted:]
    set_nonces(state, account, NonceWindow(floor, updated))


def get_agent_account(state: State, public_key: bytes, timestamp_ms: int) -> bytes | None:
    """The account an agent key acts for at ``timestamp_ms``, or ``None`` if none or expired."""
    record = get_agent(state, public_key)
    if record is None or record.valid_until_ms <= timestamp_ms:
        return None
    return record.account


def process_approve_agent(
    state: State,
    account: bytes,
    public_key: bytes,
    valid_until_ms: int,
    timestamp_ms: int,
    max_agents: int,
) -> None:
    """Approve (or renew) ``public_key`` as an agent of ``account`` until ``valid_until_ms``.

    Raises
    ------
    ExecutionFailure
        ``AGENT_OF_ANOTHER_ACCOUNT`` if the key is already the agent of another account (a key
        serves one account), ``TOO_MANY_AGENTS`` beyond ``max_agents`` (an expired key still counts
        until revoked).
    """
    existing = get_agent(state, public_key)
    if existing is not None and existing.account != account:
        raise ExecutionFailure(
            ErrorCode.AGENT_OF_ANOTHER_ACCOUNT, "key is the agent of another account"
        )
    agents = get_account_agents(state, account)
    if existing is None and len(agents) >= max_agents:
        raise ExecutionFailure(ErrorCode.TOO_MANY_AGENTS, f"at most {max_agents} agents")
    set_agent(state, public_key, AgentRecord(account=account, valid_until_ms=valid_until_ms))
    if existing is None:
        set_account_agents(state, account, tuple(sorted((*agents, public_key))))


def process_revoke_agent(state: State, account: bytes, public_key: bytes) -> None:
    """Revoke an agent key of ``account``.

    Raises
    ------
    ExecutionFailure
        ``AGENT_NOT_FOUND`` if the key is not an agent of ``account``.
    """
    existing = get_agent(state, public_key)
    if existing is None or existing.account != account:
        raise ExecutionFailure(ErrorCode.AGENT_NOT_FOUND, "not an agent of this account")
    delete_agent(state, public_key)
    agents = get_account_agents(state, account)
    set_account_agents(state, account, tuple(k for k in agents if k != public_key))

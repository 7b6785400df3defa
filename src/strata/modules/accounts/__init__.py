"""Accounts: 20-byte addresses, the recent-nonce window, and Ed25519 agent keys.

See ``README.md`` for the rules; this file is their executable form.
"""

from __future__ import annotations

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
    "NonceLedger",
    "check_nonce",
    "get_account_agents",
    "get_agent_account",
    "get_nonces",
    "process_approve_agent",
    "process_nonce",
    "process_revoke_agent",
    "register_tables",
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
    spent = get_nonces(state, account)
    _check_nonce(
        spent.floor,
        list(spent.recent),
        0,
        nonce,
        timestamp_ms,
        window,
        past_bound_ms,
        future_bound_ms,
    )


def _lower_bound(recent: list[int], nonce: int) -> int:
    """``bisect.bisect_left(recent, nonce)``, written out: compiled, this loop over a list of ints
    runs natively, where each call to ``bisect`` cost a global lookup, a call and a boxed
    comparison per step (about 900 instructions; the canonical in-block order puts most of an
    account's nonces out of order, so most transactions search).

    It gallops back from the end (1, 2, 4, ... places), then bisects what it bracketed: a nonce
    lands among the account's latest ones (signers' clocks move forward), which the block has
    just written and the CPU still holds in cache, where a bisection from the middle reads the
    window's oldest first."""
    hi = len(recent)  # every index from hi on holds a nonce >= ``nonce``
    lo = hi
    step = 1
    while lo > 0:
        lo = hi - step if hi > step else 0
        if recent[lo] < nonce:
            lo += 1  # every index below lo holds a smaller nonce
            break
        hi = lo
        step <<= 1
    while lo < hi:
        mid = (lo + hi) // 2
        if recent[mid] < nonce:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _check_nonce(
    floor: int,
    recent: list[int],
    lo: int,
    nonce: int,
    timestamp_ms: int,
    window: int,
    past_bound_ms: int,
    future_bound_ms: int,
) -> int:
    """Raise as :func:`check_nonce` does; return where ``nonce`` goes in ``recent`` (the index
    that keeps it sorted: ``len(recent)`` for a nonce above them all).

    The window is ``recent[lo:]``, ascending. Entries before ``lo`` were evicted but not yet
    removed (:class:`_UsedNonces` removes them in batches); the largest of them, if any, is the
    floor, else ``floor`` is."""
    if not timestamp_ms - past_bound_ms < nonce < timestamp_ms + future_bound_ms:
        raise InvalidTransaction(
            ErrorCode.NONCE_OUT_OF_TIME_BOUND, f"nonce {nonce} vs block time {timestamp_ms}"
        )
    size = len(recent)
    # A nonce above the window's largest (signers' clocks move forward) is new and above the
    # floor: an evicted entry is below the window's, and ``floor`` is compared while none is.
    # Only the window's last entry is read, the one the account wrote last.
    if size > lo and nonce > recent[size - 1] and (lo > 0 or nonce > floor):
        return size
    if lo > 0:
        floor = recent[lo - 1]
    if size - lo >= window and recent[lo] > floor:
        floor = recent[lo]  # a full window admits only nonces above its smallest
    if nonce <= floor:
        raise InvalidTransaction(
            ErrorCode.NONCE_BELOW_WINDOW, f"nonce {nonce} <= window floor {floor}"
        )
    if size == lo:
        return size
    # Any other nonce is searched for in O(log window), not scanned for.
    at = _lower_bound(recent, nonce)
    if at < size and recent[at] == nonce:
        raise InvalidTransaction(ErrorCode.NONCE_ALREADY_USED, f"nonce {nonce}")
    return at


def process_nonce(
    state: State,
    account: bytes,
    nonce: int,
    timestamp_ms: int,
    window: int,
    past_bound_ms: int,
    future_bound_ms: int,
) -> None:
    """:func:`check_nonce`, then record the nonce as used (keeping the ``window`` largest), in one
    step: a :class:`NonceLedger` for one transaction.

    Raises
    ------
    InvalidTransaction
        As :func:`check_nonce`; then nothing is recorded.
    """
    ledger = NonceLedger(state, window, past_bound_ms, future_bound_ms)
    ledger.process(account, nonce, timestamp_ms)
    ledger.flush()


class _UsedNonces:
    """An account's nonce window while a block uses it: the same floor and ascending nonces as
    :class:`NonceWindow`, in a list that changes in place.

    The window is ``recent[lo:]``. An evicted nonce stays in the list, before ``lo``, until
    ``window`` of them have gathered; then they go in one step and the largest becomes
    ``floor``. Evicting each nonce as the window overflowed read the oldest entry (an object
    the CPU no longer held in cache) and moved the whole list down by one, for every
    transaction."""

    __slots__ = ("floor", "lo", "recent")

    def __init__(self, floor: int, recent: list[int]) -> None:
        self.floor = floor
        self.recent = recent
        self.lo = 0

    def record(self, nonce: int, at: int, window: int) -> None:
        """Add ``nonce`` (checked) at ``at``, where :func:`_check_nonce` found it goes, keeping
        the ``window`` largest; the largest evicted becomes the floor: every nonce up to it is
        spent."""
        recent = self.recent
        if at == len(recent):
            recent.append(nonce)  # signers' clocks move forward
        else:
            recent.insert(at, nonce)
        if len(recent) - self.lo > window:
            self.lo = len(recent) - window
            if self.lo >= window:
                self._drop_evicted()

    def _drop_evicted(self) -> None:
        """Remove the evicted nonces; the largest of them is the floor."""
        lo = self.lo
        if lo > 0:
            recent = self.recent
            self.floor = recent[lo - 1]
            del recent[:lo]
            self.lo = 0

    def window(self) -> NonceWindow:
        self._drop_evicted()
        return NonceWindow(self.floor, tuple(self.recent))


class NonceLedger:
    """The nonces a block's transactions use, checked and recorded one transaction at a time,
    written to the state once per account at the end of admission.

    The rule is :func:`process_nonce`'s; only the bookkeeping differs. Rebuilding an account's
    window (``window`` nonces, a tuple) twice for every transaction took 4.3% of a single-order
    block's instructions (``strata bench engine --instructions``); the ledger keeps the window of
    each account it recorded a nonce for as a list, and
    :meth:`flush` writes each back once, in the order the accounts first recorded one. The state
    transition reads the nonce table only in admission, through the ledger, so nothing can see
    the table between the first :meth:`process` and :meth:`flush`.
    """

    __slots__ = ("future_bound_ms", "past_bound_ms", "state", "used", "window")

    def __init__(self, state: State, window: int, past_bound_ms: int, future_bound_ms: int) -> None:
        self.state = state
        self.window = window
        self.past_bound_ms = past_bound_ms
        self.future_bound_ms = future_bound_ms
        self.used: dict[bytes, _UsedNonces] = {}

    def process(self, account: bytes, nonce: int, timestamp_ms: int) -> None:
        """Check ``nonce`` for ``account`` against its window as the earlier transactions of the
        block left it (:func:`check_nonce`'s rule), then record it.

        Raises
        ------
        InvalidTransaction
            As :func:`check_nonce`; then nothing is recorded.
        """
        used = self.used.get(account)
        first = used is None
        if used is None:
            spent = get_nonces(self.state, account)
            used = _UsedNonces(spent.floor, list(spent.recent))
        at = _check_nonce(
            used.floor,
            used.recent,
            used.lo,
            nonce,
            timestamp_ms,
            self.window,
            self.past_bound_ms,
            self.future_bound_ms,
        )
        if first:
            self.used[account] = used
        used.record(nonce, at, self.window)

    def flush(self) -> None:
        """Write every window recorded into back to the state (then the ledger is empty)."""
        state = self.state
        for account, used in self.used.items():
            set_nonces(state, account, used.window())
        self.used = {}


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

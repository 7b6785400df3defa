"""The nonce ledger against a naive model of the nonce rule, over random histories.

``accounts.NonceLedger`` keeps each account's window as a list during a block and writes it back
once, at the end of admission. The model keeps every nonce an account ever used, sorted, and reads
the rule straight from its statement (``modules/accounts/README.md``): the window is the
``window`` largest used nonces, the floor the largest one below them; a nonce is accepted inside
the time bounds, above the floor (and above the window's smallest while it is full), and not used
before. After every block the windows in the state must be the model's, every decision (accepted,
or the error code) must be the model's, and an account whose nonces were all refused must not be
written at all.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.errors import ErrorCode, InvalidTransaction
from strata.modules import accounts
from strata.modules.accounts import NonceLedger
from strata.modules.accounts.state import NonceWindow, get_nonces
from strata.state.store import State

WINDOW = 5
PAST_MS = 50
FUTURE_MS = 30
ACCOUNTS = [bytes([i]) * 20 for i in range(3)]


class ModelAccount:
    """Every nonce the account used, ascending (nothing is ever evicted here)."""

    def __init__(self) -> None:
        self.used: list[int] = []

    @property
    def floor(self) -> int:
        return self.used[-WINDOW - 1] if len(self.used) > WINDOW else 0

    @property
    def recent(self) -> tuple[int, ...]:
        return tuple(self.used[-WINDOW:])

    def decide(self, nonce: int, timestamp_ms: int) -> ErrorCode | None:
        if not timestamp_ms - PAST_MS < nonce < timestamp_ms + FUTURE_MS:
            return ErrorCode.NONCE_OUT_OF_TIME_BOUND
        floor = self.floor
        if len(self.used) >= WINDOW:
            floor = max(floor, self.used[-WINDOW])
        if nonce <= floor:
            return ErrorCode.NONCE_BELOW_WINDOW
        if nonce in self.used:
            return ErrorCode.NONCE_ALREADY_USED
        insort(self.used, nonce)
        return None


# A block: its timestamp step, then (account, nonce offset from the block's time) pairs.
blocks = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.lists(st.tuples(st.integers(0, len(ACCOUNTS) - 1), st.integers(-60, 35)), max_size=25),
    ),
    min_size=1,
    max_size=12,
)


def _outcome(call: Callable[..., None], *args: object) -> int | None:
    """``None`` if ``call(*args)`` passed, else the code of the ``InvalidTransaction``."""
    try:
        call(*args)
    except InvalidTransaction as error:
        return error.code
    return None


def _fresh_state() -> State:
    state = State()
    accounts.register_tables(state)
    return state


@settings(max_examples=300, deadline=None)
@given(blocks)
def test_the_ledger_decides_and_records_as_the_model(history: list) -> None:
    state = _fresh_state()
    table = state.tables["nonces"]
    model = {a: ModelAccount() for a in ACCOUNTS}
    timestamp_ms = 1_000
    for step, uses in history:
        timestamp_ms += step
        ledger = NonceLedger(state, WINDOW, PAST_MS, FUTURE_MS)
        table.dirty.clear()
        touched: set[bytes] = set()
        for who, offset in uses:
            account = ACCOUNTS[who]
            nonce = timestamp_ms + offset
            expected = model[account].decide(nonce, timestamp_ms)
            got = _outcome(ledger.process, account, nonce, timestamp_ms)
            assert got == expected, (account.hex()[:2], nonce, timestamp_ms)
            if got is None:
                touched.add(account)
        ledger.flush()
        assert table.dirty == touched  # an account with every nonce refused is not written
        for account in ACCOUNTS:
            want = NonceWindow(model[account].floor, model[account].recent)
            assert get_nonces(state, account) == want


@settings(max_examples=100, deadline=None)
@given(blocks)
def test_one_transaction_at_a_time_gives_the_same_state(history: list) -> None:
    """``process_nonce`` (one transaction, written at once) and the ledger (written at the end
    of the block) leave the same windows and make the same decisions."""
    one_by_one, batched = _fresh_state(), _fresh_state()
    timestamp_ms = 1_000
    for step, uses in history:
        timestamp_ms += step
        ledger = NonceLedger(batched, WINDOW, PAST_MS, FUTURE_MS)
        for who, offset in uses:
            account, nonce = ACCOUNTS[who], timestamp_ms + offset
            alone = _outcome(
                accounts.process_nonce,
                one_by_one,
                account,
                nonce,
                timestamp_ms,
                WINDOW,
                PAST_MS,
                FUTURE_MS,
            )
            assert alone == _outcome(ledger.process, account, nonce, timestamp_ms)
        ledger.flush()
        for account in ACCOUNTS:
            assert get_nonces(one_by_one, account) == get_nonces(batched, account)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=30, unique=True), st.integers(-1, 41))
def test_the_window_search_is_bisect_left(values: list[int], nonce: int) -> None:
    recent = sorted(values)
    assert accounts._lower_bound(recent, nonce) == bisect_left(recent, nonce)


class EagerWindow:
    """The rule as first written: one stored window, its oldest nonce evicted as soon as it
    overflows (the window size is the one in force when the nonce is used)."""

    def __init__(self) -> None:
        self.floor = 0
        self.recent: list[int] = []

    def decide(self, nonce: int, timestamp_ms: int, window: int) -> ErrorCode | None:
        if not timestamp_ms - PAST_MS < nonce < timestamp_ms + FUTURE_MS:
            return ErrorCode.NONCE_OUT_OF_TIME_BOUND
        floor = self.floor
        if len(self.recent) >= window and self.recent[0] > floor:
            floor = self.recent[0]
        if nonce <= floor:
            return ErrorCode.NONCE_BELOW_WINDOW
        if nonce in self.recent:
            return ErrorCode.NONCE_ALREADY_USED
        insort(self.recent, nonce)
        if len(self.recent) > window:
            evicted = len(self.recent) - window
            self.floor = self.recent[evicted - 1]
            del self.recent[:evicted]
        return None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), blocks), min_size=1, max_size=4))
def test_a_window_that_changes_between_blocks(eras: list) -> None:
    """``nonce_window`` changed by an upgrade, so a stored window can be longer or shorter than
    the new one: the ledger (which drops evicted nonces in batches) decides and writes as the
    eager model does."""
    state = _fresh_state()
    model = {a: EagerWindow() for a in ACCOUNTS}
    timestamp_ms = 1_000
    for window, history in eras:
        for step, uses in history:
            timestamp_ms += step
            ledger = NonceLedger(state, window, PAST_MS, FUTURE_MS)
            for who, offset in uses:
                account, nonce = ACCOUNTS[who], timestamp_ms + offset
                expected = model[account].decide(nonce, timestamp_ms, window)
                assert _outcome(ledger.process, account, nonce, timestamp_ms) == expected
            ledger.flush()
            for account in ACCOUNTS:
                want = NonceWindow(model[account].floor, tuple(model[account].recent))
                assert get_nonces(state, account) == want

"""The state transition: a block of signed transactions turns a state into the next one.

``apply_block(pre_state, block, params)`` validates a block someone else built; ``build_block``
is the sequencer's side of the same function: it leaves invalid transactions out and fills in the
header. Both run :func:`_execute`, which runs the phases of ARCHITECTURE.md in this order:

==============  ==============  ===========================================================
phase           partitioned by  what happens here
==============  ==============  ===========================================================
prologue        none (serial)   header checks; deposits; oracle submissions; then per market
                                the index (median of fresh submissions, clamped) and the
                                mark, from the books as they stood at block start; then per
                                market funding: a tick when due, and the premium sample;
                                then expiries, dead-man switches and triggers
                                (``stf/timed.py``, rules in ``modules/triggers``)
admission       account         signature authority, nonce, fee; account actions; transfers
                                debit; withdrawals; each order reserves initial margin
                                against the account as it stood at block start, or fails
matching        market          cancels, then fired triggers' orders, then placements, in
                                canonical order
settlement      account         each changed position settles its funding first; fills,
                                fees and realized PnL; reservations released; transfer
                                credits
risk            serial          accounts under maintenance are liquidated: orders canceled,
                                slices sold to the book at the bankruptcy price, the rest
                                to the insurance fund or auto-deleveraged; bad debt
                                (``stf/risk.py``, rules in ``modules/liquidation``)
epilogue        none            withdrawals, receipts, transactions and state roots
==============  ==============  ===========================================================

No phase reads what another partition of the same phase writes, so a parallel executor that runs
partitions side by side produces the same bytes as this serial one.

Canonical order: the sequencer's order, then a stable sort by class (account actions and
post-only orders, then cancels, then orders that can take liquidity), so makers are protected.

Failure: an invalid transaction (bad encoding, signature, nonce, unknown market, ...) makes a block
invalid (:class:`InvalidBlock` ``INVALID_TRANSACTION_IN_BLOCK``); ``build_block`` leaves it out. A
transaction that fails during execution is included with its fee and nonce kept, its effects
rolled back, and its code in the receipt.

``apply_block`` mutates ``pre_state`` into the post-state. If it raises, ``pre_state`` is left
half-applied and must be discarded (use ``copy_state`` first to keep it).
Sealing apart from executing: a block's header commits to its state root, and the next header
to this header's hash. Nothing else of execution reads either, so a sequencer may execute block
``N + 1`` on ``N``'s post-state before ``N``'s root is known (a node computes roots in another
process, pipelined with execution). :func:`execute_block` does everything :func:`build_block`
does but the state root, and returns an :class:`UnsealedBlock`; :func:`seal_block` then fills in
the parent hash and the state root, and gives the same bytes :func:`build_block` would have. Until
then the state's tip carries an empty header hash (the next unsealed block's draft copies it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast, get_args

import msgspec

from strata.core.codec import encode
from strata.core.errors import (
    ChainError,
    ErrorCode,
    ExecutionFailure,
    InvalidBlock,
    InvalidTransaction,
    InvariantViolation,
)
from strata.core.ordered_merkle import compute_ordered_root, compute_ordered_root_of_leaves
from strata.core.signatures import (
    compute_transaction_digest,
    recover_wallet_address,
    verify_agent_signature,
)
from strata.modules import (
    accounts,
    clearing,
    collateral,
    funding,
    liquidation,
    margin,
    markets,
    oracle,
    triggers,
)
from strata.modules.book import Book, Order, OrderReason, OrderStatus, TimeInForce
from strata.modules.book.state import copy_book
from strata.modules.clearing.events import OrderUpdate
from strata.modules.clearing.matching import (
    AccountDelta,
    AdmittedTx,
    CancelOp,
    MarketJob,
    MarketWork,
    MatchingPhase,
    PlaceOp,
    match_markets,
)
from strata.modules.collateral import WithdrawalRecord
from strata.modules.funding import FundingTick
from strata.modules.margin import AccountRisk, MarketRiskParams
from strata.modules.oracle import OracleEvent
from strata.modules.triggers import TriggerStatus, TriggerUpdate
from strata.state.store import ChainTip, State
from strata.stf.block import (
    Block,
    BlockEvents,
    BlockOutput,
    Header,
    UnsealedBlock,
    compute_header_hash,
)
from strata.stf.events import (
    AgentApproved,
    AgentRevoked,
    CancelScheduled,
    Deposited,
    Event,
    FeeCharged,
    IsolatedMarginMoved,
    MarginModeChanged,
    OraclePriceUpdated,
    Transferred,
    WithdrawalRequested,
)
from strata.stf.params import ChainParams
from strata.stf.risk import process_risk
from strata.stf.settlement import process_settlement
from strata.stf.state_root import compute_state_root
from strata.stf.timed import apply_expiries, apply_schedules, apply_triggers
from strata.stf.transactions import (
    CANCEL_ACTIONS,
    MAX_BULK_ITEMS,
    TX_DECODER,
    TX_FIELDS_DECODER,
    Action,
    ApproveAgent,
    BulkCancel,
    BulkModify,
    BulkPlace,
    CancelAll,
    CancelOrder,
    CancelTrigger,
    Deposit,
    ModifyOrder,
    MoveIsolatedMargin,
    OraclePrice,
    PlaceOrder,
    PlaceTrigger,
    RevokeAgent,
    ScheduleCancel,
    SetMarginMode,
    SignedTransaction,
    SystemInput,
    Transfer,
    Withdraw,
    compute_agent_consent_digest,
    compute_oracle_action_bytes,
    compute_transaction_hash,
    encode_action,
)

_WALLET_ONLY = (ApproveAgent, RevokeAgent, Transfer, Withdraw)

# The order actions' classes, for the type tests of the hot paths. Compiled, a name imported from
# an interpreted module is a lookup in this module's globals at every use; a ``Final`` name is a C
# variable (docs/node.md, "What mypyc asks of ring 0's code").
_PLACE_ORDER: Final = PlaceOrder
_MODIFY_ORDER: Final = ModifyOrder
_CANCEL_ORDER: Final = CancelOrder
_CANCEL_ALL: Final = CancelAll
_BULK_PLACE: Final = BulkPlace
_BULK_CANCEL: Final = BulkCancel
_BULK_MODIFY: Final = BulkModify

# A transaction's or an order's fields, all at once: compiled, each read of a record's attribute
# is a generic attribute lookup (about 110 instructions); ``astuple`` reads them all in one C
# call, and a cast to the fields' types unpacks them natively. The tuples follow the classes'
# field order (``__struct_fields__``; ``tests/unit/test_order_fields.py`` checks that they
# still do, types included).
_AS_TUPLE: Final = msgspec.structs.astuple
PlaceFields = tuple[int, bool, int, int, int, bool, int | None, int | None]
"""``PlaceOrder``'s fields: market_id, is_buy, price_ticks, size_lots, tif, reduce_only,
client_id, expires_at_ms."""
SignedFields = tuple[bytes, int, Action, bytes | None, bytes]
"""``SignedTransaction``'s fields: account, nonce, action, agent, signature."""
ModifyFields = tuple[int, int | None, int | None, bool, int, int, int, bool]
"""``ModifyOrder``'s fields: market_id, order_id, client_id, is_buy, price_ticks, size_lots, tif,
reduce_only."""
CancelFields = tuple[int, int | None, int | None]
"""``CancelOrder``'s fields: market_id, order_id, client_id."""

# Admission tells actions apart by ``type(action) is X``, not ``isinstance``: an action is always
# exactly one of the classes of ``Action`` (a closed union, decoded by its tag, none a subclass of
# another), so both say the same; but ``isinstance`` against a msgspec Struct class that does not
# match takes CPython's slow path (the classes have a metaclass), and a transaction met several
# such misses: 4.7% of a block's instructions with single orders, 2.9% with bulk actions
# (``strata bench engine --instructions``).


# --------------------------------------------------------------------------------------------
# Signatures: a whole batch at once, before execution (a thread pool can run this upstream).
# --------------------------------------------------------------------------------------------


def check_signature(params: ChainParams, tx: SignedTransaction) -> bytes | None:
    """Who signed ``tx``: the recovered wallet address, or the agent key if its Ed25519
    signature is valid; ``None`` if the signature is invalid. Authority (is this signer allowed
    to act for ``tx.account``?) is checked at admission against the state."""
    digest = compute_transaction_digest(
        params.chain_id, params.bridge_address, tx.account, tx.nonce, encode_action(tx.action)
    )
    if tx.agent is None:
        return recover_wallet_address(digest, tx.signature)
    if verify_agent_signature(tx.agent, digest, tx.signature):
        return tx.agent
    return None


def check_signatures(params: ChainParams, transactions: Sequence[bytes]) -> list[bytes | None]:
    """:func:`check_signature` of every transaction of a block, in order (``None`` also for bytes
    that do not decode, or are not the canonical encoding of what they decode to). The executor
    calls this once per block, or takes it from upstream; a signer it finds vouches for the
    bytes' canonical form too (see :func:`apply_block`)."""
    signers: list[bytes | None] = []
    for data in transactions:
        try:
            tx = TX_DECODER.decode(data)
        except InvalidTransaction:
            signers.append(None)
            continue
        signers.append(check_signature(params, tx))
    return signers


# --------------------------------------------------------------------------------------------
# Prologue
# --------------------------------------------------------------------------------------------


def check_header(state: State, header: Header, params: ChainParams) -> None:
    """Check the header fields known before execution against the chain tip.

    Raises
    ------
    InvalidBlock
        ``BAD_CHAIN_ID``, ``BAD_HEIGHT`` (not tip + 1), ``BAD_PARENT_HASH`` or ``BAD_TIMESTAMP``
        (not after the tip's).
    """
    tip = state.tip
    if header.chain_id != params.chain_id:
        raise InvalidBlock(ErrorCode.BAD_CHAIN_ID, f"{header.chain_id} != {params.chain_id}")
    if header.height != tip.height + 1:
        raise InvalidBlock(ErrorCode.BAD_HEIGHT, f"{header.height} after {tip.height}")
    if header.parent_hash != tip.header_hash:
        raise InvalidBlock(ErrorCode.BAD_PARENT_HASH, header.parent_hash.hex())
    if header.timestamp_ms <= tip.timestamp_ms:
        raise InvalidBlock(ErrorCode.BAD_TIMESTAMP, f"{header.timestamp_ms} <= {tip.timestamp_ms}")


def process_system_input(
    state: State, item: SystemInput, timestamp_ms: int, params: ChainParams
) -> Event:
    """Apply one system input of the prologue.

    Raises
    ------
    InvalidBlock
        ``BAD_SYSTEM_INPUT`` for an out-of-order or invalid deposit, or an oracle price for an
        unknown market, out of range, from the future or not newer than the same signer's
        stored one (for that market);
        ``UNKNOWN_ORACLE_KEY`` or ``BAD_ORACLE_SIGNATURE`` for a price not signed by the oracle
        set.
    """
    if isinstance(item, Deposit):
        collateral.process_deposit(state, item.index, item.account, item.amount_quote)
        return Deposited(item.index, item.account, item.amount_quote)
    check_oracle_price(state, item, timestamp_ms, params)
    oracle.record_submission(
        state, item.market_id, item.signer, item.price_ticks, item.timestamp_ms
    )
    return OraclePriceUpdated(item.market_id, item.price_ticks, item.timestamp_ms, item.signer)


def check_oracle_price(
    state: State, item: OraclePrice, timestamp_ms: int, params: ChainParams
) -> None:
    """See :func:`process_system_input`."""
    if item.signer not in params.oracle_keys:
        raise InvalidBlock(ErrorCode.UNKNOWN_ORACLE_KEY, item.signer.hex())
    digest = compute_transaction_digest(
        params.chain_id,
        params.bridge_address,
        item.signer,
        item.timestamp_ms,
        compute_oracle_action_bytes(item),
    )
    if recover_wallet_address(digest, item.signature) != item.signer:
        raise InvalidBlock(ErrorCode.BAD_ORACLE_SIGNATURE, item.signer.hex())
    market = markets.get_market(state, item.market_id)
    if (
        market is None
        or not 1 <= item.price_ticks <= market.max_price_ticks
        or item.timestamp_ms > timestamp_ms
        or not oracle.is_newer_price(state, item.market_id, item.signer, item.timestamp_ms)
    ):
        raise InvalidBlock(ErrorCode.BAD_SYSTEM_INPUT, f"oracle price {item}")


def apply_prices(state: State, timestamp_ms: int, params: ChainParams) -> list[OracleEvent]:
    """The prologue's price step, after the system inputs: each market's index and mark (see
    ``modules/oracle``), in ascending market id, from its book as it stood at block start."""
    events: list[OracleEvent] = []
    for market_id in markets.get_market_ids(state):
        book: Book = state.books[market_id]
        events.extend(
            oracle.apply_block_prices(
                state,
                market_id,
                params.oracle_keys,
                timestamp_ms,
                params.oracle_staleness_ms,
                params.oracle_max_move_ppm,
                params.mark_ema_alpha_ppm,
                book.best_bid(),
                book.best_ask(),
            )
        )
    return events


def apply_funding(state: State, timestamp_ms: int, params: ChainParams) -> list[FundingTick]:
    """The prologue's funding step, after the prices: each market's tick when due and its
    premium sample (see ``modules/funding``), in ascending market id."""
    ticks: list[FundingTick] = []
    for market_id in markets.get_market_ids(state):
        tick = funding.apply_block_funding(
            state,
            market_id,
            timestamp_ms,
            params.funding_interval_ms,
            params.funding_interest_ppm,
            params.funding_clamp_ppm,
            params.funding_cap_ppm,
        )
        if tick is not None:
            ticks.append(tick)
    return ticks


# --------------------------------------------------------------------------------------------
# Admission
# --------------------------------------------------------------------------------------------


class _AccountInBlock:
    """One account during a block's admission: the bytes object the block uses for it, its
    reservation total (``margin``'s ``reserved``) as admission leaves it, and its position part
    (:meth:`_Block._with_part`, computed once). One map lookup per use finds them all, where
    a map for each cost a lookup each."""

    __slots__ = ("account", "part_equity", "part_known", "part_profit", "reserved")

    def __init__(self, account: bytes, reserved: int) -> None:
        self.account = account
        self.reserved = reserved
        self.part_known = False
        self.part_equity = 0
        self.part_profit = 0


class _MarketInBlock:
    """One market during a block's admission: what its orders' checks and reservations read,
    read once (markets, marks and staleness change only in the prologue, before admission), and
    the sizes admitted against its open-interest cap. One map lookup finds them all, where a map
    for each cost a lookup each."""

    __slots__ = (
        "has_mark",
        "initial_margin_ppm",
        "limits",
        "mark_ticks",
        "market_id",
        "oi_admitted",
        "oi_cap",
        "quote_per_tick_lot",
        "stale",
        "terms_known",
    )

    def __init__(self, market_id: int, stale: bool, has_mark: bool, oi_cap: int) -> None:
        self.market_id = market_id
        self.stale = stale
        self.has_mark = has_mark
        self.oi_cap = oi_cap
        self.oi_admitted = 0
        """The sizes of the orders that are not reduce-only admitted in this block (counted
        only under a cap, which alone reads them)."""
        self.limits: markets.OrderLimits | None = None  # (read at the first order: _Block.market)
        self.terms_known = False  # the reservation terms below, read at the first reservation
        self.mark_ticks = 0
        self.quote_per_tick_lot = 0
        self.initial_margin_ppm = 0

    def would_pass_oi_cap(self, state: State, size_lots: int) -> bool:
        """Whether an order of ``size_lots`` that is not reduce-only would pass the market's
        open-interest cap: open interest at block start, plus the sizes of the orders that are
        not reduce-only admitted earlier in the block, plus this one, above the cap. (Orders
        resting from earlier blocks can still fill beyond it: the cap bounds what is admitted.)
        """
        cap = self.oi_cap
        if not cap:
            return False
        open_interest = clearing.get_open_interest(state, self.market_id)
        return open_interest + self.oi_admitted + size_lots > cap

    def add_oi_admitted(self, size_lots: int) -> None:
        if self.oi_cap:
            self.oi_admitted += size_lots


class _Block:
    """Working data of one block's execution (never part of the state)."""

    def __init__(self, state: State, params: ChainParams, header_timestamp_ms: int) -> None:
        self.state = state
        self.params = params
        self.timestamp_ms = header_timestamp_ms
        self.market_ids = markets.get_market_ids(state)
        self.cancels: dict[int, list[CancelOp]] = {m: [] for m in self.market_ids}
        self.places: dict[int, list[PlaceOp]] = {m: [] for m in self.market_ids}
        self.credits: dict[bytes, int] = {}
        self.accounts: dict[bytes, _AccountInBlock] = {}
        """Each account seen in admission (:meth:`account`), under the first bytes object seen
        for it: all its later transactions use that one (see :func:`process_admission`)."""
        self.withdrawals: list[WithdrawalRecord] = []
        self.staged: list[CancelOp | PlaceOp] = []
        """The operations the transaction in admission stages for matching (see
        :func:`process_admission`)."""
        self.nonces = accounts.NonceLedger(
            state, params.nonce_window, params.nonce_past_bound_ms, params.nonce_future_bound_ms
        )
        """The nonces admission records (written to the state once per account at its end)."""
        # Reservation totals are kept in :attr:`accounts` and written to the state once per
        # account at the end of admission (:meth:`flush_reserved`): a read and a journaled write
        # of the table for every order cost about 2,700 instructions. Nothing reads or writes
        # the table between an account's first transaction and the flush but admission,
        # through :meth:`get_reserved` and :meth:`add_reserved`.
        self.reserved_undo: list[tuple[_AccountInBlock, int]] = []
        """``(account, total before)`` of every change to a reservation total, newest last:
        what :meth:`rollback_reserved` undoes when a transaction fails in execution."""
        self._risk_params: dict[int, MarketRiskParams] = {}
        self.client_ids: dict[bytes, set[int]] = {}
        """Client ids each account placed earlier in this block (membership only)."""
        self.books = [state.books[m] for m in self.market_ids]
        self.max_taker_ppm = max(t.taker_ppm for t in params.fee_tiers)
        gas = params.gas
        self.gas_place = gas.place  # the schedule's base gas, read once per block
        self.gas_cancel = gas.cancel
        self.gas_account_action = gas.account_action
        self.gas_price_quote = params.gas_price_quote
        self.markets: dict[int, _MarketInBlock] = {}
        """Every market, read once: admission runs after the prologue, so none changes."""
        for market_id in self.market_ids:
            market = markets.get_market(state, market_id)
            assert market is not None
            self.markets[market_id] = _MarketInBlock(
                market_id,
                oracle.is_stale(state, market_id),
                oracle.get_mark_price(state, market_id) is not None,
                market.max_open_interest_lots,
            )

    def account(self, account: bytes) -> _AccountInBlock:
        """The account's record for this block (made at its first use in admission)."""
        found = self.accounts.get(account)
        if found is None:
            found = _AccountInBlock(account, margin.get_reserved(self.state, account))
            self.accounts[account] = found
        return found

    def _with_part(self, record: _AccountInBlock) -> _AccountInBlock:
        """``record``, its position part computed: ``part_equity = sum(value) -
        sum(initial_req)`` and ``part_profit = sum(max(unrealized_pnl, 0))`` of the account's
        cross-margin positions. Positions and marks do not change during admission, so this is
        computed once per account per block (at its first use); balance and reservations are
        read fresh each time."""
        if not record.part_known:
            account = record.account
            positions, _ = liquidation.split_positions(
                self.state, account, clearing.get_positions(self.state, account)
            )
            if positions:
                risk = margin.compute_account_risk(0, 0, positions, self.risk_params)
                record.part_equity = risk.equity_quote - risk.initial_quote
                record.part_profit = risk.unrealized_profit_quote
            record.part_known = True
        return record

    def free_collateral(self, account: bytes) -> int:
        """The account's free collateral now (see ``margin``), during admission."""
        return self._free(self._with_part(self.account(account)))

    def _free(self, record: _AccountInBlock) -> int:
        """:meth:`free_collateral` of a record whose position part is known."""
        balance = collateral.get_balance(self.state, record.account)
        return balance + record.part_equity - record.reserved

    def get_reserved(self, account: bytes) -> int:
        """The account's reservation total now, during admission."""
        return self.account(account).reserved

    def add_reserved(self, account: bytes, delta_quote: int) -> None:
        """:func:`margin.add_reserved`, kept in the account's record until
        :meth:`flush_reserved`."""
        record = self.account(account)
        self.reserved_undo.append((record, record.reserved))
        record.reserved += delta_quote

    def rollback_reserved(self, mark: int) -> None:
        """Undo the changes to reservation totals since ``len(self.reserved_undo)`` was
        ``mark``."""
        undo = self.reserved_undo
        while len(undo) > mark:
            record, total = undo.pop()
            record.reserved = total

    def flush_reserved(self) -> None:
        """Write the reservation totals that admission changed to the state (in the order the
        accounts were first seen); then admission is over for the block's account records."""
        state = self.state
        for record in self.accounts.values():
            if record.reserved != margin.get_reserved(state, record.account):  # (only a change)
                margin.set_reserved(state, record.account, record.reserved)
        self.accounts = {}
        self.reserved_undo = []

    def withdrawable(self, account: bytes) -> int:
        """What the account may withdraw or transfer now: free collateral less unrealized profit."""
        record = self._with_part(self.account(account))
        return self._free(record) - record.part_profit

    def risk_params(self, market_id: int) -> MarketRiskParams:
        params = self._risk_params.get(market_id)
        if params is None:
            params = liquidation.get_market_risk_params(self.state, market_id)
            self._risk_params[market_id] = params
        return params

    def market(self, market_id: int) -> _MarketInBlock:
        """The market's record, with its order limits (:func:`markets.get_order_limits`, read at
        its first order).

        Raises
        ------
        InvalidTransaction
            ``UNKNOWN_MARKET`` (:func:`markets.get_listed_market`): no such market, or not
            listed.
        """
        found = self.markets.get(market_id)
        if found is None or found.limits is None:
            limits = markets.get_order_limits(markets.get_listed_market(self.state, market_id))
            found = self.markets[market_id]  # (a listed market is one of the block's)
            found.limits = limits
        return found

    def reservation_terms(self, market: _MarketInBlock) -> tuple[int, int, int]:
        """``(mark_ticks, quote_per_tick_lot, initial_margin_ppm)`` of the market's risk
        parameters, which an order's reservation needs: read once per block into the market's
        record (compiled, each read of a risk record's field is a generic attribute lookup)."""
        if not market.terms_known:
            params = self.risk_params(market.market_id)
            market.mark_ticks = params.mark_ticks
            market.quote_per_tick_lot = params.quote_per_tick_lot
            market.initial_margin_ppm = params.initial_margin_ppm
            market.terms_known = True
        return market.mark_ticks, market.quote_per_tick_lot, market.initial_margin_ppm


def get_account_risk(state: State, account: bytes) -> AccountRisk:
    """The account's cross-margin figures now (isolated positions are apart: see
    :func:`get_isolated_risk`)."""
    return liquidation.compute_cross_risk(state, account, liquidation.market_risk_params(state))


def get_isolated_risk(state: State, account: bytes, market_id: int) -> AccountRisk | None:
    """The figures of the account's isolated position in ``market_id``, or ``None``."""
    if not collateral.is_isolated(state, account, market_id):
        return None
    position = clearing.get_position(state, account, market_id)
    get_params = liquidation.market_risk_params(state)
    return liquidation.compute_isolated_risk(state, account, position, get_params)


def _check_withdrawable(block: _Block, account: bytes, amount_quote: int) -> None:
    withdrawable = block.withdrawable(account)
    if withdrawable < amount_quote:
        raise ExecutionFailure(
            ErrorCode.INSUFFICIENT_FREE_COLLATERAL, f"withdrawable {withdrawable} < {amount_quote}"
        )


def _check_place(block: _Block, market_id: int, price_ticks: int, size_lots: int) -> None:
    # markets.check_order_params, with the market's limits read once per block.
    market = block.market(market_id)
    limits = market.limits
    assert limits is not None
    markets.check_order_limits(limits, market_id, price_ticks, size_lots)
    if not market.has_mark:
        # Without a mark no position could be margined: the market opens with its first price.
        raise InvalidTransaction(ErrorCode.MARKET_NOT_ACTIVE, "no oracle price yet")


def _check_order(block: _Block, order: PlaceOrder | ModifyOrder) -> tuple[object, ...]:
    """The static checks of one order (alone or in a bulk action); returns its fields
    (:data:`PlaceFields` or :data:`ModifyFields`), for admission to read again."""
    # Every field read at once (see _AS_TUPLE).
    fields = _AS_TUPLE(order)
    if type(order) is _MODIFY_ORDER:
        market_id, order_id, client_id, _, price_ticks, size_lots, _, _ = cast(ModifyFields, fields)
        _check_place(block, market_id, price_ticks, size_lots)
        if (order_id is None) == (client_id is None):
            raise InvalidTransaction(ErrorCode.MALFORMED_TRANSACTION, "order id xor client id")
    else:
        market_id, _, price_ticks, size_lots, _, _, _, _ = cast(PlaceFields, fields)
        _check_place(block, market_id, price_ticks, size_lots)
    return fields


def _check_static(block: _Block, account: bytes, action: Action) -> tuple[object, ...] | None:
    """Stateless-in-spirit checks of an action (markets exist, sizes in range, bulk bounds).

    Returns the fields of a single order, modify or cancel (:data:`PlaceFields`,
    :data:`ModifyFields`, :data:`CancelFields`), read once here for admission to use again
    (compiled, each ``astuple`` is a call that builds a tuple: about 300 instructions); ``None``
    for any other action.

    Raises
    ------
    InvalidTransaction
        The code of the first failed check.
    """
    if type(action) is _PLACE_ORDER or type(action) is _MODIFY_ORDER:
        return _check_order(block, action)
    if type(action) is _CANCEL_ORDER:
        return _check_cancel(block, action)
    if type(action) is _CANCEL_ALL:
        if (
            action.market_id is not None
            and markets.get_market(block.state, action.market_id) is None
        ):
            raise InvalidTransaction(ErrorCode.UNKNOWN_MARKET, str(action.market_id))
    elif (
        type(action) is _BULK_PLACE or type(action) is _BULK_CANCEL or type(action) is _BULK_MODIFY
    ):
        items: Sequence[PlaceOrder | CancelOrder | ModifyOrder]
        if type(action) is BulkPlace:
            items = action.orders
        elif type(action) is BulkCancel:
            items = action.cancels
        else:
            items = action.modifies
        if not items:
            raise InvalidTransaction(ErrorCode.BULK_EMPTY, "a bulk action needs an item")
        if len(items) > MAX_BULK_ITEMS:
            raise InvalidTransaction(ErrorCode.BULK_TOO_LARGE, f"{len(items)} > {MAX_BULK_ITEMS}")
        for item in items:
            if type(item) is CancelOrder:
                _check_cancel(block, item)
            else:
                _check_order(block, item)
    elif type(action) is PlaceTrigger:
        market = markets.check_order_params(
            block.state, action.market_id, action.price_ticks, action.size_lots
        )
        if not 1 <= action.trigger_price_ticks <= market.max_price_ticks:
            raise InvalidTransaction(
                ErrorCode.PRICE_OUT_OF_RANGE, f"trigger price {action.trigger_price_ticks}"
            )
        if action.tif not in (TimeInForce.GTC, TimeInForce.IOC):
            raise InvalidTransaction(ErrorCode.MALFORMED_TRANSACTION, "a trigger is IOC or GTC")
    elif (
        type(action) is CancelTrigger
        or type(action) is SetMarginMode
        or type(action) is MoveIsolatedMargin
    ):
        if markets.get_market(block.state, action.market_id) is None:
            raise InvalidTransaction(ErrorCode.UNKNOWN_MARKET, str(action.market_id))
        if type(action) is MoveIsolatedMargin and action.amount_quote == 0:
            raise InvalidTransaction(ErrorCode.BAD_AMOUNT, "a move of zero")
    elif type(action) is Transfer and action.to == account:
        raise InvalidTransaction(ErrorCode.SELF_TRANSFER, "transfer to self")
    elif type(action) is ApproveAgent:
        digest = compute_agent_consent_digest(
            block.params.chain_id,
            block.params.bridge_address,
            account,
            action.public_key,
            action.valid_until_ms,
        )
        if not verify_agent_signature(action.public_key, digest, action.agent_signature):
            raise InvalidTransaction(ErrorCode.BAD_AGENT_CONSENT, "the agent key did not consent")
    return None


def _check_cancel(block: _Block, cancel: CancelOrder) -> tuple[object, ...]:
    """The static checks of one cancel; returns its fields (:data:`CancelFields`)."""
    fields = _AS_TUPLE(cancel)
    market_id, order_id, client_id = cast(CancelFields, fields)
    if markets.get_market(block.state, market_id) is None:
        raise InvalidTransaction(ErrorCode.UNKNOWN_MARKET, str(market_id))
    if (order_id is None) == (client_id is None):
        raise InvalidTransaction(ErrorCode.MALFORMED_TRANSACTION, "order id xor client id")
    return fields


def compute_base_gas(params: ChainParams, tx: SignedTransaction, market_count: int) -> int:
    """Gas known before execution: per account action, per order placed, per cancel (a
    cancel-all pays one cancel per market it covers; each order it removes is matching work)."""
    gas = params.gas
    return compute_action_gas(gas.place, gas.cancel, gas.account_action, tx.action, market_count)


def compute_action_gas(
    place: int, cancel: int, account_action: int, action: Action, market_count: int
) -> int:
    """:func:`compute_base_gas` of ``action`` under the schedule's ``place``, ``cancel`` and
    ``account_action`` (admission reads them once per block)."""
    if type(action) is _PLACE_ORDER:
        return place
    if type(action) is _MODIFY_ORDER:
        return place + cancel
    if type(action) is _CANCEL_ORDER:
        return cancel
    if type(action) is _CANCEL_ALL:
        return cancel * (market_count if action.market_id is None else 1)
    if type(action) is _BULK_PLACE:
        return place * len(action.orders)
    if type(action) is _BULK_CANCEL:
        return cancel * len(action.cancels)
    if type(action) is _BULK_MODIFY:
        return (place + cancel) * len(action.modifies)
    if type(action) is PlaceTrigger:
        return place
    if type(action) is CancelTrigger:
        return cancel
    return account_action


def check_authority(
    state: State, tx: SignedTransaction, signer: bytes | None, timestamp_ms: int
) -> None:
    """Check that the verified ``signer`` may act for ``tx.account``.

    Raises
    ------
    InvalidTransaction
        ``BAD_SIGNATURE`` (no valid signature), ``WRONG_SIGNER`` (a wallet signature by another
        address), ``UNKNOWN_AGENT`` (an agent key not approved, expired, or of another account),
        ``AGENT_IS_WALLET_ONLY`` (an agent may not manage agents or move funds out).
    """
    _check_authority(state, tx.account, tx.action, tx.agent, signer, timestamp_ms)


def _check_authority(
    state: State,
    account: bytes,
    action: Action,
    agent: bytes | None,
    signer: bytes | None,
    timestamp_ms: int,
) -> None:
    """:func:`check_authority` of a transaction's fields."""
    if signer is None:
        raise InvalidTransaction(ErrorCode.BAD_SIGNATURE, "signature does not verify")
    if agent is None:
        if signer != account:
            raise InvalidTransaction(ErrorCode.WRONG_SIGNER, signer.hex())
        return
    if signer != agent:
        raise InvalidTransaction(ErrorCode.BAD_SIGNATURE, "agent signature mismatch")
    if accounts.get_agent_account(state, agent, timestamp_ms) != account:
        raise InvalidTransaction(ErrorCode.UNKNOWN_AGENT, agent.hex())
    if type(action) in _WALLET_ONLY:
        raise InvalidTransaction(ErrorCode.AGENT_IS_WALLET_ONLY, type(action).__name__)


def process_admission(
    block: _Block, tx_index: int, fields: tuple[object, ...], signer: bytes | None
) -> tuple[int, int, list[Event]]:
    """Admit one transaction (its fields: :data:`SignedFields`): authority, static checks, fee,
    nonce, then its admission effects.

    Returns ``(status, base_gas, events)``: ``status`` is 0 or the ``ExecutionFailure`` code (the
    effects were rolled back; nonce and fee are kept).

    Raises
    ------
    InvalidTransaction
        If the transaction may not be included; then nothing has changed.
    """
    state = block.state
    account, nonce, action, agent, _ = cast(SignedFields, fields)
    # One bytes object per account for the whole block (each transaction decodes its own): the
    # block's maps (nonces, reservations, positions, ...) then find an account by identity
    # instead of comparing its 20 bytes, about a hundred instructions a lookup.
    account = block.account(account).account
    _check_authority(state, account, action, agent, signer, block.timestamp_ms)
    action_fields = _check_static(block, account, action)
    base_gas = compute_action_gas(
        block.gas_place, block.gas_cancel, block.gas_account_action, action, len(block.market_ids)
    )
    fee = base_gas * block.gas_price_quote
    # The fee is paid from equity beyond the positions' initial margin (reservations count as
    # free here: a cancel must stay possible for an account whose orders hold all its margin).
    if fee and block.free_collateral(account) + block.get_reserved(account) < fee:
        raise InvalidTransaction(ErrorCode.INSUFFICIENT_FEE_BALANCE, f"fee {fee}")

    block.nonces.process(account, nonce, block.timestamp_ms)
    # From here on the transaction is included.
    events: list[Event] = []
    if fee:
        collateral.add_balance(state, account, -fee)
        clearing.add_fee_pool(state, fee)
        events.append(FeeCharged(account, fee))
    state.begin()
    mark = len(block.withdrawals)
    reserved_mark = len(block.reserved_undo)
    staged = block.staged  # (one list for the block, emptied before each transaction)
    staged.clear()
    credit: tuple[bytes, int] | None = None
    try:
        credit = _admit_action(
            block, tx_index, nonce, account, action, action_fields, events, staged
        )
    except ExecutionFailure as failure:
        state.rollback()
        block.rollback_reserved(reserved_mark)
        del block.withdrawals[mark:]
        return failure.code, base_gas, events[:1] if fee else []
    state.commit()
    for op in staged:
        if isinstance(op, CancelOp):  # (native classes: a pointer comparison, compiled)
            block.cancels[op.market_id].append(op)
        else:
            block.places[op.market_id].append(op)
            if op.client_id is not None and op.replace_order_id is None:
                block.client_ids.setdefault(account, set()).add(op.client_id)
    if credit is not None:
        block.credits[credit[0]] = block.credits.get(credit[0], 0) + credit[1]
    return 0, base_gas, events


def _admit_action(
    block: _Block,
    tx_index: int,
    nonce: int,
    account: bytes,
    action: Action,
    action_fields: tuple[object, ...] | None,
    events: list[Event],
    staged: list[CancelOp | PlaceOp],
) -> tuple[bytes, int] | None:
    """The admission-phase effects of ``action`` (signed by ``account`` with ``nonce``; its
    fields as :func:`_check_static` returned them); returns a credit for settlement, if any."""
    state = block.state
    # The order actions first: each test of the chain costs compiled code a global lookup.
    if type(action) is _PLACE_ORDER:
        assert action_fields is not None
        client_id = cast(PlaceFields, action_fields)[6]
        if client_id is not None and _is_client_id_taken(block, account, client_id):
            # A resubmission of a live order: idempotent, nothing new is placed.
            raise ExecutionFailure(ErrorCode.DUPLICATE_CLIENT_ID, f"client id {client_id} is live")
        op = _reserve(block, tx_index, account, action, action_fields, None, None, single=True)
        assert op is not None
        staged.append(op)
    elif type(action) is _BULK_PLACE:
        in_bulk: set[int] = set()
        for order in action.orders:
            cid = order.client_id
            if cid is not None and (cid in in_bulk or _is_client_id_taken(block, account, cid)):
                events.append(_rejected(account, order, OrderReason.DUPLICATE_CLIENT_ID))
                continue
            op = _reserve(
                block, tx_index, account, order, _AS_TUPLE(order), None, None, single=False
            )
            if op is not None:
                staged.append(op)
                if cid is not None:
                    in_bulk.add(cid)
            else:
                events.append(_rejected(account, order, _bulk_reason(block, order)))
    elif type(action) is _MODIFY_ORDER or type(action) is _BULK_MODIFY:
        modifies = (action,) if type(action) is ModifyOrder else action.modifies
        for modify in modifies:
            fields = action_fields if type(action) is _MODIFY_ORDER else None
            if fields is None:
                fields = _AS_TUPLE(modify)
            market_id, order_id, client_id, _, _, _, _, _ = cast(ModifyFields, fields)
            if type(action) is _MODIFY_ORDER:
                owned = _check_order_owned(block, account, market_id, order_id, client_id)
                credit: int = owned.reserved_quote
            else:
                credit = _live_reservation(block, account, market_id, order_id, client_id)
            op = _reserve(
                block,
                tx_index,
                account,
                modify,
                fields,
                order_id,
                client_id,
                single=type(action) is _MODIFY_ORDER,
                credit_quote=credit,
            )
            if op is None:
                events.append(_rejected(account, modify, _bulk_reason(block, modify)))
                continue
            staged.append(CancelOp(tx_index, account, market_id, order_id, client_id, modify=op))
            staged.append(op)
    elif type(action) is _CANCEL_ORDER or type(action) is _BULK_CANCEL:
        cancels = (action,) if type(action) is CancelOrder else action.cancels
        for cancel in cancels:
            fields = action_fields if type(action) is _CANCEL_ORDER else None
            if fields is None:
                fields = _AS_TUPLE(cancel)
            market_id, order_id, client_id = cast(CancelFields, fields)
            if type(action) is _CANCEL_ORDER:
                _check_order_owned(block, account, market_id, order_id, client_id)
            staged.append(CancelOp(tx_index, account, market_id, order_id, client_id))
    elif type(action) is ApproveAgent:
        accounts.process_approve_agent(
            state,
            account,
            action.public_key,
            action.valid_until_ms,
            block.timestamp_ms,
            block.params.max_agents_per_account,
        )
        events.append(AgentApproved(account, action.public_key, action.valid_until_ms))
    elif type(action) is RevokeAgent:
        accounts.process_revoke_agent(state, account, action.public_key)
        events.append(AgentRevoked(account, action.public_key))
    elif type(action) is Transfer:
        _check_withdrawable(block, account, action.amount_quote)
        collateral.add_balance(state, account, -action.amount_quote)
        events.append(Transferred(account, action.to, action.amount_quote))
        return action.to, action.amount_quote
    elif type(action) is Withdraw:
        debt = liquidation.get_bad_debt(state)
        if debt:
            raise ExecutionFailure(ErrorCode.WITHDRAWALS_GATED, f"bad debt {debt} outstanding")
        _check_withdrawable(block, account, action.amount_quote)
        record = collateral.record_withdrawal(
            state, account, action.destination, action.amount_quote, block.state.tip.height + 1
        )
        block.withdrawals.append(record)
        events.append(
            WithdrawalRequested(
                record.withdrawal_id, account, action.destination, action.amount_quote
            )
        )
    elif type(action) is SetMarginMode:
        if clearing.get_position_size(state, account, action.market_id):
            raise ExecutionFailure(ErrorCode.POSITION_OPEN, f"market {action.market_id}")
        collateral.set_margin_mode(state, account, action.market_id, action.isolated)
        events.append(MarginModeChanged(account, action.market_id, action.isolated))
    elif type(action) is MoveIsolatedMargin:
        market_id = action.market_id
        amount = action.amount_quote
        position = clearing.get_position(state, account, market_id)
        if not position.size_lots or not collateral.is_isolated(state, account, market_id):
            raise ExecutionFailure(ErrorCode.NOT_ISOLATED, f"market {market_id}")
        if amount > 0:
            _check_withdrawable(block, account, amount)
        else:
            risk = liquidation.compute_isolated_risk(state, account, position, block.risk_params)
            free = risk.withdrawable_quote
            if free < -amount:
                raise ExecutionFailure(
                    ErrorCode.INSUFFICIENT_FREE_COLLATERAL, f"isolated {free} < {-amount}"
                )
        collateral.move_isolated_cash(state, account, market_id, amount)
        cash = collateral.get_isolated_cash(state, account, market_id)
        events.append(IsolatedMarginMoved(account, market_id, amount, cash))
    elif type(action) is ScheduleCancel:
        at_ms = action.at_ms
        if (
            at_ms is not None
            and at_ms < block.timestamp_ms + block.params.schedule_cancel_min_delay_ms
        ):
            raise ExecutionFailure(
                ErrorCode.SCHEDULE_TOO_SOON,
                f"{at_ms} < {block.timestamp_ms} + {block.params.schedule_cancel_min_delay_ms}",
            )
        triggers.set_cancel_schedule(state, account, at_ms)
        events.append(CancelScheduled(account, at_ms))
    elif type(action) is PlaceTrigger:
        held = triggers.get_triggers(state, account)
        market = markets.get_market(state, action.market_id)
        assert market is not None
        if sum(t.market_id == action.market_id for t in held) >= market.max_open_orders_per_account:
            raise ExecutionFailure(ErrorCode.TOO_MANY_TRIGGERS, f"market {action.market_id}")
        # The nonce is the trigger's id: unique per account, and known before the receipt.
        trigger = triggers.Trigger(
            action.market_id,
            nonce,
            action.is_buy,
            action.trigger_price_ticks,
            action.trigger_above,
            action.price_ticks,
            action.size_lots,
            action.tif,
        )
        triggers.set_triggers(state, account, (*held, trigger))
        events.append(TriggerUpdate(account, action.market_id, nonce, TriggerStatus.PLACED, 0))
    elif type(action) is CancelTrigger:
        held = triggers.get_triggers(state, account)
        kept = tuple(
            t for t in held if (t.market_id, t.trigger_id) != (action.market_id, action.trigger_id)
        )
        if len(kept) == len(held):
            raise ExecutionFailure(
                ErrorCode.UNKNOWN_TRIGGER, f"{action.market_id}/{action.trigger_id}"
            )
        triggers.set_triggers(state, account, kept)
        events.append(
            TriggerUpdate(account, action.market_id, action.trigger_id, TriggerStatus.CANCELED, 0)
        )
    elif type(action) is _CANCEL_ALL:
        market_ids = block.market_ids if action.market_id is None else [action.market_id]
        for market_id in market_ids:
            staged.append(CancelOp(tx_index, account, market_id, cancel_all=True))
    return None


def _rejected(account: bytes, order: PlaceOrder | ModifyOrder, reason: OrderReason) -> Event:
    """The event of an order of a bulk action refused at admission (it never reaches a book)."""
    return OrderUpdate(
        order.market_id, 0, account, OrderStatus.REJECTED, reason, 0, 0, order.client_id
    )


def _bulk_reason(block: _Block, order: PlaceOrder | ModifyOrder) -> OrderReason:
    """Why :func:`_reserve` refused an order of a bulk action."""
    expires_at_ms = order.expires_at_ms if type(order) is _PLACE_ORDER else None
    if expires_at_ms is not None and expires_at_ms <= block.timestamp_ms:
        return OrderReason.EXPIRED
    market = block.markets[order.market_id]
    if not order.reduce_only and market.stale:
        return OrderReason.ORACLE_STALE
    if not order.reduce_only and market.would_pass_oi_cap(block.state, order.size_lots):
        return OrderReason.OPEN_INTEREST_CAP
    return OrderReason.INSUFFICIENT_MARGIN


def _is_client_id_taken(block: _Block, account: bytes, client_id: int) -> bool:
    """Whether ``client_id`` belongs to a live order of ``account`` in any market (at block
    start), or to an order the account placed earlier in this block. Client ids are unique per
    account while the order lives, so a resubmission can never place twice."""
    placed = block.client_ids.get(account)
    if placed is not None and client_id in placed:
        return True
    # A loop, not any(<generator>): this runs for every order placed.
    for book in block.books:  # noqa: SIM110
        if book.get_order_by_client_id(account, client_id) is not None:
            return True
    return False


def _named_order(
    block: _Block, account: bytes, market_id: int, order_id: int | None, client_id: int | None
) -> Order | None:
    """The resting order a cancel or modify names: by its order id, else by the account's client
    id (then it is the account's own), or ``None``."""
    book: Book = block.state.books[market_id]
    if order_id is not None:
        return book.get_order(order_id)
    assert client_id is not None
    return book.get_order_by_client_id(account, client_id)


def _check_order_owned(
    block: _Block, account: bytes, market_id: int, order_id: int | None, client_id: int | None
) -> Order:
    """The order a single cancel or modify names (:func:`_named_order`), which must rest and be
    ``account``'s."""
    order = _named_order(block, account, market_id, order_id, client_id)
    if order is None:
        raise ExecutionFailure(ErrorCode.UNKNOWN_ORDER, f"{order_id}/{client_id}")
    if order.owner != account:
        raise ExecutionFailure(ErrorCode.NOT_ORDER_OWNER, str(order_id))
    return order


def _live_reservation(
    block: _Block, account: bytes, market_id: int, order_id: int | None, client_id: int | None
) -> int:
    """The reservation of the order a bulk modify names, 0 if none of ``account``'s rests."""
    order = _named_order(block, account, market_id, order_id, client_id)
    if order is None or order.owner != account:
        return 0
    reserved: int = order.reserved_quote
    return reserved


def _reserve(
    block: _Block,
    tx_index: int,
    account: bytes,
    order: PlaceOrder | ModifyOrder,
    fields: tuple[object, ...],
    replace_order_id: int | None,
    replace_client_id: int | None,
    *,
    single: bool,
    credit_quote: int = 0,
) -> PlaceOp | None:
    """Reserve initial margin for one order (``fields``: its :data:`PlaceFields` or
    :data:`ModifyFields`) against the account's free collateral.

    ``credit_quote`` is the reservation of the order a modify replaces (released when it is
    canceled in matching). Returns the placement to match, or ``None`` when the margin is
    insufficient, the market stale or at its cap in a bulk action (see :func:`_bulk_reason`).

    Raises
    ------
    ExecutionFailure
        ``ORDER_EXPIRED`` for a single order whose ``expires_at_ms`` is not after the block;
        ``ORACLE_STALE`` for a single order that is not reduce-only in a market whose index is
        stale; ``OPEN_INTEREST_CAP`` for one that would pass the market's open-interest cap;
        ``INSUFFICIENT_MARGIN`` for a single order that the free collateral does not cover.
    """
    expires_at_ms: int | None
    client_id: int | None
    if type(order) is _PLACE_ORDER:
        place = cast(PlaceFields, fields)
        market_id, is_buy, price_ticks, size_lots, tif, reduce_only, client_id, expires_at_ms = (
            place
        )
    else:
        modify = cast(ModifyFields, fields)
        market_id, _, _, is_buy, price_ticks, size_lots, tif, reduce_only = modify
        expires_at_ms = None
        client_id = replace_client_id  # a modify keeps the client id of the order it replaces
    if expires_at_ms is not None and expires_at_ms <= block.timestamp_ms:
        if single:
            raise ExecutionFailure(ErrorCode.ORDER_EXPIRED, f"expired at {expires_at_ms}")
        return None
    reserved = 0
    if not reduce_only:
        market = block.markets[market_id]  # (there: the order's static checks passed)
        if market.stale:
            # A stale index cannot price new risk: only reduce-only orders pass (the freeze).
            if single:
                raise ExecutionFailure(ErrorCode.ORACLE_STALE, f"market {market_id}")
            return None
        if market.would_pass_oi_cap(block.state, size_lots):
            if single:
                raise ExecutionFailure(ErrorCode.OPEN_INTEREST_CAP, f"market {market_id}")
            return None
        mark_ticks, quote_per_tick_lot, initial_margin_ppm = block.reservation_terms(market)
        reserved = margin.compute_order_reservation(
            is_buy,
            price_ticks,
            size_lots,
            mark_ticks,
            quote_per_tick_lot,
            initial_margin_ppm,
            block.max_taker_ppm,
        )
        free = block.free_collateral(account)
        if free + credit_quote < reserved:
            if single:
                raise ExecutionFailure(
                    ErrorCode.INSUFFICIENT_MARGIN, f"needs {reserved}, free {free + credit_quote}"
                )
            return None
        block.add_reserved(account, reserved)
        market.add_oi_admitted(size_lots)
    return PlaceOp(
        tx_index,
        account,
        market_id,
        is_buy,
        price_ticks,
        size_lots,
        tif,
        reduce_only,
        client_id,
        reserved,
        replace_order_id,
        replace_client_id,
        expires_at_ms,
    )


# --------------------------------------------------------------------------------------------
# The canonical order
# --------------------------------------------------------------------------------------------


class TxClass:
    """Canonical in-block classes: makers are protected by running before takers."""

    ACCOUNT_OR_POST_ONLY: Final = 0
    CANCEL: Final = 1
    TAKING: Final = 2
    COUNT: Final = 3
    """How many classes there are (they are ``0 .. COUNT - 1``)."""


_POST_ONLY: Final = 3  # TimeInForce.POST_ONLY, as the decoded field holds it
_CANCEL_CLASSES: Final[frozenset[type]] = frozenset(CANCEL_ACTIONS)


def compute_tx_class(action: Action) -> int:
    """The class of a transaction for the canonical in-block order (ARCHITECTURE.md)."""
    # By exact type (the action classes are final): a miss of ``isinstance`` against a Struct
    # class is slow, and this runs for every transaction of every block (here, compiled: from
    # the interpreted stf/transactions.py it cost an interpreted frame per transaction).
    # Single orders first, the commonest; a set lookup of the cancel classes cost every
    # transaction a hash and a probe.
    if type(action) is _PLACE_ORDER or type(action) is _MODIFY_ORDER:
        return TxClass.ACCOUNT_OR_POST_ONLY if action.tif == _POST_ONLY else TxClass.TAKING
    if type(action) in _CANCEL_CLASSES:
        return TxClass.CANCEL
    if type(action) is _BULK_PLACE:
        post_only = all(o.tif == _POST_ONLY for o in action.orders)
        return TxClass.ACCOUNT_OR_POST_ONLY if post_only else TxClass.TAKING
    if type(action) is _BULK_MODIFY:
        post_only = all(m.tif == _POST_ONLY for m in action.modifies)
        return TxClass.ACCOUNT_OR_POST_ONLY if post_only else TxClass.TAKING
    return TxClass.ACCOUNT_OR_POST_ONLY


# The class read from a transaction's bytes (:func:`peek_tx_class`). A transaction is encoded
# as a MessagePack array ``[account, nonce, action, agent, signature]``, and an action as the
# array ``[tag, field, ...]`` of its class's tag and fields in declaration order
# (``stf/transactions.py``); the class needs only the tag and, for orders, the time in force.
def _tag(cls: type) -> int:
    tag: int = cls.__struct_config__.tag  # type: ignore[attr-defined]
    return tag


_PLACE_TAG: Final = _tag(PlaceOrder)
_MODIFY_TAG: Final = _tag(ModifyOrder)
_PLACE_TIF_AT: Final = PlaceOrder.__struct_fields__.index("tif")
_MODIFY_TIF_AT: Final = ModifyOrder.__struct_fields__.index("tif")
_TAG_CLASS: Final[list[int]] = [-1] * (max(_tag(c) for c in get_args(Action)) + 1)
"""The class of each action tag whose class the tag alone gives (-1: no action, or an order
action, whose class depends on its time in force)."""
for _cls in get_args(Action):
    _TAG_CLASS[_tag(_cls)] = (
        TxClass.CANCEL if _cls in CANCEL_ACTIONS else TxClass.ACCOUNT_OR_POST_ONLY
    )
for _cls in (PlaceOrder, ModifyOrder, BulkPlace, BulkModify):
    _TAG_CLASS[_tag(_cls)] = -1


def _byte(data: bytes, pos: int) -> int:
    """``data[pos]``, or -1 past the end."""
    return data[pos] if 0 <= pos < len(data) else -1


def _array_head(data: bytes, pos: int) -> tuple[int, int]:
    """``(items, position of the first)`` of the MessagePack array at ``pos``; ``(-1, -1)`` if
    there is none."""
    head = _byte(data, pos)
    if 0x90 <= head <= 0x9F:  # fixarray
        return head & 0x0F, pos + 1
    if head == 0xDC:  # array 16
        high = _byte(data, pos + 1)
        low = _byte(data, pos + 2)
        if high >= 0 and low >= 0:
            return high << 8 | low, pos + 3
    return -1, -1


def _skip(data: bytes, pos: int) -> int:
    """The position after the MessagePack value at ``pos``, or -1 if it is not one of the kinds
    that come before an order's time in force (integers, nil, booleans, short binaries)."""
    head = _byte(data, pos)
    if head < 0:
        return -1
    if head <= 0x7F or head >= 0xE0 or head == 0xC0 or head == 0xC2 or head == 0xC3:
        return pos + 1  # fixint, negative fixint, nil, false, true
    if 0xCC <= head <= 0xCF:  # uint 8, 16, 32, 64
        return pos + 1 + (1 << (head - 0xCC))
    if 0xD0 <= head <= 0xD3:  # int 8, 16, 32, 64
        return pos + 1 + (1 << (head - 0xD0))
    if head == 0xC4:  # bin 8
        size = _byte(data, pos + 1)
        return pos + 2 + size if size >= 0 else -1
    return -1


def _order_class(data: bytes, pos: int, fields: int, tif_at: int) -> int:
    """The class of an order whose ``fields`` fields start at ``pos`` and whose time in force is
    field ``tif_at`` (absent: its default, GTC), or -1."""
    if fields <= tif_at:
        return TxClass.TAKING
    for _field in range(tif_at):  # (compiled, ``_`` would be an object, boxed each time round)
        pos = _skip(data, pos)
    tif = _byte(data, pos)
    if not 0 <= tif <= 0x7F:  # (a time in force is a fixint)
        return -1
    return TxClass.ACCOUNT_OR_POST_ONLY if tif == _POST_ONLY else TxClass.TAKING


def peek_tx_class(data: bytes) -> int:
    """:func:`compute_tx_class` of the action of the transaction ``data``, read from the bytes
    without decoding them (no objects are made), or -1 when the bytes are not laid out as a
    transaction's canonical encoding, and for bulk placements and modifies (the caller decodes
    them then). A bulk action's class needs every order's time in force: reading up to 64
    orders' fields from the bytes, then decoding them at admission, cost more than decoding
    them once (+3% instructions per bulk event on ``strata bench engine --instructions``).

    For any bytes that decode as a transaction it gives -1 or exactly the class of the decoded
    action (``tests/differential/test_peek_tx_class.py``). Execution sorts a block by class
    before admitting anything, and decoding every transaction for that alone kept them all in
    memory until admission, which read them again from outside the CPU's caches: peeked, each
    is decoded at its admission and freed right after."""
    items, pos = _array_head(data, 0)
    if items != 5:
        return -1
    pos = _skip(data, _skip(data, pos))  # account, nonce
    if pos < 0:
        return -1
    fields, pos = _array_head(data, pos)
    tag = _byte(data, pos)
    if fields < 1 or tag < 0 or tag > 0x7F:
        return -1
    if tag < len(_TAG_CLASS) and _TAG_CLASS[tag] >= 0:
        return _TAG_CLASS[tag]
    if tag == _PLACE_TAG:
        return _order_class(data, pos + 1, fields - 1, _PLACE_TIF_AT)
    if tag == _MODIFY_TAG:
        return _order_class(data, pos + 1, fields - 1, _MODIFY_TIF_AT)
    return -1  # (a bulk placement or modify, or no action)


# --------------------------------------------------------------------------------------------
# The block
# --------------------------------------------------------------------------------------------


def _execute(
    state: State,
    header: Header,
    system: Sequence[SystemInput],
    transactions: Sequence[bytes],
    params: ChainParams,
    signers: Sequence[bytes | None] | None,
    building: bool,
    decoded: Sequence[SignedTransaction] | None = None,
    matching: MatchingPhase | None = None,
) -> BlockOutput:
    """Run the phases: everything but the state root, which :func:`_seal_state` adds (the
    output's ``state_root`` and the state's tip hash are empty until then)."""
    check_header(state, header, params)
    if len(transactions) > params.max_transactions_per_block:
        raise InvalidBlock(ErrorCode.TOO_MANY_TRANSACTIONS, str(len(transactions)))
    # A list: compiled, a list's item is read directly, any other sequence's through a generic
    # lookup with a boxed index.
    signer_of = check_signatures(params, transactions) if signers is None else list(signers)
    if len(signer_of) != len(transactions):
        raise InvalidBlock(ErrorCode.MALFORMED_BLOCK, "one signer result per transaction")

    # --- prologue ---
    prologue: list[Event] = [
        process_system_input(state, item, header.timestamp_ms, params) for item in system
    ]
    prologue.extend(apply_prices(state, header.timestamp_ms, params))
    prologue.extend(apply_funding(state, header.timestamp_ms, params))
    market_ids = markets.get_market_ids(state)
    prologue.extend(apply_expiries(state, header.timestamp_ms, market_ids))
    prologue.extend(apply_schedules(state, header.timestamp_ms, market_ids))
    trigger_events, triggered = apply_triggers(state, market_ids)
    prologue.extend(trigger_events)

    # --- canonical order ---
    # Each transaction's class is noted; admission then sweeps the block once per class, in
    # the sequencer's order: a stable sort by class with no key compared and nothing built per
    # transaction (a sort of (class, index, ...) tuples built a tuple and a boxed index for
    # each, and compared their keys).
    class_of = [TxClass.COUNT] * len(transactions)  # (COUNT: refused, in no class)
    fields_of: list[tuple[object, ...] | None] = [None] * len(transactions)
    txs = list(transactions)  # (compiled, a list's item is read directly)
    rejected: list[tuple[bytes, int]] = []
    included = [True] * len(transactions)

    def reject(index: int, data: bytes, error: InvalidTransaction) -> None:
        """An invalid transaction: the block is invalid, or the builder leaves it out."""
        if not building:
            raise InvalidBlock(
                ErrorCode.INVALID_TRANSACTION_IN_BLOCK, f"tx {index}: {error}"
            ) from None
        rejected.append((compute_transaction_hash(data), error.code))
        included[index] = False

    # A transaction is decoded straight into a tuple of its fields (TX_FIELDS_DECODER: the
    # same bytes accepted, the same values), which admission unpacks natively: no record to
    # build, read and free. One whose signer was found (check_signatures decoded its bytes,
    # canonical) is classed from its bytes (peek_tx_class) and decoded only at its admission,
    # then freed: decoding them all first kept a block's worth of objects alive until
    # admission read them again from outside the CPU's caches (measured side by side: 1.10x,
    # the median of sixteen alternating rounds; bench/README.md). The others are decoded here,
    # canonical, so that bytes that do not decode are refused in the sequencer's order.
    decode = TX_FIELDS_DECODER.decode  # names read once, not once per transaction
    decode_known_canonical = TX_FIELDS_DECODER.decode_known_canonical
    fields: tuple[object, ...] | None
    for index in range(len(txs)):
        if decoded is not None:
            fields = _AS_TUPLE(decoded[index])
        else:
            data = txs[index]
            known = signer_of[index] is not None
            if known:
                tx_class = peek_tx_class(data)
                if tx_class >= 0:
                    class_of[index] = tx_class
                    continue
            try:
                fields = decode_known_canonical(data) if known else decode(data)
            except InvalidTransaction as error:
                reject(index, data, error)
                continue
        fields_of[index] = fields
        class_of[index] = compute_tx_class(cast(Action, fields[2]))

    # --- admission ---
    block = _Block(state, params, header.timestamp_ms)
    admitted: list[AdmittedTx] = []
    tx_events: list[list[Event]] = []
    for tx_class in range(TxClass.COUNT):
        for index in range(len(txs)):
            if class_of[index] != tx_class:
                continue
            data = txs[index]
            fields = fields_of[index]
            if fields is None:
                try:
                    # (Can fail only if the signer given was not check_signatures' verdict on
                    # these bytes.)
                    fields = decode_known_canonical(data)
                except InvalidTransaction as error:
                    reject(index, data, error)
                    continue
            else:
                fields_of[index] = None  # (freed once admitted)
            try:
                status, base_gas, events = process_admission(
                    block, len(admitted), fields, signer_of[index]
                )
            except InvalidTransaction as error:
                reject(index, data, error)
                continue
            admitted.append(AdmittedTx(index, data, status, base_gas, events))
            tx_events.append(events)
    block.nonces.flush()
    block.flush_reserved()

    # --- matching, market by market ---
    deltas: dict[bytes, AccountDelta] = {}
    # The orders of fired triggers match first; their events go to one more slot at the end.
    system_slot = len(admitted)
    system_events: list[Event] = []
    tx_events.append(system_events)
    work: list[MarketWork] = [*admitted, MarketWork()]
    for market_id, ops in triggered.items():
        for op in ops:
            op.tx_index = system_slot
        block.places[market_id][:0] = ops
    qptl: dict[int, int] = {}
    jobs: list[MarketJob] = []
    for market_id in block.market_ids:
        market = markets.get_market(state, market_id)
        assert market is not None
        qptl[market_id] = market.quote_per_tick_lot
        cancels = block.cancels[market_id]
        places = block.places[market_id]
        if cancels or places:
            jobs.append(MarketJob(market, state.books[market_id], cancels, places))
    if matching is None:
        match_markets(state, jobs, params.fee_tiers, tx_events, deltas, work)
    else:
        matching.match(state, jobs, params.fee_tiers, tx_events, deltas, work)
    work.clear()  # (the records live on in ``admitted`` until their receipts are made)
    tx_events.clear()

    # --- receipts and gas ---
    # Names and the gas schedule read once, not once per transaction.
    gas_schedule = params.gas
    per_fill = gas_schedule.per_fill
    per_level = gas_schedule.per_level
    per_cancel = gas_schedule.cancel
    encoded_receipts: list[bytes] = []
    # Each transaction's id is its leaf in the transactions tree (stf/transactions.py): kept by
    # its place in the block, the root's order (receipts follow the canonical order).
    ids: list[bytes] = [b""] * len(txs)
    gas_used = 0
    tx_hash = compute_transaction_hash
    # As in admission: each record is freed once its receipt is made (``admitted`` holds the last
    # reference), and its events with it, while still in cache.
    admitted.reverse()
    while admitted:
        w = admitted.pop()
        # Matching work is metered (receipt and block limit) but not charged: only base gas is
        # paid, at admission, where free collateral is checked. A charge for work that no
        # reservation can bound could leave an account with bad debt.
        gas = w.base_gas + w.fills * per_fill + w.levels * per_level + w.cancels * per_cancel
        gas_used += gas
        tx_id = ids[w.index] = tx_hash(w.data)
        # The receipt's encoding, made from its fields: a Receipt is encoded as the array of
        # its fields (array_like), as this tuple is, so no record is built (the output keeps
        # the bytes; BlockOutput.receipts decodes them).
        encoded_receipts.append(encode((tx_id, w.status, gas, w.events)))
    if gas_used > params.block_gas_limit:
        raise InvalidBlock(
            ErrorCode.BLOCK_GAS_LIMIT_EXCEEDED, f"{gas_used} > {params.block_gas_limit}"
        )

    # --- settlement, account by account ---
    settlement: list[Event] = []
    for account in sorted(deltas.keys() | block.credits.keys()):
        settlement.extend(
            process_settlement(  # (popped: each delta is freed once applied, while in cache)
                state, account, deltas.pop(account, None), block.credits.get(account, 0), qptl
            )
        )

    # --- risk ---
    risk = process_risk(state, params, block.market_ids)

    # --- epilogue ---
    if matching is not None:
        matching.end_block(state)
    included_txs = tuple(data for index, data in enumerate(transactions) if included[index])
    included_ids = [ids[index] for index in range(len(txs)) if included[index]]
    block_events = BlockEvents(
        tuple(prologue), tuple(settlement), tuple(risk), tuple(system_events)
    )
    computed = Header(
        chain_id=header.chain_id,
        height=header.height,
        parent_hash=header.parent_hash,
        timestamp_ms=header.timestamp_ms,
        gas_used=gas_used,
        state_root=b"",
        transactions_root=compute_ordered_root_of_leaves(included_ids),
        receipts_root=compute_ordered_root([*encoded_receipts, encode(block_events)]),
        withdrawals_root=compute_ordered_root([encode(w) for w in block.withdrawals]),
    )
    state.tip = ChainTip(computed.height, computed.timestamp_ms, b"")
    return BlockOutput(
        header=computed,
        encoded_receipts=tuple(encoded_receipts),
        block_events=block_events,
        withdrawals=tuple(block.withdrawals),
        transactions=included_txs,
        rejected=tuple(rejected),
    )


def _seal_state(state: State, output: BlockOutput) -> BlockOutput:
    """The executed block's output with its state root, ``state`` (its post-state) with its tip's
    hash: what :func:`seal_block` does for a block whose root is computed here."""
    header = msgspec.structs.replace(output.header, state_root=compute_state_root(state))
    state.tip = ChainTip(header.height, header.timestamp_ms, compute_header_hash(header))
    return msgspec.structs.replace(output, header=header)


def apply_block(
    pre_state: State,
    block: Block,
    params: ChainParams,
    signers: Sequence[bytes | None] | None = None,
    matching: MatchingPhase | None = None,
) -> BlockOutput:
    """Apply a block built by someone else and check every commitment of its header.

    ``signers`` are the results of :func:`check_signatures` on ``block.transactions`` if they were
    computed upstream (e.g. on a thread pool); otherwise they are computed here. A signer found
    also says that its transaction's bytes decoded, canonical (:func:`check_signatures` decodes
    them first): execution decodes them without checking that again. ``matching``, if
    given, runs the matching phase instead of :func:`match_markets` (``exec/parallel.py``: the
    same results).

    Raises
    ------
    InvalidBlock
        Any header, system-input or transaction rule broken, or a root, ``gas_used`` or
        transaction that does not match what execution produces.
    """
    output = _seal_state(
        pre_state,
        _execute(
            pre_state,
            block.header,
            block.system,
            block.transactions,
            params,
            signers,
            False,
            matching=matching,
        ),
    )
    claimed = block.header
    computed = output.header
    checks = (
        (claimed.state_root, computed.state_root, ErrorCode.BAD_STATE_ROOT),
        (claimed.transactions_root, computed.transactions_root, ErrorCode.BAD_TRANSACTIONS_ROOT),
        (claimed.receipts_root, computed.receipts_root, ErrorCode.BAD_RECEIPTS_ROOT),
        (claimed.withdrawals_root, computed.withdrawals_root, ErrorCode.BAD_WITHDRAWALS_ROOT),
    )
    for got, want, code in checks:
        if got != want:
            raise InvalidBlock(code, f"header {got.hex()} != computed {want.hex()}")
    if claimed.gas_used != computed.gas_used:
        raise InvalidBlock(ErrorCode.BAD_GAS_USED, f"{claimed.gas_used} != {computed.gas_used}")
    return output


def _draft(pre_state: State, timestamp_ms: int, params: ChainParams) -> Header:
    """The header a builder starts from: the chain's fields, roots to be computed."""
    tip = pre_state.tip
    return Header(
        chain_id=params.chain_id,
        height=tip.height + 1,
        parent_hash=tip.header_hash,
        timestamp_ms=timestamp_ms,
        gas_used=0,
        state_root=b"",
        transactions_root=b"",
        receipts_root=b"",
        withdrawals_root=b"",
    )


def build_block(
    pre_state: State,
    timestamp_ms: int,
    system: Sequence[SystemInput],
    transactions: Sequence[bytes],
    params: ChainParams,
    signers: Sequence[bytes | None] | None = None,
    decoded: Sequence[SignedTransaction] | None = None,
    matching: MatchingPhase | None = None,
) -> tuple[Block, BlockOutput]:
    """The sequencer's side: execute candidate transactions on top of ``pre_state``, leave out
    the invalid ones (``BlockOutput.rejected``) and return the sealed block and its output.

    Raises
    ------
    InvalidBlock
        For an invalid system input or a block over its gas limit (the sequencer then retries
        with fewer transactions on a fresh copy of the state).
    InvariantViolation
        ``UNSEALED_PARENT`` if ``pre_state``'s tip is an unsealed block (seal it first).

    ``decoded``, if given, holds ``decode_transaction`` of each of ``transactions`` (a sequencer
    that decoded them at admission saves decoding them again; the result is the same).
    ``signers`` and ``matching`` are as for :func:`apply_block`.
    """
    if not pre_state.tip.header_hash:
        raise InvariantViolation(ErrorCode.UNSEALED_PARENT, f"tip {pre_state.tip.height}")
    draft = _draft(pre_state, timestamp_ms, params)
    executed = _execute(
        pre_state, draft, system, transactions, params, signers, True, decoded, matching
    )
    output = _seal_state(pre_state, executed)
    return Block(output.header, tuple(system), output.transactions), output


def execute_block(
    pre_state: State,
    timestamp_ms: int,
    system: Sequence[SystemInput],
    transactions: Sequence[bytes],
    params: ChainParams,
    signers: Sequence[bytes | None] | None = None,
    decoded: Sequence[SignedTransaction] | None = None,
    matching: MatchingPhase | None = None,
) -> UnsealedBlock:
    """:func:`build_block` without the state root: ``pre_state`` becomes the post-state, whose
    changes are still marked dirty for a commitment to collect (``stf/commitment.py``), and
    whose tip has an empty header hash. ``pre_state`` may itself be the post-state of an
    unsealed block. Raises as :func:`build_block`."""
    draft = _draft(pre_state, timestamp_ms, params)
    output = _execute(
        pre_state, draft, system, transactions, params, signers, True, decoded, matching
    )
    return UnsealedBlock(tuple(system), output)


def seal_block(
    unsealed: UnsealedBlock, parent_hash: bytes, state_root: bytes
) -> tuple[Block, BlockOutput]:
    """The block and output :func:`build_block` would have returned, given the hash of the
    parent's sealed header and the block's state root (the same bytes)."""
    header = msgspec.structs.replace(
        unsealed.output.header, parent_hash=parent_hash, state_root=state_root
    )
    output = msgspec.structs.replace(unsealed.output, header=header)
    return Block(header, unsealed.system, output.transactions), output


def copy_state(state: State) -> State:
    """An independent deep copy of ``state`` (tables are maps of immutable records)."""
    if state.is_journal_open():
        raise ChainError(ErrorCode.JOURNAL_OPEN, "copy with an open journal")
    copy = State()
    for table in state.tables.values():
        copy.add_table(table.copy(copy.journal))
    for market_id, book in state.books.items():
        market = markets.get_market(state, market_id)
        assert market is not None
        copy.books[market_id] = copy_book(book, market.max_open_orders_per_account)
    copy.tip = state.tip
    return copy


__all__ = [
    "TimeInForce",
    "UnsealedBlock",
    "apply_block",
    "build_block",
    "check_signatures",
    "copy_state",
    "execute_block",
    "get_account_risk",
    "seal_block",
]

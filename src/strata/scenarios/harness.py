"""The scenario harness: a chain on the real engine, driven block by block, checked at every block.

A :class:`ScenarioChain` holds two states made by the same ``make_genesis``: the *builder*'s,
where ``build_block`` seals each block, and the *validator*'s, where ``apply_block`` re-executes
the sealed block and checks every root of its header (builder/validator agreement). Transactions
are signed with real secp256k1 keys (``wallet_from_seed``), oracle prices by real oracle keys.

After every block the harness checks the invariants (see :meth:`ScenarioChain.check_invariants`)
on the builder's state and on the block's risk events, and records a :class:`BlockRow` of
figures. Scenarios add their own assertions with :meth:`ScenarioChain.check`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from strata.client.signing import Wallet, wallet_from_seed
from strata.core.signatures import compute_transaction_digest
from strata.modules import clearing, collateral, funding, liquidation, margin, markets, oracle
from strata.modules.clearing.events import PositionChanged
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    PositionLiquidated,
)
from strata.modules.markets import Market
from strata.state.store import State
from strata.stf.block import Block, BlockOutput
from strata.stf.events import Event
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis
from strata.stf.params import ChainParams
from strata.stf.transactions import (
    MAX_BULK_ITEMS,
    Action,
    BulkPlace,
    OracleObservation,
    OraclePrice,
    PlaceOrder,
    SignedTransaction,
    compute_transaction_hash,
    encode_action,
    encode_transaction,
)
from strata.stf.transition import apply_block, build_block, check_signatures, get_account_risk

FUND = INSURANCE_FUND_ACCOUNT
USDC = 1_000_000
"""Quote units per USDC (the quote unit is 1e-6 USDC)."""
CHAIN_ID = 4242
GENESIS_MS = 1_700_002_790_000
"""Ten seconds before an hourly funding boundary, so a scenario of more than ten one-second
blocks sees a funding tick (and conservation counts funding in transit)."""
BLOCK_MS = 1_000


@dataclass
class BlockRow:
    """Figures of one block (quote units unless named otherwise)."""

    height: int
    label: str
    marks: dict[int, int]
    indexes: dict[int, int]
    liquidated_accounts: int = 0
    liquidated_notional_quote: int = 0
    book_value_quote: int = 0
    backstop_value_quote: int = 0
    adl_value_quote: int = 0
    adl_count: int = 0
    fund_equity_quote: int = 0
    bad_debt_quote: int = 0
    failed_receipts: int = 0
    invariants_ok: bool = True


@dataclass
class Check:
    """A scenario's assertion and whether it held."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class BlockRecord:
    """A sealed block as the harness keeps it (for ``strata explain --scenario``)."""

    block: Block
    output: BlockOutput


def format_usdc(quote: int) -> str:
    """Quote units as USDC with two decimals (display only), e.g. ``-1234567`` -> ``-1.23``."""
    sign = "-" if quote < 0 else ""
    whole, rest = divmod(abs(quote), USDC)
    return f"{sign}{whole:,}.{rest * 100 // USDC:02d}"


class ScenarioChain:
    """A chain driven by a scenario (see the module docstring).

    ``balances`` maps account names to their genesis allocation in quote units; the insurance
    fund (:data:`FUND`) gets ``fund_quote`` at genesis (a genesis ``Allocation``). ``oracle_keys``
    oracle keys are made; :meth:`set_price` sets what every key reports, :meth:`set_key_prices`
    what each one reports. Every block re-posts the prices of every market that has a feed, so an
    index never goes stale unless a scenario stops the feed (:meth:`stop_feed`).
    """

    def __init__(
        self,
        *,
        markets_: Sequence[Market],
        prices: Mapping[int, int],
        balances: Mapping[str, int],
        fund_quote: int = 0,
        oracle_keys: int = 1,
        genesis_ms: int = GENESIS_MS,
        on_block: Callable[[BlockRow], None] | None = None,
        **param_overrides: object,
    ) -> None:
        self.oracles = [wallet_from_seed(f"scenario-oracle-{i}") for i in range(oracle_keys)]
        overrides: dict[str, object] = {
            "block_gas_limit": 10**12,
            "max_transactions_per_block": 10**6,
            **param_overrides,
        }
        self.params = ChainParams(
            chain_id=CHAIN_ID,
            oracle_keys=tuple(o.address for o in self.oracles),
            **overrides,  # type: ignore[arg-type]
        )
        self.wallets: dict[str, Wallet] = {}
        self.names: dict[bytes, str] = {FUND: "insurance-fund"}
        for name in balances:
            self.add_wallet(name)
        allocations = [Allocation(self.addr(n), amount) for n, amount in balances.items()]
        if fund_quote:
            allocations.append(Allocation(FUND, fund_quote))
        self.genesis = GenesisConfig(
            params=self.params,
            timestamp_ms=genesis_ms,
            markets=tuple(markets_),
            allocations=tuple(allocations),
            prices=tuple(InitialPrice(m, p) for m, p in sorted(prices.items())),
        )
        self.state, _ = make_genesis(self.genesis)
        self.validator, _ = make_genesis(self.genesis)
        self.markets: dict[int, Market] = {m.market_id: m for m in markets_}
        self.now_ms = genesis_ms
        self.nonce_clock = genesis_ms
        self.feed: dict[int, list[int]] = {}
        self.records: list[BlockRecord] = []
        self.rows: list[BlockRow] = []
        self.checks: list[Check] = []
        self.violations: list[str] = []
        self.on_block = on_block
        self.fund_equity_start = self.get_equity(FUND)
        self.deposited_start = collateral.get_ledger(self.state).deposited_quote

    # ------------------------------------------------------------------ accounts and signing

    def add_wallet(self, name: str) -> bytes:
        wallet = wallet_from_seed(f"scenario-{name}")
        self.wallets[name] = wallet
        self.names[wallet.address] = name
        return wallet.address

    def addr(self, name: str) -> bytes:
        return FUND if name == "insurance-fund" else self.wallets[name].address

    def name_of(self, account: bytes) -> str:
        return self.names.get(account, "0x" + account.hex())

    def tx(self, name: str, action: Action) -> bytes:
        """``action`` signed by ``name``'s wallet with a fresh nonce (a millisecond clock)."""
        self.nonce_clock = max(self.nonce_clock + 1, self.now_ms)
        wallet = self.wallets[name]
        digest = compute_transaction_digest(
            self.params.chain_id,
            self.params.bridge_address,
            wallet.address,
            self.nonce_clock,
            encode_action(action),
        )
        signed = SignedTransaction(
            wallet.address, self.nonce_clock, action, None, wallet.sign_digest(digest)
        )
        return encode_transaction(signed)

    def bulk(self, name: str, orders: Sequence[PlaceOrder]) -> list[bytes]:
        """``orders`` as ``BulkPlace`` transactions of at most 64 orders each."""
        return [
            self.tx(name, BulkPlace(tuple(orders[i : i + MAX_BULK_ITEMS])))
            for i in range(0, len(orders), MAX_BULK_ITEMS)
        ]

    # ------------------------------------------------------------------ oracle

    def set_price(self, market_id: int, price_ticks: int) -> None:
        """Every oracle key reports ``price_ticks`` for the market from the next block on."""
        self.feed[market_id] = [price_ticks] * len(self.oracles)

    def set_key_prices(self, market_id: int, prices: Sequence[int]) -> None:
        """Oracle key ``i`` reports ``prices[i]`` from the next block on."""
        assert len(prices) == len(self.oracles)
        self.feed[market_id] = list(prices)

    def stop_feed(self, market_id: int) -> None:
        self.feed.pop(market_id, None)

    def _oracle_inputs(self, timestamp_ms: int) -> list[OraclePrice]:
        inputs: list[OraclePrice] = []
        for market_id in sorted(self.feed):
            for key, price in zip(self.oracles, self.feed[market_id], strict=True):
                digest = compute_transaction_digest(
                    self.params.chain_id,
                    self.params.bridge_address,
                    key.address,
                    timestamp_ms,
                    encode_action(OracleObservation(market_id, price, timestamp_ms)),  # type: ignore[arg-type]
                )
                inputs.append(
                    OraclePrice(
                        market_id, price, timestamp_ms, key.address, key.sign_digest(digest)
                    )
                )
        return inputs

    # ------------------------------------------------------------------ blocks

    def block(self, txs: Sequence[bytes] = (), label: str = "") -> BlockOutput:
        """Seal a block of ``txs`` (and the oracle feed) with ``build_block``, re-execute it with
        ``apply_block`` on the validator's state, check the invariants and record its row."""
        self.now_ms += BLOCK_MS
        system = self._oracle_inputs(self.now_ms)
        signers = check_signatures(self.params, txs)
        block, output = build_block(self.state, self.now_ms, system, txs, self.params, signers)
        included = set(block.transactions)
        validator_signers = [s for t, s in zip(txs, signers, strict=True) if t in included]
        checked = apply_block(self.validator, block, self.params, validator_signers)
        if checked.header != output.header:
            self.violations.append(f"block {block.header.height}: validator header differs")
        if output.rejected:
            self.violations.append(
                f"block {block.header.height}: builder rejected {len(output.rejected)} "
                f"transactions (first code {output.rejected[0][1]})"
            )
        self.records.append(BlockRecord(block, output))
        row = self._row(output, label)
        row.invariants_ok = self.check_invariants(output)
        self.rows.append(row)
        if self.on_block is not None:
            self.on_block(row)
        return output

    def idle(self, blocks: int, label: str = "") -> None:
        for _ in range(blocks):
            self.block((), label)

    def _row(self, output: BlockOutput, label: str) -> BlockRow:
        state = self.state
        ids = markets.get_market_ids(state)
        row = BlockRow(
            output.header.height,
            label,
            {m: oracle.get_mark_price(state, m) or 0 for m in ids},
            {m: oracle.get_index_price(state, m) or 0 for m in ids},
        )
        for event in output.block_events.risk:
            if isinstance(event, AccountLiquidated):
                row.liquidated_accounts += 1
            elif isinstance(event, PositionLiquidated):
                qptl = self.markets[event.market_id].quote_per_tick_lot
                row.liquidated_notional_quote += event.slice_lots * event.mark_ticks * qptl
                row.book_value_quote += event.book_value_quote
                row.backstop_value_quote += event.backstop_value_quote
                row.adl_value_quote += event.adl_value_quote
            elif isinstance(event, Deleveraged):
                row.adl_count += 1
        row.fund_equity_quote = self.get_equity(FUND)
        row.bad_debt_quote = liquidation.get_bad_debt(state)
        row.failed_receipts = sum(1 for r in output.receipts if r.status)
        return row

    # ------------------------------------------------------------------ reads

    def get_risk(self, account: bytes) -> margin.AccountRisk:
        """The account's (cross-margin) figures, as the API shows them."""
        return get_account_risk(self.state, account)

    def get_equity(self, account: bytes) -> int:
        return self.get_risk(account).equity_quote

    def position(self, name: str, market_id: int) -> int:
        return clearing.get_position_size(self.state, self.addr(name), market_id)

    def risk_events(self) -> Iterable[tuple[int, Event]]:
        for record in self.records:
            for event in record.output.block_events.risk:
                yield record.block.header.height, event

    def statuses(self, output: BlockOutput) -> list[int]:
        """Receipt statuses in the block's canonical order (account actions first)."""
        return [r.status for r in output.receipts]

    def status_of(self, output: BlockOutput, tx: bytes) -> int:
        """The receipt status of ``tx`` in ``output`` (-1 if it was not included)."""
        tx_hash = compute_transaction_hash(tx)
        return next((r.status for r in output.receipts if r.tx_hash == tx_hash), -1)

    # ------------------------------------------------------------------ checks

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def check_invariants(self, output: BlockOutput) -> bool:
        """The invariants every block must keep; a broken one is recorded in ``violations``.

        1. Conservation: ``sum(balances) + fee pool + funding in transit - recorded bad debt ==
           deposited - withdrawn`` (``collateral``), with a non-negative fee pool and bad debt.
        2. Positions net to zero in every market, and no stored position is flat.
        3. No flat account in a ``Deleveraged`` event: the counterparty held, before it was
           deleveraged, a position opposite to the liquidated one of at least the size closed
           (read from the counterparty's ``PositionChanged`` that precedes the event and the
           liquidated slice's ``PositionLiquidated`` that follows it).
        4. Recorded bad debt is shown: every change of it has a ``BadDebtChanged`` event.
        """
        state = self.state
        height = output.header.height
        problems: list[str] = []
        ledger = collateral.get_ledger(state)
        pool = clearing.get_fee_pool(state)
        debt = liquidation.get_bad_debt(state)
        left = collateral.sum_balances(state) + pool + funding.sum_in_transit(state) - debt
        right = ledger.deposited_quote - ledger.withdrawn_quote
        if left != right:
            problems.append(f"conservation: {left} != {right} (difference {left - right})")
        if pool < 0 or debt < 0:
            problems.append(f"fee pool {pool} or bad debt {debt} negative")
        net: dict[int, int] = dict.fromkeys(self.markets, 0)
        for account, positions in state.tables["positions"].data.items():
            for p in positions:
                if p.size_lots == 0:
                    problems.append(f"flat position stored for {account.hex()}")
                net[p.market_id] = net.get(p.market_id, 0) + p.size_lots
        for market_id, total in sorted(net.items()):
            if total:
                problems.append(f"market {market_id}: positions net to {total}, not zero")
        problems.extend(check_deleveraging(output.block_events.risk))
        previous = self.rows[-1].bad_debt_quote if self.rows else 0  # this block's row is not in
        recorded = sum(
            e.recorded_quote for e in output.block_events.risk if isinstance(e, BadDebtChanged)
        )
        if previous + recorded != debt:
            problems.append(f"bad debt moved {debt - previous} but the events show {recorded}")
        for problem in problems:
            self.violations.append(f"block {height}: {problem}")
        return not problems

    # ------------------------------------------------------------------ figures

    def figures(self) -> dict[str, int]:
        """The run's totals (quote units)."""
        return {
            "bad_debt_quote": liquidation.get_bad_debt(self.state),
            "insurance_fund_change_quote": self.get_equity(FUND) - self.fund_equity_start,
            "liquidated_notional_quote": sum(r.liquidated_notional_quote for r in self.rows),
            "book_value_quote": sum(r.book_value_quote for r in self.rows),
            "backstop_value_quote": sum(r.backstop_value_quote for r in self.rows),
            "adl_value_quote": sum(r.adl_value_quote for r in self.rows),
            "adl_count": sum(r.adl_count for r in self.rows),
            "peak_bad_debt_quote": max((r.bad_debt_quote for r in self.rows), default=0),
            "liquidations": sum(r.liquidated_accounts for r in self.rows),
            "blocks": len(self.rows),
        }


def check_deleveraging(risk_events: Sequence[Event]) -> list[str]:
    """Invariant 3 of :meth:`ScenarioChain.check_invariants`, from one block's risk events."""
    problems: list[str] = []
    for i, event in enumerate(risk_events):
        if not isinstance(event, Deleveraged):
            continue
        changed = risk_events[i - 1] if i else None
        if not (
            isinstance(changed, PositionChanged)
            and changed.account == event.counterparty
            and changed.market_id == event.market_id
        ):
            problems.append(f"Deleveraged of {event.counterparty.hex()} without its position")
            continue
        liquidated = next(
            (
                e
                for e in risk_events[i + 1 :]
                if isinstance(e, PositionLiquidated)
                and e.account == event.account
                and e.market_id == event.market_id
            ),
            None,
        )
        if liquidated is None:
            problems.append(f"Deleveraged of {event.account.hex()} without its slice")
            continue
        is_long = liquidated.size_before_lots > 0
        # The counterparty takes the liquidated side: it buys when the liquidated account was long.
        before = (
            changed.size_lots - event.size_lots if is_long else changed.size_lots + event.size_lots
        )
        opposite = before < 0 if is_long else before > 0
        if before == 0 or not opposite or abs(before) < event.size_lots:
            problems.append(
                f"flat or same-side account {event.counterparty.hex()} deleveraged "
                f"(position before {before}, closed {event.size_lots})"
            )
    return problems


@dataclass
class ScenarioRun:
    """The outcome of a scenario: its chain (blocks, rows, checks, violations) and notes."""

    name: str
    chain: ScenarioChain
    notes: list[str] = field(default_factory=list)

    @property
    def invariants_held(self) -> bool:
        return not self.chain.violations

    @property
    def passed(self) -> bool:
        return self.invariants_held and all(c.ok for c in self.chain.checks)

    def summary(self) -> dict[str, object]:
        figures = self.chain.figures()
        return {
            "scenario": self.name,
            "passed": self.passed,
            "invariants_held": self.invariants_held,
            **figures,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.chain.checks],
            "violations": self.chain.violations[:20],
            "notes": self.notes,
        }


def market_state(state: State, market_id: int) -> tuple[int, int]:
    """``(index, mark)`` of a market now (0 before its first price)."""
    return oracle.get_index_price(state, market_id) or 0, oracle.get_mark_price(
        state, market_id
    ) or 0

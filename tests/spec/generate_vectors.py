"""Generate the golden state-transition vectors of ``tests/vectors/stf/``.

Every vector is built by a scenario function below (deterministic keys from ``wallet_from_seed``,
fixed timestamps), so the files are a pure function of the code: a change that moves a root
must regenerate them in the same commit.

Usage (from the repository root)::

    PYTHONPATH=src:. python tests/spec/generate_vectors.py          # write every file
    PYTHONPATH=src:. python tests/spec/generate_vectors.py --check  # fail if any file differs

A scenario asserts what it means to show (statuses, rejection codes, order outcomes), so a
behaviour change fails here with a readable message instead of silently rewriting a vector.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: make ``strata`` and ``tests`` importable
    _ROOT = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(_ROOT / "src"), str(_ROOT)]

import msgspec

from strata.client.signing import AgentKey, agent_from_seed, wallet_from_seed
from strata.core.errors import ErrorCode, InvalidBlock
from strata.core.ordered_merkle import compute_ordered_root
from strata.modules import clearing, collateral, funding, liquidation, margin, oracle, triggers
from strata.modules.book import OrderReason, OrderStatus, TimeInForce
from strata.modules.clearing import FeeTier
from strata.modules.clearing.events import FillEvent, OrderUpdate, PositionChanged
from strata.modules.liquidation import (
    AccountLiquidated,
    BadDebtChanged,
    Deleveraged,
    PositionLiquidated,
)
from strata.modules.markets import MarginTier, Market, MarketStatus
from strata.stf.block import Block, BlockOutput
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis
from strata.stf.params import ChainParams
from strata.stf.transactions import (
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
    encode_transaction,
)
from strata.stf.transition import (
    apply_block,
    build_block,
    copy_state,
    get_account_risk,
    get_isolated_risk,
)
from tests.helpers.chain import BLOCK_MS, BTC, CHAIN_ID, ETH, GENESIS_MS, sign, sign_price
from tests.spec.vector_format import (
    VECTOR_DIR,
    Json,
    compute_block_expect,
    dump_vector,
    encode_genesis,
    iter_vector_paths,
    summarize_state,
)

GTC, IOC, FOK, ALO = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.POST_ONLY
OPEN, FILLED, CANCELED, REJECTED = (
    OrderStatus.OPEN,
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.REJECTED,
)
R = OrderReason
E = ErrorCode
BALANCE = 1_000_000_000_000
"""Each genesis account's quote: 1,000,000 USDC at 1e-6 USDC per unit."""


class Scenario:
    """A chain being scripted into a vector: its genesis, blocks and expectations."""

    def __init__(
        self,
        *,
        names: Sequence[str] = ("alice", "bob", "carol"),
        balances: dict[str, int] | None = None,
        markets: Sequence[Market] = (BTC, ETH),
        prices: Sequence[tuple[int, int]] = ((1, 500_000), (2, 30_000)),
        extra_oracles: int = 0,
        fund_quote: int = 0,
        **param_overrides: Any,
    ) -> None:
        self.wallets = {name: wallet_from_seed(name) for name in names}
        self.oracle = wallet_from_seed("oracle")
        self.oracles = [self.oracle] + [
            wallet_from_seed(f"oracle-{i}") for i in range(extra_oracles)
        ]
        self.params = ChainParams(
            chain_id=CHAIN_ID, oracle_keys=tuple(o.address for o in self.oracles), **param_overrides
        )
        amounts = balances or {}
        self.config = GenesisConfig(
            params=self.params,
            timestamp_ms=GENESIS_MS,
            markets=tuple(markets),
            allocations=tuple(
                Allocation(w.address, amounts.get(n, BALANCE))
                for n, w in self.wallets.items()
                if amounts.get(n, BALANCE) > 0
            )
            + ((Allocation(collateral.INSURANCE_FUND_ACCOUNT, fund_quote),) if fund_quote else ()),
            prices=tuple(InitialPrice(m, p) for m, p in prices),
        )
        self.state, _ = make_genesis(self.config)
        self.now_ms = GENESIS_MS
        self.nonce_clock = GENESIS_MS
        self.deposit_index = 0
        self.blocks: list[str] = []
        self.expect: list[Json] = []

    # --- inputs ---

    def addr(self, who: str) -> bytes:
        return self.wallets[who].address

    def nonce(self) -> int:
        self.nonce_clock += 1
        return self.nonce_clock

    def approve(self, who: str, agent: AgentKey, valid_until_ms: int) -> bytes:
        """``who`` approves ``agent``, with the agent's consent."""
        return self.tx(who, agent.approve_for(self.addr(who), valid_until_ms, self.params.chain_id))

    def tx(self, who: str, action: Action, nonce: int | None = None) -> bytes:
        """``action`` signed by ``who``'s wallet for ``who``'s account."""
        return sign(
            self.wallets[who], action, self.nonce() if nonce is None else nonce, self.params
        )

    def agent_tx(
        self, agent: AgentKey, account: str, action: Action, nonce: int | None = None
    ) -> bytes:
        """``action`` signed by ``agent`` for ``account``."""
        return sign(
            self.wallets[account],
            action,
            self.nonce() if nonce is None else nonce,
            self.params,
            agent=agent,
            account=self.addr(account),
        )

    def place(
        self,
        who: str,
        market_id: int,
        is_buy: bool,
        price_ticks: int,
        size_lots: int,
        tif: int = GTC,
        reduce_only: bool = False,
        client_id: int | None = None,
    ) -> bytes:
        return self.tx(
            who,
            PlaceOrder(market_id, is_buy, price_ticks, size_lots, tif, reduce_only, client_id),
        )

    def price(
        self, market_id: int, price_ticks: int, ts_offset_ms: int = 1, key: int = 0
    ) -> OraclePrice:
        """An oracle price observed ``ts_offset_ms`` after the previous block, by oracle ``key``."""
        return sign_price(
            self.oracles[key], market_id, price_ticks, self.now_ms + ts_offset_ms, self.params
        )

    def deposit(self, account: bytes, amount_quote: int) -> Deposit:
        item = Deposit(self.deposit_index, account, amount_quote)
        self.deposit_index += 1
        return item

    # --- blocks ---

    def block(
        self,
        txs: Sequence[bytes] = (),
        system: Sequence[SystemInput] = (),
        *,
        status: Sequence[int] | None = None,
        rejected: Sequence[int] | None = None,
        updates: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> BlockOutput:
        """Build the next block from candidates ``txs`` and record it with its expectation.

        ``status``, ``rejected`` (codes) and ``updates`` state what the scenario means to show;
        the generator fails if the chain does something else."""
        self.now_ms += BLOCK_MS
        block, output = build_block(self.state, self.now_ms, system, txs, self.params)
        expect = compute_block_expect(output)
        if status is not None:
            assert expect["receipt_status"] == [int(s) for s in status], expect["receipt_status"]
        if rejected is not None:
            got = [code for _, code in expect["rejected"]]
            assert got == [int(c) for c in rejected], got
        if updates is not None:
            want = [[[int(s), int(r)] for s, r in receipt] for receipt in updates]
            assert expect["order_updates"] == want, expect["order_updates"]
        if output.rejected:
            expect["candidates"] = [tx.hex() for tx in txs]
        self.blocks.append(msgspec.msgpack.encode(block).hex())
        self.expect.append(expect)
        return output

    def draft(
        self,
        txs: Sequence[bytes] = (),
        system: Sequence[SystemInput] = (),
        params: ChainParams | None = None,
        timestamp_ms: int | None = None,
    ) -> Block:
        """A valid next block built on a copy of the state (nothing recorded or advanced)."""
        ts = self.now_ms + BLOCK_MS if timestamp_ms is None else timestamp_ms
        block, _ = build_block(copy_state(self.state), ts, system, txs, params or self.params)
        return block

    def invalid(self, block: Block, code: ErrorCode) -> None:
        """Record ``block`` as a block that ``apply_block`` must reject with ``code``."""
        try:
            apply_block(copy_state(self.state), block, self.params)
        except InvalidBlock as error:
            assert error.code == code, f"{error} instead of {code.name}"
        else:
            raise AssertionError(f"block accepted, expected {code.name}")
        self.blocks.append(msgspec.msgpack.encode(block).hex())
        self.expect.append({"invalid_block_code": int(code)})

    def force_tx(self, bad_tx: bytes, valid_txs: Sequence[bytes] = ()) -> None:
        """A block the sequencer could not have built: ``bad_tx`` forced in after the valid
        transactions, with the transactions root resealed over the forced list."""
        block = self.draft(valid_txs)
        txs = (*block.transactions, bad_tx)
        header = msgspec.structs.replace(block.header, transactions_root=compute_ordered_root(txs))
        self.invalid(Block(header, block.system, txs), E.INVALID_TRANSACTION_IN_BLOCK)

    def to_vector(self, description: str) -> Json:
        return {
            "description": description,
            "genesis": encode_genesis(self.config),
            "blocks": self.blocks,
            "expect": self.expect,
            "post": summarize_state(self.state),
        }


def reheader(block: Block, **fields: Any) -> Block:
    """``block`` with some header fields replaced (nothing else resealed)."""
    return Block(msgspec.structs.replace(block.header, **fields), block.system, block.transactions)


SCENARIOS: dict[str, Callable[[], Scenario]] = {}


def vector(name: str) -> Callable[[Callable[[], Scenario]], Callable[[], Scenario]]:
    def register(fn: Callable[[], Scenario]) -> Callable[[], Scenario]:
        assert name not in SCENARIOS, name
        SCENARIOS[name] = fn
        return fn

    return register


def two_sided(s: Scenario) -> None:
    """Block 1: alice rests a sell of 10 BTC lots at 500_100 (order 1), bob a buy of 10 at
    499_900 (order 2)."""
    s.block(
        [s.place("alice", 1, False, 500_100, 10), s.place("bob", 1, True, 499_900, 10)],
        status=[0, 0],
    )


def bob_long_5(s: Scenario) -> None:
    """Block 1: alice sells 5 BTC lots to bob at 500_000 (alice short 5, bob long 5)."""
    s.block(
        [s.place("alice", 1, False, 500_000, 5), s.place("bob", 1, True, 500_000, 5)],
        status=[0, 0],
    )


# =============================================================================================
# Orders: each time in force, reduce-only, client ids, self-trade, limits
# =============================================================================================


@vector("place_gtc_rests_alice_sell_10_at_500100")
def _() -> Scenario:
    """A GTC sell with nothing to cross rests in the book (order 1, status OPEN)."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 10)], status=[0], updates=[[(OPEN, R.NONE)]])
    return s


@vector("place_gtc_bob_buy_fills_alice_resting_sell_10_at_500100")
def _() -> Scenario:
    """A GTC buy crossing a resting sell of the same size fills both at the maker's price;
    default fees (maker 100 ppm, taker 400 ppm) go to the fee pool."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 10)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_200, 10)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (FILLED, R.FILLED)]],
    )
    return s


@vector("place_gtc_partial_fill_rests_remainder_6_of_10")
def _() -> Scenario:
    """A GTC buy of 10 against a resting sell of 4 fills 4 and rests 6 at its limit."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 4)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_200, 10)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (OPEN, R.NONE)]],
    )
    return s


@vector("place_ioc_partial_fill_remainder_canceled")
def _() -> Scenario:
    """An IOC buy of 10 against a resting sell of 4 fills 4; the remainder is canceled
    (IOC_REMAINDER) and nothing rests."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 4)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_100, 10, IOC)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (CANCELED, R.IOC_REMAINDER)]],
    )
    return s


@vector("place_ioc_without_cross_canceled_ioc_remainder")
def _() -> Scenario:
    """An IOC with nothing to cross is canceled whole (IOC_REMAINDER); its reservation is
    released."""
    s = Scenario()
    s.block(
        [s.place("bob", 1, True, 499_000, 10, IOC)],
        status=[0],
        updates=[[(CANCELED, R.IOC_REMAINDER)]],
    )
    return s


@vector("market_buy_ioc_at_worst_price_sweeps_three_levels")
def _() -> Scenario:
    """A market buy (IOC at the worst accepted price 550_000) takes three ask levels in price
    order; gas counts 3 fills and 3 levels."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 2),
            s.place("alice", 1, False, 500_200, 3),
            s.place("carol", 1, False, 500_300, 5),
        ],
        status=[0, 0, 0],
    )
    s.block(
        [s.place("bob", 1, True, 550_000, 10, IOC)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (FILLED, R.FILLED), (FILLED, R.FILLED), (FILLED, R.FILLED)]],
    )
    return s


@vector("market_sell_ioc_at_price_1_takes_best_bid_then_cancels_rest")
def _() -> Scenario:
    """A market sell (IOC at 1 tick) takes both bids, best first, and cancels the rest."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, True, 499_900, 3), s.place("carol", 1, True, 499_800, 2)],
        status=[0, 0],
    )
    s.block(
        [s.place("bob", 1, False, 1, 8, IOC)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (FILLED, R.FILLED), (CANCELED, R.IOC_REMAINDER)]],
    )
    return s


@vector("place_fok_fills_whole_across_two_makers")
def _() -> Scenario:
    """An FOK buy of 7 that two resting sells (3 + 5) can fill completely fills whole."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, False, 500_100, 3), s.place("carol", 1, False, 500_200, 5)],
        status=[0, 0],
    )
    s.block(
        [s.place("bob", 1, True, 500_200, 7, FOK)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (OPEN, R.NONE), (FILLED, R.FILLED)]],
    )
    return s


@vector("place_fok_not_fillable_rejected_book_unchanged")
def _() -> Scenario:
    """An FOK buy of 10 against 4 lots available is rejected (FOK_NOT_FILLABLE) and the book
    is unchanged."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 4)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_100, 10, FOK)],
        status=[0],
        updates=[[(REJECTED, R.FOK_NOT_FILLABLE)]],
    )
    return s


@vector("place_post_only_rests_below_best_ask")
def _() -> Scenario:
    """A post-only buy below the best ask rests."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 4)], status=[0])
    s.block([s.place("bob", 1, True, 500_000, 4, ALO)], status=[0], updates=[[(OPEN, R.NONE)]])
    return s


@vector("place_post_only_would_take_rejected")
def _() -> Scenario:
    """A post-only buy at the best ask would take liquidity: rejected (POST_ONLY_WOULD_TAKE)."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 4)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_100, 4, ALO)],
        status=[0],
        updates=[[(REJECTED, R.POST_ONLY_WOULD_TAKE)]],
    )
    return s


@vector("self_trade_cancels_own_maker_then_fills_bob_and_rests")
def _() -> Scenario:
    """alice's buy meets her own resting sell first: that maker is canceled (SELF_TRADE), the
    buy fills bob's sell and rests the rest."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, False, 500_100, 5), s.place("bob", 1, False, 500_200, 3)],
        status=[0, 0],
    )
    s.block(
        [s.place("alice", 1, True, 500_200, 10)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (CANCELED, R.SELF_TRADE), (OPEN, R.NONE)]],
    )
    return s


@vector("reduce_only_without_position_rejected")
def _() -> Scenario:
    """A reduce-only sell from an account with no position is rejected (REDUCE_ONLY)."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, False, 500_100, 5, GTC, True)],
        status=[0],
        updates=[[(REJECTED, R.REDUCE_ONLY)]],
    )
    return s


@vector("reduce_only_sell_8_capped_to_long_5_and_closes")
def _() -> Scenario:
    """bob is long 5; a reduce-only IOC sell of 8 is cut to 5, fills against carol's bid and
    closes the position (no reservation taken)."""
    s = Scenario()
    bob_long_5(s)
    s.block([s.place("carol", 1, True, 499_000, 20)], status=[0])
    s.block(
        [s.place("bob", 1, False, 499_000, 8, IOC, True)],
        status=[0],
        updates=[[(OPEN, R.NONE), (FILLED, R.FILLED)]],
    )
    return s


@vector("reduce_only_buy_that_would_grow_long_rejected")
def _() -> Scenario:
    """bob is long 5: a reduce-only buy would increase the position and is rejected."""
    s = Scenario()
    bob_long_5(s)
    s.block(
        [s.place("bob", 1, True, 499_000, 2, GTC, True)],
        status=[0],
        updates=[[(REJECTED, R.REDUCE_ONLY)]],
    )
    return s


@vector("duplicate_client_id_rejected_while_first_order_lives")
def _() -> Scenario:
    """A second order with a client id that alice's resting order already uses fails at
    admission (execution failure DUPLICATE_CLIENT_ID, 3022): a resubmission is idempotent; the
    first order is untouched."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 5, client_id=7)], status=[0])
    s.block(
        [s.place("alice", 1, False, 500_300, 5, client_id=7)],
        status=[ErrorCode.DUPLICATE_CLIENT_ID],
        updates=[[]],
    )
    return s


TINY = Market(
    market_id=3,
    symbol="TINY-PERP",
    quote_per_tick_lot=1,
    min_size_lots=1,
    max_size_lots=1_000,
    max_price_ticks=1_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=2,
)


@vector("too_many_open_orders_third_gtc_rejected_ioc_still_allowed")
def _() -> Scenario:
    """In a market allowing 2 open orders per account, alice's third GTC is rejected
    (TOO_MANY_OPEN_ORDERS); an IOC is not limited and fills bob's ask."""
    s = Scenario(markets=(BTC, TINY), prices=((1, 500_000), (3, 1_000)))
    s.block(
        [
            s.place("alice", 3, True, 900, 1),
            s.place("alice", 3, True, 901, 1),
            s.place("bob", 3, False, 1_100, 5),
        ],
        status=[0, 0, 0],
    )
    s.block(
        [s.place("alice", 3, True, 902, 1), s.place("alice", 3, True, 1_100, 1, IOC)],
        status=[0, 0],
        updates=[[(REJECTED, R.TOO_MANY_OPEN_ORDERS)], [(OPEN, R.NONE), (FILLED, R.FILLED)]],
    )
    return s


@vector("reduce_only_resting_maker_canceled_once_position_closed")
def _() -> Scenario:
    """bob, long 5, rests a reduce-only sell of 5, then closes the long with another sell.
    When carol's buy reaches the reduce-only maker it is canceled (REDUCE_ONLY) unfilled."""
    s = Scenario()
    bob_long_5(s)
    s.block([s.place("bob", 1, False, 500_500, 5, GTC, True)], status=[0])
    s.block([s.place("carol", 1, True, 499_000, 5), s.place("bob", 1, False, 499_000, 5, IOC)])
    s.block(
        [s.place("carol", 1, True, 500_500, 5, IOC)],
        status=[0],
        updates=[[(CANCELED, R.REDUCE_ONLY), (CANCELED, R.IOC_REMAINDER)]],
    )
    return s


@vector("place_fok_not_fillable_when_own_orders_excluded")
def _() -> Scenario:
    """FOK availability skips the owner's own makers: alice's FOK buy of 5 sees only bob's 3
    lots and is rejected (FOK_NOT_FILLABLE) without canceling her own ask."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, False, 500_100, 3), s.place("bob", 1, False, 500_200, 3)],
        status=[0, 0],
    )
    s.block(
        [s.place("alice", 1, True, 500_200, 5, FOK)],
        status=[0],
        updates=[[(REJECTED, R.FOK_NOT_FILLABLE)]],
    )
    return s


@vector("duplicate_client_id_in_same_block_second_rejected")
def _() -> Scenario:
    """Two orders of alice with client id 3 in one block: the first rests, the second fails at
    admission (DUPLICATE_CLIENT_ID, 3022)."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 1, client_id=3),
            s.place("alice", 1, False, 500_200, 1, client_id=3),
        ],
        status=[0, ErrorCode.DUPLICATE_CLIENT_ID],
        updates=[[(OPEN, R.NONE)], []],
    )
    return s


@vector("client_id_is_unique_per_account_across_markets")
def _() -> Scenario:
    """Client ids are unique per account, not per market: alice's client id 5 rests in BTC, so
    an ETH order with client id 5 fails (DUPLICATE_CLIENT_ID), in a later block and within a bulk
    in the same block; bob may use 5 freely."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 1, client_id=5)], status=[0])
    s.block(
        [
            s.place("alice", 2, True, 29_000, 10, client_id=5),
            s.place("bob", 2, True, 29_000, 10, client_id=5),
        ],
        status=[ErrorCode.DUPLICATE_CLIENT_ID, 0],
        updates=[[], [(OPEN, R.NONE)]],
    )
    s.block(
        [
            s.tx(
                "carol",
                BulkPlace(
                    (
                        PlaceOrder(1, True, 499_000, 1, 3, False, 9),
                        PlaceOrder(2, True, 29_000, 10, 3, False, 9),
                    )
                ),
            )
        ],
        status=[0],
        updates=[[(REJECTED, R.DUPLICATE_CLIENT_ID), (OPEN, R.NONE)]],
    )
    return s


# =============================================================================================
# Cancels and modifies
# =============================================================================================


@vector("cancel_order_by_id_releases_reservation")
def _() -> Scenario:
    """alice cancels her order 1 by id: CANCELED (CANCELED_BY_USER), reservation released."""
    s = Scenario()
    two_sided(s)
    s.block(
        [s.tx("alice", CancelOrder(1, order_id=1))],
        status=[0],
        updates=[[(CANCELED, R.CANCELED_BY_USER)]],
    )
    return s


@vector("cancel_order_by_client_id_42")
def _() -> Scenario:
    """alice cancels by client id 42; her other order stays."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 5, client_id=42),
            s.place("alice", 1, False, 500_200, 5, client_id=43),
        ],
        status=[0, 0],
    )
    s.block(
        [s.tx("alice", CancelOrder(1, client_id=42))],
        status=[0],
        updates=[[(CANCELED, R.CANCELED_BY_USER)]],
    )
    return s


@vector("cancel_all_btc_keeps_eth_orders")
def _() -> Scenario:
    """CancelAll(market 1) cancels alice's two BTC orders (CANCELED_ALL) and keeps her ETH
    order and bob's BTC order."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 5),
            s.place("alice", 1, True, 499_000, 5),
            s.place("alice", 2, False, 30_100, 50),
            s.place("bob", 1, False, 500_300, 5),
        ],
        status=[0, 0, 0, 0],
    )
    s.block(
        [s.tx("alice", CancelAll(1))],
        status=[0],
        updates=[[(CANCELED, R.CANCELED_ALL), (CANCELED, R.CANCELED_ALL)]],
    )
    return s


@vector("cancel_all_every_market")
def _() -> Scenario:
    """CancelAll() cancels alice's orders in every market; bob's stay."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 5),
            s.place("alice", 2, False, 30_100, 50),
            s.place("alice", 2, True, 29_900, 50),
            s.place("bob", 2, False, 30_300, 50),
        ],
        status=[0, 0, 0, 0],
    )
    s.block(
        [s.tx("alice", CancelAll(None))],
        status=[0],
        updates=[[(CANCELED, R.CANCELED_ALL)] * 3],
    )
    return s


@vector("cancel_all_with_no_orders_succeeds_empty")
def _() -> Scenario:
    """CancelAll with nothing open is included with status 0 and no order events."""
    s = Scenario()
    s.block([s.tx("carol", CancelAll(None))], status=[0], updates=[[]])
    return s


@vector("modify_order_by_id_replaced_at_new_price")
def _() -> Scenario:
    """ModifyOrder by id cancels order 1 (REPLACED) and rests the replacement at 500_050 with
    a new id."""
    s = Scenario()
    two_sided(s)
    s.block(
        [s.tx("alice", ModifyOrder(1, 1, None, False, 500_050, 8))],
        status=[0],
        updates=[[(CANCELED, R.REPLACED), (OPEN, R.NONE)]],
    )
    return s


@vector("modify_order_by_client_id_keeps_client_id_and_crosses")
def _() -> Scenario:
    """ModifyOrder by client id 9 moves alice's sell across bob's bid: the replacement keeps
    client id 9 and fills."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_100, 10, client_id=9),
            s.place("bob", 1, True, 499_900, 10),
        ],
        status=[0, 0],
    )
    s.block(
        [s.tx("alice", ModifyOrder(1, None, 9, False, 499_900, 10))],
        status=[0],
        updates=[[(CANCELED, R.REPLACED), (FILLED, R.FILLED), (FILLED, R.FILLED)]],
    )
    # The client id is free again once the replacement filled.
    s.block([s.place("alice", 1, False, 500_500, 1, client_id=9)], status=[0])
    return s


@vector("modify_order_gone_in_same_block_places_nothing")
def _() -> Scenario:
    """In one block alice cancels order 1 and then modifies it: the cancel runs first, so the
    modify finds no order (UNKNOWN_ORDER) and places nothing."""
    s = Scenario()
    two_sided(s)
    s.block(
        [
            s.tx("alice", ModifyOrder(1, 1, None, False, 500_050, 8)),
            s.tx("alice", CancelOrder(1, order_id=1)),
        ],
        status=[0, 0],
        updates=[[(CANCELED, R.CANCELED_BY_USER)], [(REJECTED, R.UNKNOWN_ORDER)] * 2],
    )
    return s


@vector("bulk_place_three_orders_one_over_margin_rejected")
def _() -> Scenario:
    """carol (20,000 USDC) bulk-places three BTC sells; the middle one needs more margin than is
    left and is rejected (INSUFFICIENT_MARGIN) while the other two rest."""
    s = Scenario(balances={"carol": 20_000_000_000})
    s.block(
        [
            s.tx(
                "carol",
                BulkPlace(
                    (
                        PlaceOrder(1, False, 500_100, 10),
                        PlaceOrder(1, False, 500_200, 100_000),
                        PlaceOrder(1, False, 500_300, 10, client_id=5),
                    )
                ),
            )
        ],
        status=[0],
        updates=[[(REJECTED, R.INSUFFICIENT_MARGIN), (OPEN, R.NONE), (OPEN, R.NONE)]],
    )
    return s


@vector("bulk_place_post_only_is_maker_class")
def _() -> Scenario:
    """A BulkPlace of post-only orders runs in the maker class: bob's taker, first in the
    sequencer's order, still fills against it in the same block."""
    s = Scenario()
    s.block(
        [
            s.place("bob", 1, True, 500_100, 4, IOC),
            s.tx(
                "alice",
                BulkPlace(
                    (PlaceOrder(1, False, 500_100, 2, ALO), PlaceOrder(1, False, 500_100, 2, ALO))
                ),
            ),
        ],
        status=[0, 0],
        updates=[
            [(OPEN, R.NONE), (OPEN, R.NONE)],
            [(FILLED, R.FILLED), (FILLED, R.FILLED), (FILLED, R.FILLED)],
        ],
    )
    return s


@vector("bulk_cancel_one_known_one_unknown_order")
def _() -> Scenario:
    """BulkCancel of order 1 and of unknown order 99: the first is canceled, the second is
    reported REJECTED (UNKNOWN_ORDER); the transaction succeeds."""
    s = Scenario()
    two_sided(s)
    s.block(
        [s.tx("alice", BulkCancel((CancelOrder(1, order_id=1), CancelOrder(1, order_id=99))))],
        status=[0],
        updates=[[(CANCELED, R.CANCELED_BY_USER), (REJECTED, R.UNKNOWN_ORDER)]],
    )
    return s


@vector("bulk_cancel_of_another_owners_order_is_unknown_order")
def _() -> Scenario:
    """bob's BulkCancel naming alice's order 1 does not touch it (UNKNOWN_ORDER)."""
    s = Scenario()
    two_sided(s)
    s.block(
        [s.tx("bob", BulkCancel((CancelOrder(1, order_id=1),)))],
        status=[0],
        updates=[[(REJECTED, R.UNKNOWN_ORDER)]],
    )
    return s


@vector("bulk_modify_one_known_one_unknown_order")
def _() -> Scenario:
    """BulkModify of order 1 and of unknown order 99: the first is replaced; the second places
    nothing (UNKNOWN_ORDER for its cancel and its replacement)."""
    s = Scenario()
    two_sided(s)
    s.block(
        [
            s.tx(
                "alice",
                BulkModify(
                    (
                        ModifyOrder(1, 1, None, False, 500_200, 10),
                        ModifyOrder(1, 99, None, False, 500_300, 10),
                    )
                ),
            )
        ],
        status=[0],
        updates=[
            [
                (CANCELED, R.REPLACED),
                (REJECTED, R.UNKNOWN_ORDER),
                (OPEN, R.NONE),
                (REJECTED, R.UNKNOWN_ORDER),
            ]
        ],
    )
    return s


@vector("bulk_modify_over_margin_rejected_old_order_kept")
def _() -> Scenario:
    """carol (20,000 USDC) bulk-modifies her order to a size the margin does not cover: the
    modify is rejected (INSUFFICIENT_MARGIN) and her old order stays."""
    s = Scenario(balances={"carol": 20_000_000_000})
    s.block([s.place("carol", 1, False, 500_100, 10)], status=[0])
    s.block(
        [s.tx("carol", BulkModify((ModifyOrder(1, 1, None, False, 500_100, 100_000),)))],
        status=[0],
        updates=[[(REJECTED, R.INSUFFICIENT_MARGIN)]],
    )
    return s


# =============================================================================================
# Canonical in-block order
# =============================================================================================


@vector("canonical_order_post_only_maker_runs_before_earlier_taker")
def _() -> Scenario:
    """bob's IOC buy comes first in the sequencer's order, alice's post-only sell second; the
    canonical order runs the post-only first, so bob fills against it."""
    s = Scenario()
    s.block(
        [s.place("bob", 1, True, 500_100, 5, IOC), s.place("alice", 1, False, 500_100, 5, ALO)],
        status=[0, 0],
        updates=[[(OPEN, R.NONE)], [(FILLED, R.FILLED), (FILLED, R.FILLED)]],
    )
    return s


@vector("canonical_order_cancel_runs_before_earlier_taker")
def _() -> Scenario:
    """bob's IOC buy comes first, alice's cancel of the ask it targets second; cancels run
    before takers, so bob's IOC finds nothing (IOC_REMAINDER)."""
    s = Scenario()
    two_sided(s)
    s.block(
        [s.place("bob", 1, True, 500_100, 5, IOC), s.tx("alice", CancelOrder(1, order_id=1))],
        status=[0, 0],
        updates=[[(CANCELED, R.CANCELED_BY_USER)], [(CANCELED, R.IOC_REMAINDER)]],
    )
    return s


@vector("same_block_takers_keep_sequencer_order_price_time")
def _() -> Scenario:
    """Two GTC buys in one block match in sequencer order: bob's takes the only ask, carol's
    rests."""
    s = Scenario()
    s.block([s.place("alice", 1, False, 500_100, 5)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_100, 5), s.place("carol", 1, True, 500_200, 5)],
        status=[0, 0],
        updates=[[(FILLED, R.FILLED), (FILLED, R.FILLED)], [(OPEN, R.NONE)]],
    )
    return s


# =============================================================================================
# Positions and PnL
# =============================================================================================


@vector("position_closed_at_profit_realizes_pnl")
def _() -> Scenario:
    """bob buys 5 at 500_000, then sells 5 at 501_000 to carol: his position closes and he
    realizes 5 * 1_000 * 10 quote minus fees."""
    s = Scenario()
    bob_long_5(s)
    s.block([s.place("carol", 1, True, 501_000, 5)], status=[0])
    s.block([s.place("bob", 1, False, 501_000, 5)], status=[0])
    return s


@vector("position_flip_long_5_to_short_3")
def _() -> Scenario:
    """bob, long 5, sells 8: the fill closes the long and opens a short of 3 at the fill price."""
    s = Scenario()
    bob_long_5(s)
    s.block([s.place("carol", 1, True, 499_500, 8)], status=[0])
    s.block([s.place("bob", 1, False, 499_500, 8)], status=[0])
    return s


@vector("two_markets_positions_btc_and_eth")
def _() -> Scenario:
    """alice and bob trade in both markets in one block; positions are kept per market."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 1, False, 500_000, 3),
            s.place("alice", 2, True, 30_000, 100),
            s.place("bob", 1, True, 500_000, 3),
            s.place("bob", 2, False, 30_000, 100),
        ],
        status=[0, 0, 0, 0],
    )
    return s


# =============================================================================================
# Agents
# =============================================================================================

AGENT = agent_from_seed("alice-bot")
AGENT_2 = agent_from_seed("alice-bot-2")


def approve(s: Scenario, until_ms: int = GENESIS_MS + 3_600_000) -> None:
    s.block([s.approve("alice", AGENT, until_ms)], status=[0])


@vector("reject_approve_agent_without_the_agents_consent")
def _() -> Scenario:
    """alice tries to approve a key with a consent signed by another key (or for another
    account): left out (BAD_AGENT_CONSENT), so no one can squat a key they do not hold."""
    s = Scenario()
    forged = AGENT_2.approve_for(s.addr("alice"), GENESIS_MS + 10**6, s.params.chain_id)
    squat = ApproveAgent(AGENT.public_key, GENESIS_MS + 10**6, forged.agent_signature)
    for_bob = AGENT.approve_for(s.addr("bob"), GENESIS_MS + 10**6, s.params.chain_id)
    s.block(
        [s.tx("alice", squat), s.tx("alice", for_bob)],
        status=[],
        rejected=[E.BAD_AGENT_CONSENT, E.BAD_AGENT_CONSENT],
    )
    s.block([s.approve("alice", AGENT, GENESIS_MS + 10**6)], status=[0])
    return s


@vector("agent_approved_then_places_order_for_alice")
def _() -> Scenario:
    """alice approves an agent key; the agent signs a PlaceOrder for alice's account."""
    s = Scenario()
    approve(s)
    s.block(
        [s.agent_tx(AGENT, "alice", PlaceOrder(1, False, 500_100, 5))],
        status=[0],
        updates=[[(OPEN, R.NONE)]],
    )
    return s


@vector("agent_cancels_and_modifies_for_alice")
def _() -> Scenario:
    """An approved agent cancels one of alice's orders and modifies another."""
    s = Scenario()
    approve(s)
    s.block(
        [s.place("alice", 1, False, 500_100, 5), s.place("alice", 1, False, 500_200, 5)],
        status=[0, 0],
    )
    s.block(
        [
            s.agent_tx(AGENT, "alice", CancelOrder(1, order_id=1)),
            s.agent_tx(AGENT, "alice", ModifyOrder(1, 2, None, False, 500_300, 5)),
        ],
        status=[0, 0],
    )
    return s


@vector("reject_agent_revoked_unknown_agent")
def _() -> Scenario:
    """After RevokeAgent, the key's transactions are left out (UNKNOWN_AGENT)."""
    s = Scenario()
    approve(s)
    s.block([s.tx("alice", RevokeAgent(AGENT.public_key))], status=[0])
    s.block(
        [s.agent_tx(AGENT, "alice", PlaceOrder(1, False, 500_100, 5))],
        status=[],
        rejected=[E.UNKNOWN_AGENT],
    )
    return s


@vector("reject_agent_expired_unknown_agent")
def _() -> Scenario:
    """An agent approved until a time at or before the block's timestamp is unknown."""
    s = Scenario()
    approve(s, until_ms=GENESIS_MS + 2 * BLOCK_MS)
    s.block(
        [s.agent_tx(AGENT, "alice", PlaceOrder(1, False, 500_100, 5))],
        status=[],
        rejected=[E.UNKNOWN_AGENT],
    )
    return s


@vector("reject_agent_never_approved_unknown_agent")
def _() -> Scenario:
    """An agent key alice never approved cannot act for her (UNKNOWN_AGENT); a forced block
    with it is invalid."""
    s = Scenario()
    bad = s.agent_tx(AGENT, "alice", PlaceOrder(1, False, 500_100, 5))
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.UNKNOWN_AGENT])
    return s


@vector("reject_agent_for_other_account_unknown_agent")
def _() -> Scenario:
    """alice's agent signing for bob's account is unknown for bob."""
    s = Scenario()
    approve(s)
    s.block(
        [s.agent_tx(AGENT, "bob", PlaceOrder(1, False, 500_100, 5))],
        status=[],
        rejected=[E.UNKNOWN_AGENT],
    )
    return s


@vector("reject_agent_transfer_agent_is_wallet_only")
def _() -> Scenario:
    """An agent may trade but not move funds: its Transfer is left out (AGENT_IS_WALLET_ONLY);
    a forced block with it is invalid."""
    s = Scenario()
    approve(s)
    bad = s.agent_tx(AGENT, "alice", Transfer(wallet_from_seed("bob").address, 1_000))
    s.force_tx(bad)
    s.block(
        [bad, s.agent_tx(AGENT, "alice", Withdraw(1_000, s.addr("alice")))],
        status=[],
        rejected=[E.AGENT_IS_WALLET_ONLY, E.AGENT_IS_WALLET_ONLY],
    )
    return s


@vector("reject_agent_approves_agent_wallet_only")
def _() -> Scenario:
    """An agent may not approve or revoke agents (AGENT_IS_WALLET_ONLY)."""
    s = Scenario()
    approve(s)
    s.block(
        [
            s.agent_tx(
                AGENT,
                "alice",
                AGENT_2.approve_for(s.addr("alice"), GENESIS_MS + 10**6, s.params.chain_id),
            ),
            s.agent_tx(AGENT, "alice", RevokeAgent(AGENT.public_key)),
        ],
        status=[],
        rejected=[E.AGENT_IS_WALLET_ONLY, E.AGENT_IS_WALLET_ONLY],
    )
    return s


@vector("reject_agent_bad_signature")
def _() -> Scenario:
    """An agent transaction whose Ed25519 signature is by another key is left out
    (BAD_SIGNATURE)."""
    s = Scenario()
    approve(s)
    nonce = s.nonce()
    action = PlaceOrder(1, False, 500_100, 5)
    forged = sign(
        s.wallets["alice"], action, nonce, s.params, agent=AGENT_2, account=s.addr("alice")
    )
    tx = msgspec.msgpack.decode(forged, type=SignedTransaction)
    bad = encode_transaction(msgspec.structs.replace(tx, agent=AGENT.public_key))
    s.block([bad], status=[], rejected=[E.BAD_SIGNATURE])
    return s


@vector("approve_agent_renew_extends_validity")
def _() -> Scenario:
    """Approving the same key again renews it (no second slot used); the agent trades after
    the first expiry."""
    s = Scenario(max_agents_per_account=1)
    approve(s, until_ms=GENESIS_MS + 3 * BLOCK_MS)
    s.block(
        [s.approve("alice", AGENT, GENESIS_MS + 10**6)],
        status=[0],
    )
    s.block([], status=[])
    s.block([s.agent_tx(AGENT, "alice", PlaceOrder(1, True, 499_000, 1))], status=[0])
    return s


@vector("fail_revoke_unknown_agent_agent_not_found")
def _() -> Scenario:
    """Revoking a key that is not alice's agent fails in execution (AGENT_NOT_FOUND 3010)."""
    s = Scenario()
    s.block([s.tx("alice", RevokeAgent(AGENT.public_key))], status=[E.AGENT_NOT_FOUND])
    return s


@vector("fail_approve_second_agent_too_many_agents")
def _() -> Scenario:
    """With at most one agent per account, a second approval fails (TOO_MANY_AGENTS 3011)."""
    s = Scenario(max_agents_per_account=1)
    approve(s)
    s.block(
        [
            s.tx(
                "alice", AGENT_2.approve_for(s.addr("alice"), GENESIS_MS + 10**6, s.params.chain_id)
            )
        ],
        status=[E.TOO_MANY_AGENTS],
    )
    return s


@vector("fail_approve_agent_of_another_account")
def _() -> Scenario:
    """bob approving alice's agent key fails (AGENT_OF_ANOTHER_ACCOUNT 3012)."""
    s = Scenario()
    approve(s)
    s.block(
        [s.approve("bob", AGENT, GENESIS_MS + 10**6)],
        status=[E.AGENT_OF_ANOTHER_ACCOUNT],
    )
    return s


# =============================================================================================
# Transfers, withdrawals, deposits, oracle
# =============================================================================================


@vector("transfer_alice_to_bob_1000_usdc")
def _() -> Scenario:
    """alice transfers 1,000 USDC to bob: debited at admission, credited in settlement."""
    s = Scenario()
    s.block([s.tx("alice", Transfer(s.addr("bob"), 1_000_000_000))], status=[0], updates=[[]])
    return s


@vector("transfer_to_new_account_then_it_trades")
def _() -> Scenario:
    """alice funds dave, an account absent at genesis; dave then places an order."""
    s = Scenario(names=("alice", "bob", "dave"), balances={"dave": 0})
    s.block([s.tx("alice", Transfer(s.addr("dave"), 50_000_000_000))], status=[0])
    s.block([s.place("dave", 1, True, 499_000, 10)], status=[0], updates=[[(OPEN, R.NONE)]])
    return s


@vector("fail_transfer_credit_not_spendable_same_block")
def _() -> Scenario:
    """carol (1 USDC) receives 100 USDC and sends 50 USDC in the same block: credits land in
    settlement, so her transfer fails (INSUFFICIENT_FREE_COLLATERAL) and her nonce is used."""
    s = Scenario(balances={"carol": 1_000_000})
    s.block(
        [
            s.tx("alice", Transfer(s.addr("carol"), 100_000_000)),
            s.tx("carol", Transfer(s.addr("bob"), 50_000_000)),
        ],
        status=[0, E.INSUFFICIENT_FREE_COLLATERAL],
    )
    return s


@vector("fail_transfer_reserved_margin_insufficient_free_collateral")
def _() -> Scenario:
    """carol's open order reserves margin; a transfer of her whole balance fails
    (INSUFFICIENT_FREE_COLLATERAL 3001)."""
    s = Scenario(balances={"carol": 20_000_000_000})
    s.block([s.place("carol", 1, True, 499_000, 10)], status=[0])
    s.block(
        [s.tx("carol", Transfer(s.addr("bob"), 20_000_000_000))],
        status=[E.INSUFFICIENT_FREE_COLLATERAL],
    )
    return s


@vector("withdraw_100_usdc_commits_withdrawals_root")
def _() -> Scenario:
    """alice and bob withdraw; two withdrawal records (ids 0 and 1) enter the withdrawals root
    and the ledger's withdrawn total."""
    s = Scenario()
    s.block(
        [
            s.tx("alice", Withdraw(100_000_000, s.addr("alice"))),
            s.tx("bob", Withdraw(250_000_000, wallet_from_seed("bob-cold").address)),
        ],
        status=[0, 0],
    )
    return s


@vector("fail_withdraw_above_balance_insufficient_free_collateral")
def _() -> Scenario:
    """carol withdraws more than she has: INSUFFICIENT_FREE_COLLATERAL, no record, nonce
    kept."""
    s = Scenario(balances={"carol": 1_000_000})
    s.block(
        [s.tx("carol", Withdraw(2_000_000, s.addr("carol")))],
        status=[E.INSUFFICIENT_FREE_COLLATERAL],
    )
    return s


@vector("fail_withdraw_unrealized_profit_not_withdrawable")
def _() -> Scenario:
    """carol (50,000 USDC) buys 1,000 BTC lots at 500_000; the oracle moves to 600_000. Her
    unrealized profit (1,000 USDC) backs trading but cannot be withdrawn: 50,000 USDC is within
    her free collateral (~50,398) but not her withdrawable amount (~49,398); 49,000 is."""
    s = Scenario(balances={"carol": 50_000_000_000})
    s.block(
        [s.place("alice", 1, False, 500_000, 1_000), s.place("carol", 1, True, 500_000, 1_000)],
        status=[0, 0],
    )
    s.block([], [s.price(1, 600_000)])
    s.block(
        [s.tx("carol", Withdraw(50_000_000_000, s.addr("carol")))],
        status=[E.INSUFFICIENT_FREE_COLLATERAL],
    )
    s.block([s.tx("carol", Withdraw(49_000_000_000, s.addr("carol")))], status=[0])
    return s


@vector("deposits_two_in_inbox_order_credit_new_account")
def _() -> Scenario:
    """Two deposits (indexes 0 and 1) credit dave, new to the chain, who then trades."""
    s = Scenario(names=("alice", "dave"), balances={"dave": 0})
    dave = s.addr("dave")
    s.block([], [s.deposit(dave, 30_000_000_000), s.deposit(dave, 20_000_000_000)])
    s.block([s.place("dave", 1, True, 499_000, 10)], [s.deposit(s.addr("alice"), 5)], status=[0])
    return s


@vector("deposit_and_order_same_block_deposit_lands_first")
def _() -> Scenario:
    """Deposits run in the prologue, before admission: dave's order in the same block is
    covered by his deposit."""
    s = Scenario(names=("alice", "dave"), balances={"dave": 0})
    s.block(
        [s.place("dave", 1, True, 499_000, 10)],
        [s.deposit(s.addr("dave"), 30_000_000_000)],
        status=[0],
        updates=[[(OPEN, R.NONE)]],
    )
    return s


@vector("oracle_price_update_moves_mark_for_margin")
def _() -> Scenario:
    """carol (20,000 USDC) bids 45,000 BTC lots at 400_000. An order reserves margin at
    max(price, mark): at the genesis mark 500_000 it fails (INSUFFICIENT_MARGIN); once an oracle
    price of 400_000 lands in the prologue, the same order fits (the per-block clamp is widened
    to 25% so that the 20% move lands in one block)."""
    s = Scenario(balances={"carol": 20_000_000_000}, oracle_max_move_ppm=250_000)
    s.block(
        [s.place("carol", 1, True, 400_000, 45_000)],
        status=[E.INSUFFICIENT_MARGIN],
    )
    s.block([s.place("carol", 1, True, 400_000, 45_000)], [s.price(1, 400_000)], status=[0])
    return s


@vector("oracle_index_is_median_of_three_keys")
def _() -> Scenario:
    """Three oracle keys post 500_100, 499_000 and 900_000 (an outlier): the index is the median,
    500_100 (the clamp allows 25_000 from the genesis 500_000), and with an empty book the mark
    equals it. Next block keys 0 and 1 post 501_000 and 502_000 while key 2's 900_000 is still
    fresh (within 10 s): the median of (501_000, 502_000, 900_000) is 502_000."""
    s = Scenario(extra_oracles=2)
    s.block([], [s.price(1, 500_100), s.price(1, 499_000, key=1), s.price(1, 900_000, key=2)])
    assert (oracle.get_index_price(s.state, 1), oracle.get_mark_price(s.state, 1)) == (
        500_100,
        500_100,
    )
    s.block([], [s.price(1, 501_000), s.price(1, 502_000, key=1)])
    assert oracle.get_index_price(s.state, 1) == 502_000
    return s


@vector("oracle_clamp_bounds_index_move_per_block")
def _() -> Scenario:
    """The oracle posts 700_000 three blocks in a row from an index of 500_000: the index moves
    at most ceil(5% of the previous) per block: 525_000, 551_250, 578_813."""
    s = Scenario()
    for expected in (525_000, 551_250, 578_813):
        s.block([], [s.price(1, 700_000)])
        assert oracle.get_index_price(s.state, 1) == expected
    return s


@vector("oracle_stale_market_freezes_risk_increasing_order")
def _() -> Scenario:
    """Staleness is 1 s. One price at the first block, then nothing: six blocks (1,200 ms)
    later BTC-PERP is stale (OracleStale). alice's new bid fails with ORACLE_STALE; bob's
    reduce-only sell passes admission (rejected in matching as REDUCE_ONLY: he holds nothing);
    ETH-PERP, still on its genesis price, is not stale and takes orders."""
    s = Scenario(oracle_staleness_ms=1_000)
    s.block([], [s.price(1, 501_000)])
    for _ in range(5):
        s.block()
    assert oracle.is_stale(s.state, 1) and not oracle.is_stale(s.state, 2)
    s.block(
        [
            s.place("alice", 1, True, 500_000, 1),
            s.place("bob", 1, False, 500_000, 1, IOC, reduce_only=True),
            s.place("carol", 2, True, 30_000, 10),
        ],
        status=[E.ORACLE_STALE, 0, 0],
    )
    return s


@vector("oracle_recovery_clamped_against_frozen_index")
def _() -> Scenario:
    """After going stale at 501_000, a fresh price of 600_000 recovers the market (OracleFresh)
    with the index clamped against the frozen one: 501_000 + ceil(25_050) = 526_050; alice's
    bid is then accepted."""
    s = Scenario(oracle_staleness_ms=1_000)
    s.block([], [s.price(1, 501_000)])
    for _ in range(6):
        s.block()
    assert oracle.is_stale(s.state, 1)
    s.block([s.place("alice", 1, True, 500_000, 1)], [s.price(1, 600_000)], status=[0])
    assert oracle.get_index_price(s.state, 1) == 526_050 and not oracle.is_stale(s.state, 1)
    return s


@vector("oracle_mark_from_book_ema_and_last_trade")
def _() -> Scenario:
    """A book of 500_800 / 501_200 rests around an index of 500_000; then 1 lot trades at 501_200.
    The mark is median(index + EMA(mid - index), median(bid, ask, last), index), from the book at
    block start: with alpha 1/8 the EMA of a +1_000-tick basis is 125 ticks after one block,
    234.375 after two, so the marks are 500_125, then 500_234."""
    s = Scenario()
    s.block([s.place("alice", 1, True, 500_800, 2), s.place("bob", 1, False, 501_200, 2)])
    s.block([], [s.price(1, 500_000)])
    assert oracle.get_mark_price(s.state, 1) == 500_125
    s.block([s.place("carol", 1, True, 501_200, 1, IOC)], [s.price(1, 500_000)], status=[0])
    assert oracle.get_mark_price(s.state, 1) == 500_234
    s.block([], [s.price(1, 500_000)])
    return s


@vector("oracle_prices_two_markets_one_block")
def _() -> Scenario:
    """Oracle prices for BTC and ETH in one block's prologue, then a newer BTC price."""
    s = Scenario()
    s.block([], [s.price(1, 510_000), s.price(2, 31_000)])
    s.block([], [s.price(1, 505_000)])
    return s


# =============================================================================================
# Fees and gas
# =============================================================================================

REBATE_TIERS = (FeeTier(0, 100, 400), FeeTier(10_000_000, -50, 300))


@vector("fees_maker_rebate_tier_after_volume")
def _() -> Scenario:
    """Fee tiers: above 10 USDC of volume the maker gets a 50 ppm rebate and the taker pays
    300 ppm. Block 1 trades 3 lots (15 USDC each side) at tier 0; in block 3 alice's maker fill
    earns a rebate and bob pays 300 ppm."""
    s = Scenario(fee_tiers=REBATE_TIERS)
    s.block(
        [s.place("alice", 1, False, 500_000, 3), s.place("bob", 1, True, 500_000, 3)],
        status=[0, 0],
    )
    s.block([s.place("alice", 1, False, 500_100, 3)], status=[0])
    s.block(
        [s.place("bob", 1, True, 500_100, 3)],
        status=[0],
        updates=[[(FILLED, R.FILLED), (FILLED, R.FILLED)]],
    )
    return s


@vector("fees_rebate_tier_new_taker_pays_tier_0")
def _() -> Scenario:
    """The tier is per account: alice (rebate tier) makes, carol (no volume) takes at 400 ppm."""
    s = Scenario(fee_tiers=REBATE_TIERS)
    s.block(
        [s.place("alice", 1, False, 500_000, 3), s.place("bob", 1, True, 500_000, 3)],
        status=[0, 0],
    )
    s.block([s.place("alice", 1, False, 500_100, 3)], status=[0])
    s.block([s.place("carol", 1, True, 500_100, 3)], status=[0])
    return s


@vector("gas_price_2_charges_fee_per_transaction")
def _() -> Scenario:
    """With a gas price of 2 quote per gas, each transaction pays base gas * 2 into the fee pool
    (FeeCharged): a transfer 4,000 and an order 2,000."""
    s = Scenario(gas_price_quote=2)
    s.block(
        [s.tx("alice", Transfer(s.addr("bob"), 1_000_000)), s.place("bob", 1, True, 499_000, 1)],
        status=[0, 0],
    )
    return s


@vector("gas_price_2_taker_pays_matching_work")
def _() -> Scenario:
    """With gas price 2, a taker that fills two makers at two levels pays for 2 fills and 2
    levels of work on top of its base gas, in settlement."""
    s = Scenario(gas_price_quote=2)
    s.block(
        [s.place("alice", 1, False, 500_100, 1), s.place("carol", 1, False, 500_200, 1)],
        status=[0, 0],
    )
    s.block([s.place("bob", 1, True, 500_200, 2)], status=[0])
    return s


@vector("gas_price_2_failed_transaction_keeps_fee")
def _() -> Scenario:
    """With gas price 2, a withdrawal that fails (INSUFFICIENT_FREE_COLLATERAL) still pays its
    fee and uses its nonce."""
    s = Scenario(gas_price_quote=2, balances={"carol": 1_000_000})
    s.block(
        [s.tx("carol", Withdraw(999_999, s.addr("carol")))],
        status=[E.INSUFFICIENT_FREE_COLLATERAL],
    )
    return s


@vector("reject_insufficient_fee_balance")
def _() -> Scenario:
    """With gas price 2, dave (no balance) cannot pay the 2,000 fee of an order: left out
    (INSUFFICIENT_FEE_BALANCE); a forced block with it is invalid."""
    s = Scenario(names=("alice", "dave"), balances={"dave": 0}, gas_price_quote=2)
    bad = s.place("dave", 1, True, 499_000, 1)
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.INSUFFICIENT_FEE_BALANCE])
    return s


# =============================================================================================
# Invalid transactions (left out by the builder)
# =============================================================================================


@vector("reject_nonce_already_used")
def _() -> Scenario:
    """A second transaction with a nonce alice already used is left out (NONCE_ALREADY_USED),
    also within one block; a forced block with it is invalid."""
    s = Scenario()
    n = s.nonce()
    s.block(
        [
            s.tx("alice", PlaceOrder(1, False, 500_100, 1), nonce=n),
            s.tx("alice", PlaceOrder(1, False, 500_200, 1), nonce=n),
        ],
        status=[0],
        rejected=[E.NONCE_ALREADY_USED],
    )
    bad = s.tx("alice", PlaceOrder(1, False, 500_300, 1), nonce=n)
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.NONCE_ALREADY_USED])
    return s


@vector("reject_nonce_below_window")
def _() -> Scenario:
    """With a window of 2 nonces, a fresh nonce below the window's floor is left out
    (NONCE_BELOW_WINDOW); one above it is accepted."""
    s = Scenario(nonce_window=2)
    low = s.nonce()
    s.block([s.tx("alice", CancelAll(None)), s.tx("alice", CancelAll(None))], status=[0, 0])
    s.block(
        [s.tx("alice", CancelAll(None), nonce=low), s.tx("alice", CancelAll(None))],
        status=[0],
        rejected=[E.NONCE_BELOW_WINDOW],
    )
    return s


@vector("reject_nonce_out_of_time_bound_past_and_future")
def _() -> Scenario:
    """Nonces more than 2 days before or 1 day after the block time are left out
    (NONCE_OUT_OF_TIME_BOUND); a forced block with one is invalid."""
    s = Scenario()
    past = s.tx("alice", CancelAll(None), nonce=GENESIS_MS - 2 * 86_400_000)
    future = s.tx("alice", CancelAll(None), nonce=GENESIS_MS + 2 * 86_400_000)
    s.force_tx(future)
    s.block(
        [past, future], status=[], rejected=[E.NONCE_OUT_OF_TIME_BOUND, E.NONCE_OUT_OF_TIME_BOUND]
    )
    return s


@vector("reject_unknown_market_place_cancel_cancel_all")
def _() -> Scenario:
    """Market 99 does not exist: a PlaceOrder, a CancelOrder and a CancelAll naming it are left
    out (UNKNOWN_MARKET); a forced block with one is invalid."""
    s = Scenario()
    bad = s.place("alice", 99, True, 100, 1)
    s.force_tx(bad)
    s.block(
        [bad, s.tx("alice", CancelOrder(99, order_id=1)), s.tx("alice", CancelAll(99))],
        status=[],
        rejected=[E.UNKNOWN_MARKET, E.UNKNOWN_MARKET, E.UNKNOWN_MARKET],
    )
    return s


CLOSED = Market(
    market_id=4,
    symbol="OLD-PERP",
    quote_per_tick_lot=1,
    min_size_lots=1,
    max_size_lots=1_000,
    max_price_ticks=1_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=10,
    status=MarketStatus.CLOSED,
)


@vector("reject_market_not_active_closed_market")
def _() -> Scenario:
    """A closed market takes no new orders (MARKET_NOT_ACTIVE); a cancel there is still
    included."""
    s = Scenario(markets=(BTC, CLOSED), prices=((1, 500_000), (4, 1_000)))
    s.block(
        [s.place("alice", 4, True, 1_000, 1), s.tx("alice", CancelOrder(4, order_id=1))],
        status=[E.UNKNOWN_ORDER],
        rejected=[E.MARKET_NOT_ACTIVE],
    )
    return s


@vector("reject_price_out_of_range_above_max")
def _() -> Scenario:
    """A BTC price above max_price_ticks (10,000,000,000) is left out (PRICE_OUT_OF_RANGE)."""
    s = Scenario()
    s.block(
        [s.place("alice", 1, True, 10_000_000_001, 1)], status=[], rejected=[E.PRICE_OUT_OF_RANGE]
    )
    return s


@vector("reject_size_out_of_range_above_max")
def _() -> Scenario:
    """An ETH size above max_size_lots is left out (SIZE_OUT_OF_RANGE), also inside a bulk."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 2, True, 30_000, 100_000_001),
            s.tx("alice", BulkPlace((PlaceOrder(2, True, 30_000, 100_000_001),))),
        ],
        status=[],
        rejected=[E.SIZE_OUT_OF_RANGE, E.SIZE_OUT_OF_RANGE],
    )
    return s


@vector("reject_size_below_minimum_eth_5_lots")
def _() -> Scenario:
    """ETH's minimum size is 10 lots: an order of 5, or a modify to 5, is left out
    (SIZE_BELOW_MINIMUM)."""
    s = Scenario()
    s.block(
        [
            s.place("alice", 2, True, 30_000, 5),
            s.tx("alice", ModifyOrder(2, 1, None, True, 30_000, 5)),
        ],
        status=[],
        rejected=[E.SIZE_BELOW_MINIMUM, E.SIZE_BELOW_MINIMUM],
    )
    return s


@vector("reject_bulk_too_large_65_orders")
def _() -> Scenario:
    """A bulk of 65 items (the limit is 64) is left out (BULK_TOO_LARGE); 64 are accepted."""
    s = Scenario()
    orders = tuple(PlaceOrder(1, True, 400_000 + i, 1) for i in range(65))
    s.block(
        [s.tx("alice", BulkPlace(orders)), s.tx("bob", BulkPlace(orders[:64]))],
        status=[0],
        rejected=[E.BULK_TOO_LARGE],
    )
    return s


@vector("reject_bulk_empty_place_cancel_modify")
def _() -> Scenario:
    """Empty BulkPlace, BulkCancel and BulkModify are left out (BULK_EMPTY)."""
    s = Scenario()
    s.block(
        [
            s.tx("alice", BulkPlace(())),
            s.tx("alice", BulkCancel(())),
            s.tx("alice", BulkModify(())),
        ],
        status=[],
        rejected=[E.BULK_EMPTY] * 3,
    )
    return s


# --------------------------------------------------------------------------------------------
# Timed orders, triggers, the dead-man switch and isolated margin (new transactions)
# --------------------------------------------------------------------------------------------


def _timed(s: Scenario, output: BlockOutput) -> list[tuple[int, int]]:
    """``(status, reason)`` of the order updates of the block's own phases (prologue, matching)."""
    events = (*output.block_events.prologue, *output.block_events.matching)
    return [(int(e.status), int(e.reason)) for e in events if isinstance(e, OrderUpdate)]


@vector("gtt_order_expires_in_the_prologue_of_its_block")
def _() -> Scenario:
    """alice rests a buy good until two blocks later (expires_at_ms = the timestamp of block 3):
    block 2 keeps it; block 3's prologue cancels it (EXPIRED) and releases its reservation."""
    s = Scenario()
    expires = s.now_ms + 3 * BLOCK_MS
    order = PlaceOrder(1, True, 490_000, 10, GTC, False, 7, expires)
    s.block([s.tx("alice", order)], status=[0], updates=[[(OPEN, R.NONE)]])
    assert not _timed(s, s.block())
    out = s.block()
    assert _timed(s, out) == [(CANCELED, R.EXPIRED)]
    assert len(s.state.books[1]) == 0
    return s


@vector("gtt_order_already_expired_is_refused_single_and_bulk")
def _() -> Scenario:
    """An order whose time is not after the block's timestamp: a single one fails with
    ORDER_EXPIRED (nonce and fee kept); in a bulk action it alone is rejected (EXPIRED)."""
    s = Scenario()
    now = s.now_ms + BLOCK_MS
    single = s.tx("alice", PlaceOrder(1, True, 490_000, 10, GTC, False, None, now))
    bulk = s.tx(
        "bob",
        BulkPlace(
            (
                PlaceOrder(1, True, 490_000, 10, GTC, False, None, now),
                PlaceOrder(1, True, 489_000, 10, GTC, False, None, now + 1),
            )
        ),
    )
    s.block(
        [single, bulk],
        status=[E.ORDER_EXPIRED, 0],
        updates=[[], [(REJECTED, R.EXPIRED), (OPEN, R.NONE)]],
    )
    return s


@vector("schedule_cancel_fires_unless_renewed")
def _() -> Scenario:
    """alice sets her dead-man switch, rests two orders and a trigger, renews the switch once;
    the first block at the renewed time cancels the orders (SCHEDULED_CANCEL) and the trigger
    and clears the switch. A switch set sooner than 5 s ahead fails (SCHEDULE_TOO_SOON)."""
    s = Scenario()
    too_soon = s.now_ms + BLOCK_MS + 4_999
    at = s.now_ms + BLOCK_MS + 5_000
    s.block(
        [
            s.tx("alice", ScheduleCancel(too_soon)),
            s.tx("alice", ScheduleCancel(at)),
            s.place("alice", 1, True, 490_000, 10),
            s.place("alice", 2, False, 31_000, 100),
            s.tx("alice", PlaceTrigger(1, False, 480_000, False, 470_000, 10)),
        ],
        status=[E.SCHEDULE_TOO_SOON, 0, 0, 0, 0],
    )
    renewed = at + 1_000
    s.block([s.tx("alice", ScheduleCancel(renewed))], status=[0])
    while s.now_ms + BLOCK_MS < renewed:
        out = s.block()
        assert not _timed(s, out)
    out = s.block()
    canceled = (CANCELED, R.SCHEDULED_CANCEL)
    assert _timed(s, out) == [canceled, canceled]
    assert triggers.get_triggers(s.state, s.addr("alice")) == ()
    assert triggers.get_cancel_schedule(s.state, s.addr("alice")) is None
    return s


@vector("stop_loss_trigger_fires_on_the_mark_and_matches_first")
def _() -> Scenario:
    """alice is long 10 from bob; her stop-loss sells (IOC, worst 480_000) once the mark is at
    or below 490_000; carol bids 485_000. At a mark of 495_000 nothing fires; at 489_000 the
    trigger fires in the prologue and its reduce-only order fills carol's bid in matching,
    before the block's own placements; alice is flat."""
    s = Scenario()
    s.block(
        [
            s.place("bob", 1, False, 500_000, 10),
            s.place("alice", 1, True, 500_000, 10, IOC),
            s.place("carol", 1, True, 485_000, 10),
        ],
        status=[0, 0, 0],
    )
    s.block([s.tx("alice", PlaceTrigger(1, False, 490_000, False, 480_000, 10))], status=[0])
    out = s.block([], [s.price(1, 495_000)])
    assert not out.block_events.matching
    out = s.block([], [s.price(1, 489_000)])
    assert (FILLED, R.FILLED) in _timed(s, out)
    assert clearing.get_position_size(s.state, s.addr("alice"), 1) == 0
    return s


@vector("cancel_trigger_and_unknown_trigger")
def _() -> Scenario:
    """A trigger's id is the nonce of the transaction that placed it. Canceling another id fails
    (UNKNOWN_TRIGGER); canceling its own removes it, and a mark past it later fires nothing."""
    s = Scenario()
    nonce = s.nonce()
    s.block([s.tx("alice", PlaceTrigger(1, True, 510_000, True, 520_000, 5), nonce)], status=[0])
    s.block(
        [
            s.tx("alice", CancelTrigger(1, nonce + 1)),
            s.tx("alice", CancelTrigger(1, nonce)),
        ],
        status=[E.UNKNOWN_TRIGGER, 0],
    )
    out = s.block([], [s.price(1, 520_000)])
    assert not out.block_events.matching
    return s


@vector("isolated_margin_mode_fill_top_up_and_moves")
def _() -> Scenario:
    """alice switches BTC to isolated, buys 1_000 lots from bob: the fill's cash goes to the
    position's own cash, which the balance tops up to the initial requirement; she moves 200_000
    in, fails to move more out than her isolated free collateral (INSUFFICIENT_FREE_COLLATERAL),
    moves 200_000 out, and cannot switch back while the position is open (POSITION_OPEN)."""
    s = Scenario()
    s.block([s.tx("alice", SetMarginMode(1, True))], status=[0])
    s.block(
        [s.place("bob", 1, False, 500_000, 1_000), s.place("alice", 1, True, 500_000, 1_000, IOC)],
        status=[0, 0],
    )
    risk = get_isolated_risk(s.state, s.addr("alice"), 1)
    assert risk is not None and risk.equity_quote == risk.initial_quote
    s.block(
        [
            s.tx("alice", MoveIsolatedMargin(1, 200_000)),
            s.tx("alice", MoveIsolatedMargin(1, -200_001)),
            s.tx("alice", MoveIsolatedMargin(1, -200_000)),
            s.tx("alice", SetMarginMode(1, False)),
        ],
        status=[0, E.INSUFFICIENT_FREE_COLLATERAL, 0, E.POSITION_OPEN],
    )
    return s


@vector("isolated_position_liquidated_alone")
def _() -> Scenario:
    """alice holds an isolated BTC long and a cross ETH long; the BTC mark falls until the
    isolated position is under its own maintenance: it alone is liquidated (AccountLiquidated
    names the market) and closed, its cash returns to the balance, and the cross ETH position
    is untouched."""
    s = Scenario(fund_quote=100_000_000_000)
    s.block([s.tx("alice", SetMarginMode(1, True))], status=[0])
    s.block(
        [
            s.place("bob", 1, False, 500_000, 1_000),
            s.place("alice", 1, True, 500_000, 1_000, IOC),
            s.place("bob", 2, False, 30_000, 1_000),
            s.place("alice", 2, True, 30_000, 1_000, IOC),
            s.place("carol", 1, True, 470_000, 400),
        ],
        status=[0, 0, 0, 0, 0],
    )
    price = 500_000
    seen = []
    for _ in range(8):
        price = price * 97 // 100
        out = s.block([], [s.price(1, price)])
        seen += [e for e in out.block_events.risk if isinstance(e, AccountLiquidated)]
        if not clearing.get_position_size(s.state, s.addr("alice"), 1):
            break
    assert seen and all(e.isolated_market_id == 1 for e in seen)
    assert clearing.get_position_size(s.state, s.addr("alice"), 2) == 1_000
    assert collateral.get_isolated_cash(s.state, s.addr("alice"), 1) == 0
    return s


@vector("reject_self_transfer")
def _() -> Scenario:
    """A transfer to the sender's own account is left out (SELF_TRANSFER); a forced block with
    it is invalid."""
    s = Scenario()
    bad = s.tx("alice", Transfer(s.addr("alice"), 1))
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.SELF_TRANSFER])
    return s


@vector("reject_malformed_transaction_bytes")
def _() -> Scenario:
    """Bytes that do not decode as a transaction (garbage; a zero amount; an unknown action
    tag) are left out (MALFORMED_TRANSACTION); a forced block with one is invalid."""
    s = Scenario()
    good = s.tx("alice", Transfer(s.addr("bob"), 1))
    zero = bytearray(good)
    # The amount (1) ends the action, before agent (nil) and signature (bin8, 65 bytes):
    # make it 0, which ``Positive`` forbids.
    idx = len(zero) - 67 - 1 - 1
    assert zero[idx : idx + 2] == b"\x01\xc0"
    zero[idx] = 0x00
    tag = bytearray(good)
    tag_at = 1 + 22 + 9 + 1  # array(5) | bin8 address | uint64 nonce | array(3) | tag
    assert tag[tag_at] == 3
    tag[tag_at] = 99
    s.force_tx(b"\x01\x02\x03")
    s.block(
        [b"\x01\x02\x03", bytes(zero), bytes(tag), good],
        status=[0],
        rejected=[E.MALFORMED_TRANSACTION] * 3,
    )
    return s


@vector("reject_malformed_cancel_both_ids_or_none")
def _() -> Scenario:
    """A cancel or modify must name exactly one of order id and client id; otherwise it is left
    out (MALFORMED_TRANSACTION)."""
    s = Scenario()
    s.block(
        [
            s.tx("alice", CancelOrder(1, order_id=1, client_id=1)),
            s.tx("alice", CancelOrder(1)),
            s.tx("alice", ModifyOrder(1, None, None, True, 499_000, 1)),
            s.tx("alice", BulkCancel((CancelOrder(1),))),
        ],
        status=[],
        rejected=[E.MALFORMED_TRANSACTION] * 4,
    )
    return s


def non_canonical(tx: bytes) -> bytes:
    """``tx`` with its action tag (a positive fixint) re-encoded as uint8 ``cc``: it decodes to
    the same transaction (and the same signed digest) but is not the canonical bytes."""
    at = 1 + 22 + 9 + 1
    assert tx[at] < 0x80
    return tx[:at] + b"\xcc" + tx[at:]


@vector("reject_non_canonical_encoding")
def _() -> Scenario:
    """A validly signed transaction whose action tag uses a longer integer form is left out
    (NON_CANONICAL_ENCODING): one transaction, one byte string. A forced block is invalid."""
    s = Scenario()
    bad = non_canonical(s.place("alice", 1, True, 499_000, 1))
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.NON_CANONICAL_ENCODING])
    return s


@vector("reject_transaction_too_large")
def _() -> Scenario:
    """A transaction over 16,384 bytes is left out before decoding (TRANSACTION_TOO_LARGE)."""
    s = Scenario()
    s.block([b"\x95" + b"\x00" * 16_384], status=[], rejected=[E.TRANSACTION_TOO_LARGE])
    return s


@vector("reject_wallet_bad_signature")
def _() -> Scenario:
    """A wallet signature that is not a canonical secp256k1 signature (r = 0) is left out
    (BAD_SIGNATURE); a forced block with it is invalid."""
    s = Scenario()
    tx = msgspec.msgpack.decode(s.place("alice", 1, True, 499_000, 1), type=SignedTransaction)
    bad = encode_transaction(msgspec.structs.replace(tx, signature=bytes(64) + b"\x1b"))
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.BAD_SIGNATURE])
    return s


@vector("reject_wrong_signer_bob_signs_for_alice")
def _() -> Scenario:
    """bob's wallet signature on a transaction for alice's account is left out
    (WRONG_SIGNER); a forced block with it is invalid."""
    s = Scenario()
    bad = sign(
        s.wallets["bob"], Transfer(s.addr("bob"), 1), s.nonce(), s.params, account=s.addr("alice")
    )
    s.force_tx(bad)
    s.block([bad], status=[], rejected=[E.WRONG_SIGNER])
    return s


@vector("reject_signature_for_other_chain_id_wrong_signer")
def _() -> Scenario:
    """A transaction signed for chain 1 recovers another address here: left out
    (WRONG_SIGNER) — replay across chains is impossible."""
    s = Scenario()
    other = ChainParams(chain_id=1)
    bad = sign(s.wallets["alice"], CancelAll(None), s.nonce(), other)
    s.block([bad], status=[], rejected=[E.WRONG_SIGNER])
    return s


# =============================================================================================
# Execution failures (included, rolled back, nonce and fee kept)
# =============================================================================================


@vector("fail_order_insufficient_margin")
def _() -> Scenario:
    """carol (20,000 USDC) places a BTC buy needing ~100,000 USDC of margin: included with
    INSUFFICIENT_MARGIN, nothing rests; a retry with the same nonce is then a used nonce."""
    s = Scenario(balances={"carol": 20_000_000_000})
    n = s.nonce()
    s.block(
        [s.tx("carol", PlaceOrder(1, True, 500_000, 100_000), nonce=n)],
        status=[E.INSUFFICIENT_MARGIN],
    )
    s.block(
        [s.tx("carol", PlaceOrder(1, True, 500_000, 2), nonce=n)],
        status=[],
        rejected=[E.NONCE_ALREADY_USED],
    )
    return s


@vector("fail_modify_over_margin_insufficient_margin")
def _() -> Scenario:
    """A single ModifyOrder whose replacement needs more margin than is free (counting the old
    order's reservation) fails with INSUFFICIENT_MARGIN; the old order stays."""
    s = Scenario(balances={"carol": 20_000_000_000})
    s.block([s.place("carol", 1, True, 499_000, 10)], status=[0])
    s.block(
        [s.tx("carol", ModifyOrder(1, 1, None, True, 499_000, 100_000))],
        status=[E.INSUFFICIENT_MARGIN],
    )
    return s


@vector("fail_cancel_unknown_order_id")
def _() -> Scenario:
    """Cancelling order 99, which does not exist, fails (UNKNOWN_ORDER 3020); so does a cancel
    by an unused client id and a modify of a missing order."""
    s = Scenario()
    two_sided(s)
    s.block(
        [
            s.tx("alice", CancelOrder(1, order_id=99)),
            s.tx("alice", CancelOrder(1, client_id=5)),
            s.tx("alice", ModifyOrder(1, 99, None, False, 500_000, 1)),
        ],
        status=[E.UNKNOWN_ORDER, E.UNKNOWN_ORDER, E.UNKNOWN_ORDER],
    )
    return s


@vector("fail_cancel_other_owners_order_not_order_owner")
def _() -> Scenario:
    """bob cancelling or modifying alice's order 1 fails (NOT_ORDER_OWNER 3021); the order
    stays."""
    s = Scenario()
    two_sided(s)
    s.block(
        [
            s.tx("bob", CancelOrder(1, order_id=1)),
            s.tx("bob", ModifyOrder(1, 1, None, False, 500_000, 1)),
        ],
        status=[E.NOT_ORDER_OWNER, E.NOT_ORDER_OWNER],
    )
    return s


# =============================================================================================
# Invalid blocks
# =============================================================================================


@vector("invalid_block_bad_parent_hash")
def _() -> Scenario:
    """A block whose parent hash is not the tip's hash is rejected (BAD_PARENT_HASH)."""
    s = Scenario()
    two_sided(s)
    s.invalid(reheader(s.draft(), parent_hash=b"\x11" * 32), E.BAD_PARENT_HASH)
    return s


@vector("invalid_block_bad_height")
def _() -> Scenario:
    """A block at height tip + 2 is rejected (BAD_HEIGHT); so is a replay of height 1."""
    s = Scenario()
    two_sided(s)
    s.invalid(reheader(s.draft(), height=3), E.BAD_HEIGHT)
    s.invalid(reheader(s.draft(), height=1), E.BAD_HEIGHT)
    return s


@vector("invalid_block_bad_timestamp_not_after_tip")
def _() -> Scenario:
    """A block whose timestamp equals the tip's is rejected (BAD_TIMESTAMP)."""
    s = Scenario()
    two_sided(s)
    s.invalid(reheader(s.draft(), timestamp_ms=s.now_ms), E.BAD_TIMESTAMP)
    return s


@vector("invalid_block_bad_chain_id")
def _() -> Scenario:
    """A block for chain 1 is rejected (BAD_CHAIN_ID)."""
    s = Scenario()
    s.invalid(reheader(s.draft(), chain_id=1), E.BAD_CHAIN_ID)
    return s


@vector("invalid_block_bad_state_root")
def _() -> Scenario:
    """A block claiming another state root is rejected (BAD_STATE_ROOT)."""
    s = Scenario()
    two_sided(s)
    s.invalid(
        reheader(s.draft([s.place("carol", 1, True, 500_100, 1)]), state_root=b"\x00" * 32),
        E.BAD_STATE_ROOT,
    )
    return s


@vector("invalid_block_bad_transactions_root")
def _() -> Scenario:
    """A block whose transactions root does not commit to its transactions is rejected
    (BAD_TRANSACTIONS_ROOT)."""
    s = Scenario()
    block = s.draft([s.place("carol", 1, True, 500_100, 1)])
    s.invalid(reheader(block, transactions_root=compute_ordered_root(())), E.BAD_TRANSACTIONS_ROOT)
    return s


@vector("invalid_block_bad_receipts_root")
def _() -> Scenario:
    """A block claiming the receipts root of an empty block is rejected (BAD_RECEIPTS_ROOT)."""
    s = Scenario()
    block = s.draft([s.place("carol", 1, True, 500_100, 1)])
    s.invalid(reheader(block, receipts_root=compute_ordered_root(())), E.BAD_RECEIPTS_ROOT)
    return s


@vector("invalid_block_bad_withdrawals_root")
def _() -> Scenario:
    """A block with a withdrawal that claims an empty withdrawals root is rejected
    (BAD_WITHDRAWALS_ROOT)."""
    s = Scenario()
    block = s.draft([s.tx("alice", Withdraw(5_000_000, s.addr("alice")))])
    s.invalid(reheader(block, withdrawals_root=compute_ordered_root(())), E.BAD_WITHDRAWALS_ROOT)
    return s


@vector("invalid_block_bad_gas_used")
def _() -> Scenario:
    """A block claiming one more gas than execution uses is rejected (BAD_GAS_USED)."""
    s = Scenario()
    block = s.draft([s.place("carol", 1, True, 500_100, 1)])
    s.invalid(reheader(block, gas_used=block.header.gas_used + 1), E.BAD_GAS_USED)
    return s


@vector("invalid_block_gas_limit_exceeded")
def _() -> Scenario:
    """With a block gas limit of 3,000, a block of two orders (2,000 gas) is valid and one of
    two orders plus a transfer (4,000) is rejected (BLOCK_GAS_LIMIT_EXCEEDED)."""
    s = Scenario(block_gas_limit=3_000)
    roomy = msgspec.structs.replace(s.params, block_gas_limit=50_000_000)
    txs = [
        s.place("alice", 1, False, 500_100, 1),
        s.place("bob", 1, True, 499_000, 1),
        s.tx("carol", Transfer(s.addr("bob"), 1)),
    ]
    s.invalid(s.draft(txs, params=roomy), E.BLOCK_GAS_LIMIT_EXCEEDED)
    s.block(txs[:2], status=[0, 0])
    return s


@vector("invalid_block_too_many_transactions")
def _() -> Scenario:
    """With at most 2 transactions per block, a block of 3 is rejected (TOO_MANY_TRANSACTIONS)."""
    s = Scenario(max_transactions_per_block=2)
    roomy = msgspec.structs.replace(s.params, max_transactions_per_block=100)
    txs = [s.tx(n, CancelAll(None)) for n in ("alice", "bob", "carol")]
    s.invalid(s.draft(txs, params=roomy), E.TOO_MANY_TRANSACTIONS)
    s.block(txs[:2], status=[0, 0])
    return s


@vector("invalid_block_deposit_out_of_order")
def _() -> Scenario:
    """The inbox's next deposit is index 1: a block with index 2, or a replay of index 0, is
    rejected (BAD_SYSTEM_INPUT)."""
    s = Scenario()
    s.block([], [s.deposit(s.addr("carol"), 7_000_000)])
    good = s.draft([], [Deposit(1, s.addr("carol"), 1)])
    s.invalid(Block(good.header, (Deposit(2, s.addr("carol"), 1),), ()), E.BAD_SYSTEM_INPUT)
    s.invalid(Block(good.header, (Deposit(0, s.addr("carol"), 1),), ()), E.BAD_SYSTEM_INPUT)
    return s


@vector("invalid_block_oracle_price_unknown_key")
def _() -> Scenario:
    """An oracle price signed by a key outside the genesis oracle set is rejected
    (UNKNOWN_ORACLE_KEY)."""
    s = Scenario()
    good = s.draft([], [s.price(1, 510_000)])
    rogue = sign_price(wallet_from_seed("mallory"), 1, 510_000, s.now_ms + 1, s.params)
    s.invalid(Block(good.header, (rogue,), ()), E.UNKNOWN_ORACLE_KEY)
    return s


@vector("invalid_block_oracle_price_bad_signature")
def _() -> Scenario:
    """An oracle price whose signed value differs from the posted one is rejected
    (BAD_ORACLE_SIGNATURE)."""
    s = Scenario()
    signed = s.price(1, 510_000)
    good = s.draft([], [signed])
    forged = msgspec.structs.replace(signed, price_ticks=900_000)
    s.invalid(Block(good.header, (forged,), ()), E.BAD_ORACLE_SIGNATURE)
    return s


@vector("invalid_block_oracle_price_unknown_market_stale_or_future")
def _() -> Scenario:
    """Oracle prices for an unknown market, not newer than the stored one, from after the
    block's timestamp, or above the market's max price are rejected (BAD_SYSTEM_INPUT)."""
    s = Scenario()
    s.block([], [s.price(1, 510_000)])
    header = s.draft().header
    ts = s.now_ms + 1
    for bad in (
        sign_price(s.oracle, 99, 510_000, ts, s.params),
        sign_price(s.oracle, 1, 510_000, s.now_ms - BLOCK_MS + 1, s.params),
        sign_price(s.oracle, 1, 510_000, s.now_ms + BLOCK_MS + 1, s.params),
        sign_price(s.oracle, 1, 10_000_000_001, ts, s.params),
    ):
        s.invalid(Block(header, (bad,), ()), E.BAD_SYSTEM_INPUT)
    return s


@vector("invalid_block_then_valid_block_chain_continues")
def _() -> Scenario:
    """A rejected block leaves the state as it was: the valid block built after it at the
    same height applies."""
    s = Scenario()
    two_sided(s)
    s.invalid(reheader(s.draft(), state_root=b"\x01" * 32), E.BAD_STATE_ROOT)
    s.block([s.place("carol", 1, True, 500_100, 10)], status=[0])
    return s


# =============================================================================================
# Longer runs
# =============================================================================================


@vector("ten_block_session_every_action_type")
def _() -> Scenario:
    """A session of ten blocks touching every action type, a deposit and oracle prices."""
    s = Scenario(
        names=("alice", "bob", "carol", "dave"), balances={"dave": 0}, fee_tiers=REBATE_TIERS
    )
    dave = s.addr("dave")
    s.block(
        [s.approve("alice", AGENT, GENESIS_MS + 10**6)],
        [s.deposit(dave, 100_000_000_000)],
        status=[0],
    )
    s.block(
        [
            s.agent_tx(AGENT, "alice", PlaceOrder(1, False, 500_100, 10, client_id=1)),
            s.place("bob", 1, True, 499_900, 10, ALO, client_id=1),
            s.place("dave", 2, False, 30_100, 100),
        ],
        status=[0, 0, 0],
    )
    s.block([s.place("carol", 1, True, 500_100, 4, IOC)], [s.price(1, 500_050)], status=[0])
    s.block([s.tx("alice", ModifyOrder(1, None, 1, False, 500_080, 6))], status=[0])
    s.block(
        [
            s.tx(
                "bob",
                BulkPlace((PlaceOrder(2, True, 30_100, 50), PlaceOrder(2, True, 29_000, 50))),
            ),
            s.tx("dave", Transfer(s.addr("carol"), 1_000_000_000)),
        ],
        status=[0, 0],
    )
    s.block(
        [s.tx("bob", BulkModify((ModifyOrder(2, None, None, True, 29_500, 50),)))],
        status=[],
        rejected=[E.MALFORMED_TRANSACTION],
    )
    s.block([s.tx("bob", BulkCancel((CancelOrder(1, client_id=1),)))], status=[0])
    s.block([s.tx("alice", RevokeAgent(AGENT.public_key))], [s.price(2, 30_050)], status=[0])
    s.block([s.tx("carol", Withdraw(500_000_000, s.addr("carol")))], status=[0])
    s.block([s.tx("dave", CancelAll(None)), s.tx("bob", CancelAll(2))], status=[0, 0])
    return s


# =============================================================================================
# Funding
# =============================================================================================


def funding_ticks(output: BlockOutput) -> list[funding.FundingTick]:
    return [e for e in output.block_events.prologue if isinstance(e, funding.FundingTick)]


def run_to_tick(s: Scenario) -> funding.FundingTick:
    """Empty blocks until one ticks funding; return that tick (one tick per market here)."""
    for _ in range(50):
        ticks = funding_ticks(s.block())
        if ticks:
            assert len(ticks) == 1, ticks
            return ticks[0]
    raise AssertionError("no funding tick")


def funding_paid(output: BlockOutput) -> dict[str, int]:
    """``funding_quote`` of each ``PositionChanged`` of the block, by account hex."""
    return {
        e.account.hex(): e.funding_quote
        for e in output.block_events.settlement
        if isinstance(e, PositionChanged)
    }


@vector("funding_tick_long_pays_short_receives")
def _() -> Scenario:
    """Funding every second at the interest rate (100 ppm; no book, so mark = index and the
    premium is 0). bob is long 5 BTC lots, alice short 5. The tick at the first whole second
    moves the index by 100 * 500_000 * 10 = 500_000_000 micro-quote per lot (500 quote). When
    both trade again (bob sells 1 to alice), each position settles first: bob pays 2_500, alice
    receives 2_500 (PositionChanged.funding_quote), nothing is rounded, the fund is unchanged."""
    s = Scenario(
        markets=(BTC,), prices=((1, 500_000),), funding_interval_ms=1_000, funding_interest_ppm=100
    )
    bob_long_5(s)
    tick = run_to_tick(s)
    assert (tick.rate_ppm, tick.premium_avg_ppm, tick.index_step_micro) == (100, 0, 500_000_000)
    out = s.block(
        [s.place("alice", 1, True, 500_000, 1), s.place("bob", 1, False, 500_000, 1)],
        status=[0, 0],
    )
    paid = funding_paid(out)
    assert paid == {s.addr("bob").hex(): 2_500, s.addr("alice").hex(): -2_500}, paid
    assert collateral.get_insurance_fund(s.state) == 0
    assert funding.sum_in_transit(s.state) == 0
    return s


@vector("funding_rounding_remainder_to_insurance_fund")
def _() -> Scenario:
    """ETH (1 quote per tick-lot) at 30_000 with a 7 ppm rate: the index moves 210_000
    micro-quote per lot, so 10 lots owe 2.1 quote. bob (long 10) pays ceil(2.1) = 3, alice
    (short 10) receives floor(2.1) = 2: the remainder of 1 quote unit goes to the insurance
    fund once both have settled (they close against each other after the tick), and nothing is
    left in transit."""
    s = Scenario(
        markets=(ETH,), prices=((2, 30_000),), funding_interval_ms=1_000, funding_interest_ppm=7
    )
    s.block(
        [s.place("alice", 2, False, 30_000, 10), s.place("bob", 2, True, 30_000, 10)],
        status=[0, 0],
    )
    tick = run_to_tick(s)
    assert (tick.rate_ppm, tick.index_step_micro) == (7, 210_000)
    out = s.block(
        [s.place("alice", 2, True, 30_000, 10), s.place("bob", 2, False, 30_000, 10)],
        status=[0, 0],
    )
    paid = funding_paid(out)
    assert paid == {s.addr("bob").hex(): 3, s.addr("alice").hex(): -2}, paid
    assert collateral.get_insurance_fund(s.state) == 1
    assert funding.sum_in_transit(s.state) == 0
    assert not clearing.get_positions(s.state, s.addr("bob"))
    return s


@vector("funding_settles_one_side_first_in_transit")
def _() -> Scenario:
    """Lazy settlement: after the tick (ETH, 7 ppm, 10 lots: 2.1 quote owed) only bob trades
    (he buys 10 more from carol). He pays 3: 3 quote units are in transit (0.9 of them rounding
    dust) until alice settles; alice's unsettled receipt (2) already counts in her equity."""
    s = Scenario(
        markets=(ETH,), prices=((2, 30_000),), funding_interval_ms=1_000, funding_interest_ppm=7
    )
    s.block(
        [s.place("alice", 2, False, 30_000, 10), s.place("bob", 2, True, 30_000, 10)],
        status=[0, 0],
    )
    run_to_tick(s)
    out = s.block(
        [s.place("carol", 2, False, 30_000, 10), s.place("bob", 2, True, 30_000, 10)],
        status=[0, 0],
    )
    assert funding_paid(out) == {s.addr("bob").hex(): 3, s.addr("carol").hex(): 0}
    record = funding.get_funding(s.state, 2)
    assert record is not None and (record.in_transit_quote, record.dust_micro) == (3, 900_000)
    assert collateral.get_insurance_fund(s.state) == 0
    return s


@vector("funding_rate_capped")
def _() -> Scenario:
    """carol quotes 515_000 / 525_000 around a BTC index of 500_000 (one oracle price, fresh for
    the next 10 s, so the mark follows the book): the mark rises with the basis EMA, the
    average premium is thousands of ppm, and premium + clamp(interest - premium, 500) is cut
    to the 1_000 ppm cap. bob (long 5) then pays 1_000 ppm of the mark notional:
    5 * 1_000 * mark * 10 / 1e6, rounded up; alice (short 5) receives it rounded down. Both
    settle by trading with carol's quotes."""
    s = Scenario(
        markets=(BTC,), prices=((1, 500_000),), funding_interval_ms=1_000, funding_cap_ppm=1_000
    )
    bob_long_5(s)
    s.block(
        [s.place("carol", 1, True, 515_000, 1), s.place("carol", 1, False, 525_000, 1)],
        [s.price(1, 500_000)],
        status=[0, 0],
    )
    tick = run_to_tick(s)
    assert tick.premium_avg_ppm > 1_500 and tick.rate_ppm == 1_000, tick
    out = s.block(
        [s.place("alice", 1, True, 525_000, 1, IOC), s.place("bob", 1, False, 515_000, 1, IOC)],
        status=[0, 0],
    )
    paid = funding_paid(out)
    owed_micro = 5 * 1_000 * tick.mark_ticks * 10
    assert paid[s.addr("bob").hex()] == -(-owed_micro // 1_000_000), paid
    assert paid[s.addr("alice").hex()] == -(owed_micro // 1_000_000), paid
    return s


@vector("funding_negative_premium_shorts_pay")
def _() -> Scenario:
    """A bid-heavy book below the index (carol quotes 480_000 / 490_000): the premium is
    negative, the rate is premium + 500 (the clamp) and shorts pay longs: alice (short 5) pays,
    bob (long 5) receives."""
    s = Scenario(markets=(BTC,), prices=((1, 500_000),), funding_interval_ms=1_000)
    bob_long_5(s)
    s.block(
        [s.place("carol", 1, True, 480_000, 1), s.place("carol", 1, False, 490_000, 1)],
        [s.price(1, 500_000)],
        status=[0, 0],
    )
    tick = run_to_tick(s)
    assert tick.premium_avg_ppm < -510 and tick.rate_ppm == tick.premium_avg_ppm + 500, tick
    out = s.block(
        [s.place("alice", 1, True, 490_000, 1, IOC), s.place("bob", 1, False, 480_000, 1, IOC)],
        status=[0, 0],
    )
    paid = funding_paid(out)
    assert paid[s.addr("alice").hex()] > 0 > paid[s.addr("bob").hex()], paid
    return s


# =============================================================================================
# Liquidation (the risk phase, ``stf/risk.py``; rules in ``modules/liquidation``)
# =============================================================================================
#
# The liquidation scenarios use LIQ-PERP (1 quote per tick-lot, 10% initial, 5% maintenance) at
# 10_000 ticks, so 100 lots are 1_000_000 quote of notional. The book is kept one-sided between
# blocks, so the basis EMA stays 0 and the mark equals the index (the oracle price, which moves
# at most 5% per block). Default fees: maker 100 ppm, taker 400 ppm; liquidation fee 5_000 ppm.

FUND = collateral.INSURANCE_FUND_ACCOUNT
LIQ = Market(
    market_id=1,
    symbol="LIQ-PERP",
    quote_per_tick_lot=1,
    min_size_lots=1,
    max_size_lots=1_000_000,
    max_price_ticks=1_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=50,
)
LIQ2 = msgspec.structs.replace(LIQ, market_id=2, symbol="LQB-PERP")
HI = msgspec.structs.replace(
    LIQ, symbol="HI-PERP", initial_margin_ppm=20_000, maintenance_margin_ppm=10_000
)
"""50x leverage: a 5% move takes a fully levered account below zero equity in one block."""
LIQ_NAMES = ("alice", "bob", "carol", "dave")
FUND_UNCAPPED = {
    "insurance_max_leverage_ppm": 50_000_000,
    "insurance_deleverage_leverage_ppm": 1_000_000_000,
    "insurance_stop_loss_ppm": 1_000_000,
}
"""The insurance fund allowed 50x (deleveraged at the mark only past 1000x, its stop-loss at
100% of its equity), so that its own initial and maintenance requirements are what bind."""


def liq_scenario(
    alice_quote: int = 110_000,
    *,
    markets: Sequence[Market] = (LIQ,),
    balances: dict[str, int] | None = None,
    names: Sequence[str] = LIQ_NAMES,
    **kw: Any,
) -> Scenario:
    """A liquidation scenario: alice starts with ``alice_quote``, everyone else with BALANCE;
    every market at 10_000 ticks."""
    amounts = {"alice": alice_quote, **(balances or {})}
    prices = tuple((m.market_id, 10_000) for m in markets)
    return Scenario(names=names, balances=amounts, markets=markets, prices=prices, **kw)


def trade(
    s: Scenario, buyer: str, seller: str, size: int, price: int = 10_000, market_id: int = 1
) -> None:
    """One block: ``seller`` rests a sell, ``buyer`` takes it (the book is empty after)."""
    s.block(
        [
            s.place(seller, market_id, False, price, size),
            s.place(buyer, market_id, True, price, size),
        ],
        status=[0, 0],
    )


def move(
    s: Scenario, price: int, market_id: int = 1, txs: Sequence[bytes] = (), **kw: Any
) -> BlockOutput:
    """One block with an oracle price for ``market_id`` (the index moves at most 5% to it)."""
    return s.block(txs, [s.price(market_id, price)], **kw)


def risk_of(out: BlockOutput, kind: type[Any]) -> list[Any]:
    """The block's risk-phase events of one kind, in order."""
    return [e for e in out.block_events.risk if isinstance(e, kind)]


def liquidated(s: Scenario, out: BlockOutput) -> list[str]:
    """Names of the accounts the block liquidated, in order (``FUND`` for the fund)."""
    names = {s.addr(n): n for n in s.wallets} | {FUND: "FUND"}
    return [names[e.account] for e in risk_of(out, AccountLiquidated)]


def size_of(s: Scenario, who: str | bytes, market_id: int = 1) -> int:
    account = FUND if who == "FUND" else (who if isinstance(who, bytes) else s.addr(who))
    return clearing.get_position_size(s.state, account, market_id)


def equity_of(s: Scenario, who: str) -> int:
    account = FUND if who == "FUND" else s.addr(who)
    return get_account_risk(s.state, account).equity_quote


def alice_long_100(s: Scenario, price: int = 10_000) -> None:
    """Block 1: alice buys 100 LIQ lots from bob at ``price`` (taker fee 400 at 10_000)."""
    trade(s, "alice", "bob", 100, price)


@vector("liq_book_min_close_20pct_slice_sold_to_bid")
def _() -> Scenario:
    """alice (110_000 quote) buys 100 lots at 10_000 (equity 109_600 after the 400 taker fee).
    carol bids 60 at 9_300. At 9_500 alice is safe (equity 59_600 >= maintenance 47_500); at
    9_340 she is not (43_600 < 46_700): the deficit needs ceil(3_100e6 / 46_700) = 66_382 ppm,
    twice that is below the 20% minimum, so the slice is 20 lots. Her share of equity is
    43_600 * 20/100 = 8_720, so the slice may sell for 186_800 - 8_720 = 178_080 (limit 8_904);
    carol's bid fills the 20 lots at 9_300 (186_000), with no taker fee, and the liquidation fee
    ceil(186_000 * 0.5%) = 930 goes to the insurance fund."""
    s = liq_scenario()
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_300, 60)], status=[0])
    assert not liquidated(s, move(s, 9_500))
    out = move(s, 9_340)
    assert liquidated(s, out) == ["alice"]
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote, acct.close_ppm) == (43_600, 46_700, 200_000)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.wanted_lots, pos.slice_lots, pos.equity_share_quote) == (20, 20, 8_720)
    assert (pos.bankruptcy_value_quote, pos.limit_price_ticks) == (178_080, 8_904)
    assert (pos.book_lots, pos.book_value_quote, pos.fee_quote) == (20, 186_000, 930)
    (fill,) = [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert (fill.taker_fee_quote, fill.price_ticks) == (0, 9_300)
    assert size_of(s, "alice") == 80 and size_of(s, "carol") == 20
    assert collateral.get_insurance_fund(s.state) == 930
    return s


@vector("liq_book_close_twice_the_deficit_40pct")
def _() -> Scenario:
    """At 9_275 alice's equity is 37_100 against a maintenance of 46_375 (80%): the deficit
    needs 200_000 ppm of her position and the liquidation closes twice that, 40 lots, into
    carol's bid at 9_200."""
    s = liq_scenario()
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_200, 100)], status=[0])
    move(s, 9_500)
    out = move(s, 9_275)
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote, acct.close_ppm) == (37_100, 46_375, 400_000)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.slice_lots, pos.book_lots, pos.book_value_quote) == (40, 40, 368_000)
    assert size_of(s, "alice") == 60
    return s


@vector("liq_book_full_close_when_deficit_over_half")
def _() -> Scenario:
    """At 9_200 alice's equity is 29_600 against 46_000: closing twice the deficit would be
    713_044 ppm, more than half, so the whole position (100 lots) is sold into carol's bid at
    9_100. She keeps what is left: 29_600 - 100 * 100 - fee ceil(910_000 * 0.5%) = 15_050."""
    s = liq_scenario()
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_100, 150)], status=[0])
    move(s, 9_500)
    out = move(s, 9_200)
    (acct,) = risk_of(out, AccountLiquidated)
    assert acct.close_ppm == 1_000_000
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.slice_lots, pos.book_lots, pos.fee_quote) == (100, 100, 4_550)
    assert size_of(s, "alice") == 0
    assert collateral.get_balance(s.state, s.addr("alice")) == 15_050
    assert not risk_of(out, BadDebtChanged)
    return s


@vector("liq_book_full_close_when_equity_not_positive")
def _() -> Scenario:
    """HI-PERP (2% initial, 1% maintenance): alice (21_000 quote) buys 100 lots at 10_000 and
    the price falls 5% to 9_500 in one block: her equity is 20_600 - 50_000 = -29_400, so the
    whole position closes. Bankrupt, the slice must sell for 950_000 + 29_400 = 979_400 (limit
    9_794, above the mark): carol's bid at 9_400 is not hit, and the insurance fund (capitalized
    with 1_000_000 at genesis) takes the 100 lots at 979_400, a loss of 29_400."""
    s = liq_scenario(21_000, markets=(HI,), fund_quote=1_000_000)
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_400, 100)], status=[0])
    out = move(s, 9_500)
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.close_ppm) == (-29_400, 1_000_000)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.equity_share_quote, pos.bankruptcy_value_quote) == (-29_400, 979_400)
    assert (pos.limit_price_ticks, pos.book_lots) == (9_794, 0)
    assert (pos.backstop_lots, pos.backstop_value_quote, pos.fund_loss_quote) == (
        100,
        979_400,
        29_400,
    )
    assert size_of(s, "FUND") == 100 and size_of(s, "alice") == 0
    assert collateral.get_balance(s.state, s.addr("alice")) == 0
    return s


@vector("liq_large_position_closed_in_slices_over_three_blocks")
def _() -> Scenario:
    """carol bids 500 lots at 9_000, well below the mark, so each slice costs alice more than the
    mark and she stays under maintenance while the price falls: 20 lots at 9_340 (20%), 36 at
    9_250 (twice the deficit, 448_650 ppm of 80), and the last 44 at 9_150 (more than half)."""
    s = liq_scenario()
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_000, 500)], status=[0])
    move(s, 9_500)
    slices = []
    for price in (9_340, 9_250, 9_150):
        out = move(s, price)
        (acct,) = risk_of(out, AccountLiquidated)
        (pos,) = risk_of(out, PositionLiquidated)
        slices.append((acct.close_ppm, pos.size_before_lots, pos.slice_lots, pos.book_lots))
    assert slices == [
        (200_000, 100, 20, 20),
        (448_650, 80, 36, 36),
        (1_000_000, 44, 44, 44),
    ], slices
    assert size_of(s, "alice") == 0 and size_of(s, "carol") == 100
    assert not liquidated(s, move(s, 9_060))
    return s


@vector("liq_book_fills_never_beyond_bankruptcy_price")
def _() -> Scenario:
    """Full close at 9_200: the slice's bankruptcy value is 890_400 (limit 8_904). carol's bids
    at 9_000 (30) and 8_950 (50) fill; dave's bid at 8_900, below the limit, is not touched and
    still rests. The remaining 20 lots go to the backstop or auto-deleveraging (here: the fund
    has no capital, so bob, the only short, takes them back at the bankruptcy value)."""
    s = liq_scenario(liquidation_fee_ppm=0)
    alice_long_100(s)
    s.block(
        [
            s.place("carol", 1, True, 9_000, 30),
            s.place("carol", 1, True, 8_950, 50),
            s.place("dave", 1, True, 8_900, 100),
        ],
        status=[0, 0, 0],
    )
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos.limit_price_ticks == 8_904
    fills = [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert [(f.price_ticks, f.size_lots) for f in fills] == [(9_000, 30), (8_950, 50)]
    assert all(f.price_ticks >= pos.limit_price_ticks for f in fills)
    assert (pos.book_lots, pos.adl_lots, pos.backstop_lots) == (80, 20, 0)
    assert [(o.owner, o.size_lots) for o in s.state.books[1].iter_orders()] == [
        (s.addr("dave"), 100)
    ]
    return s


@vector("liq_fee_capped_by_equity_left")
def _() -> Scenario:
    """A 10% liquidation fee: the full close at 9_200 sells 100 lots into carol's bid at 9_100
    (910_000); alice's equity left is 29_600 - 10_000 = 19_600, so the fee is 19_600 instead of
    91_000 and she ends with exactly 0 (no bad debt)."""
    s = liq_scenario(liquidation_fee_ppm=100_000)
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_100, 100)], status=[0])
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.book_lots, pos.book_value_quote, pos.fee_quote) == (100, 910_000, 19_600)
    assert collateral.get_balance(s.state, s.addr("alice")) == 0
    assert collateral.get_insurance_fund(s.state) == 19_600
    assert not risk_of(out, BadDebtChanged)
    return s


def carol_deleveraged_beyond_her_equity(s: Scenario) -> BlockOutput:
    """HI, 45_125 of notional per block: alice (21_000) long 100 from dave is bankrupt at 9_500
    and 4 lots are deleveraged per block; carol (1_000 of cash) sold 5 lots at 9_500 in that
    block; ranked first at 9_025, her whole short closes at alice's bankruptcy value (about
    9_794 a lot): she loses more than she had and is left with no position and -475. Returns
    that block's output."""
    trade(s, "alice", "dave", 100)
    move(
        s,
        9_500,
        txs=[s.place("carol", 1, False, 9_500, 5), s.place("dave", 1, True, 9_500, 5, IOC, True)],
        status=[0, 0],
    )
    out = move(s, 9_025)
    carol = s.addr("carol")
    assert any(d.counterparty == carol for d in risk_of(out, Deleveraged))
    assert clearing.get_positions(s.state, carol) == ()
    assert collateral.get_balance(s.state, carol) == 0  # set to zero: the rest is bad debt
    return out


@vector("liq_bad_debt_recorded_then_repaid_by_the_fund")
def _() -> Scenario:
    """Recorded bad debt through the public rules: an ADL counterparty closed out of its last
    position beyond its equity (see ``carol_deleveraged_beyond_her_equity``). The fund has no
    capital: carol's 475 is recorded (BadDebtChanged), and a withdrawal in the next block is
    refused with WITHDRAWALS_GATED while a transfer still works. bob then capitalizes the fund
    with a transfer: at the end of that block's risk phase the fund repays the record from its
    free collateral, and withdrawals work again."""
    s = liq_scenario(
        21_000,
        markets=(HI,),
        balances={"carol": 1_000},
        liquidation_max_notional_per_block_quote=45_125,
    )
    out = carol_deleveraged_beyond_her_equity(s)
    (debt,) = [d for d in risk_of(out, BadDebtChanged) if d.account == s.addr("carol")]
    assert (debt.covered_by_fund_quote, debt.recorded_quote, debt.total_quote) == (0, 475, 475)
    assert liquidation.get_bad_debt(s.state) == 475
    s.block(
        [
            s.tx("bob", Withdraw(1_000, b"\x11" * 20)),
            s.tx("bob", Transfer(s.addr("dave"), 1_000)),
        ],
        status=[ErrorCode.WITHDRAWALS_GATED, 0],
    )
    out = s.block([s.tx("bob", Transfer(FUND, 10_000))], status=[0])
    (repaid,) = risk_of(out, BadDebtChanged)
    assert (repaid.account, repaid.covered_by_fund_quote, repaid.recorded_quote) == (
        FUND,
        475,
        -475,
    )
    assert repaid.total_quote == 0 and liquidation.get_bad_debt(s.state) == 0
    out = s.block([s.tx("bob", Withdraw(1_000, b"\x11" * 20))], status=[0])
    assert len(out.withdrawals) == 1
    return s


@vector("liq_bad_debt_covered_by_funded_fund")
def _() -> Scenario:
    """The same deleveraging as the recorded-bad-debt vector, with a fund of 1_000: too small
    to take over any of alice's lots (its notional stays within 1x its equity), but its free
    collateral covers carol's 475 in full; nothing is recorded."""
    s = liq_scenario(
        21_000,
        markets=(HI,),
        balances={"carol": 1_000},
        liquidation_max_notional_per_block_quote=45_125,
        fund_quote=1_000,
    )
    out = carol_deleveraged_beyond_her_equity(s)
    (debt,) = [d for d in risk_of(out, BadDebtChanged) if d.account == s.addr("carol")]
    assert (debt.covered_by_fund_quote, debt.recorded_quote, debt.total_quote) == (475, 0, 0)
    assert liquidation.get_bad_debt(s.state) == 0
    return s


@vector("liq_cancels_orders_in_every_market_releases_reservations")
def _() -> Scenario:
    """alice (long 100 LIQ) rests a bid of 5 LIQ at 8_000 and a bid of 5 LQB at 9_000, each
    reserving 5_020 (10.04% of the notional at the mark, which is above both limits).
    Reservations count in neither side of the candidate check. At 9_340 she is liquidated:
    both orders are canceled (LIQUIDATED) before her slice is sold, and her reservation falls
    to 0."""
    s = liq_scenario(112_000, markets=(LIQ, LIQ2))
    alice_long_100(s)
    s.block(
        [
            s.place("carol", 1, True, 9_300, 60),
            s.place("alice", 1, True, 8_000, 5),
            s.place("alice", 2, True, 9_000, 5),
        ],
        status=[0, 0, 0],
    )
    assert margin.get_reserved(s.state, s.addr("alice")) == 2 * 5_020
    move(s, 9_500)
    out = move(s, 9_340)
    (acct,) = risk_of(out, AccountLiquidated)
    assert acct.orders_canceled == 2
    canceled = [
        (u.market_id, u.reason)
        for u in out.block_events.risk
        if isinstance(u, OrderUpdate)
        and u.owner == s.addr("alice")
        and u.status == CANCELED
        and u.reason == R.LIQUIDATED
    ]
    assert canceled == [(1, R.LIQUIDATED), (2, R.LIQUIDATED)]
    assert margin.get_reserved(s.state, s.addr("alice")) == 0
    assert [o.owner for b in s.state.books.values() for o in b.iter_orders()] == [s.addr("carol")]
    return s


@vector("liq_short_buys_back_from_asks_at_most_bankruptcy_price")
def _() -> Scenario:
    """alice shorts 100 at 10_000 as the maker (fee 100); the price rises to 10_500 then 10_700
    (equity 39_900 against 53_500: the whole position). A short buys back at most at its
    bankruptcy value 1_070_000 + 39_900 = 1_109_900 (limit 11_099): dave's 60 lots at 10_900
    fill, his 40 at 11_200 do not; the fund has only the fee, so the 40 lots left are
    deleveraged against bob's long."""
    s = liq_scenario()
    trade(s, "bob", "alice", 100)
    s.block(
        [s.place("dave", 1, False, 10_900, 60), s.place("dave", 1, False, 11_200, 40)],
        status=[0, 0],
    )
    move(s, 10_500)
    out = move(s, 10_700)
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote, acct.close_ppm) == (
        39_900,
        53_500,
        1_000_000,
    )
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.bankruptcy_value_quote, pos.limit_price_ticks) == (1_109_900, 11_099)
    assert (pos.book_lots, pos.book_value_quote, pos.adl_lots) == (60, 654_000, 40)
    (dl,) = risk_of(out, Deleveraged)
    assert (dl.counterparty, dl.size_lots) == (s.addr("bob"), 40)
    assert size_of(s, "alice") == 0 and size_of(s, "bob") == 60 and size_of(s, "dave") == -60
    return s


def hi_bankrupt(s: Scenario) -> BlockOutput:
    """HI-PERP: alice (21_000 quote) buys 100 lots from bob at 10_000; the price falls 5% to
    9_500: equity -29_400, the whole position closes at the bankruptcy value 979_400 (no bid)."""
    alice_long_100(s)
    out = move(s, 9_500)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.slice_lots, pos.equity_share_quote, pos.bankruptcy_value_quote) == (
        100,
        -29_400,
        979_400,
    )
    return out


@vector("liq_backstop_funded_fund_takes_over_what_the_book_cannot")
def _() -> Scenario:
    """The fund holds 1_000_000 (genesis). At 9_200 alice's 100 lots close with no bid to sell
    to: the fund takes them over at the bankruptcy value 890_400 (920_000 at the mark minus her
    equity 29_600), a loss of 0 for the fund; alice keeps nothing and owes nothing."""
    s = liq_scenario(fund_quote=1_000_000)
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.book_lots, pos.backstop_lots, pos.backstop_value_quote, pos.fund_loss_quote) == (
        0,
        100,
        890_400,
        0,
    )
    assert size_of(s, "FUND") == 100
    assert collateral.get_balance(s.state, s.addr("alice")) == 0
    assert not risk_of(out, Deleveraged) and not risk_of(out, BadDebtChanged)
    return s


@vector("liq_fund_unwinds_at_the_mark_or_better")
def _() -> Scenario:
    """After taking alice's 100 lots at 9_200, the fund unwinds with a reduce-only IOC sell at
    the mark every block: carol's bid of 60 at 9_300 (above the mark) fills in the block it is
    placed; her bid of 40 at 9_100 (below the mark 9_200) is not hit until the mark falls to
    9_050; then the fund is flat."""
    s = liq_scenario(fund_quote=1_000_000)
    alice_long_100(s)
    move(s, 9_500)
    move(s, 9_200)
    assert size_of(s, "FUND") == 100
    out = s.block([s.place("carol", 1, True, 9_300, 60)], status=[0])
    fills = [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert [(f.taker, f.price_ticks, f.size_lots, f.taker_fee_quote) for f in fills] == [
        (FUND, 9_300, 60, 0)
    ]
    assert size_of(s, "FUND") == 40
    out = s.block([s.place("carol", 1, True, 9_100, 40)], status=[0])
    assert not [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert size_of(s, "FUND") == 40
    out = move(s, 9_050)
    fills = [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert [(f.taker, f.price_ticks, f.size_lots) for f in fills] == [(FUND, 9_100, 40)]
    assert size_of(s, "FUND") == 0 and size_of(s, "carol") == 100
    return s


@vector("liq_backstop_bankrupt_slice_fund_loss_at_limit")
def _() -> Scenario:
    """HI-PERP bankruptcy (equity -29_400). The fund (1_000_000) may lose at most 29_400 per
    account and block: exactly the loss, so it takes the 100 lots at 979_400, above the mark."""
    s = liq_scenario(
        21_000, markets=(HI,), fund_quote=1_000_000, insurance_max_loss_per_account_quote=29_400
    )
    out = hi_bankrupt(s)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.backstop_lots, pos.fund_loss_quote, pos.fund_loss_limit_quote) == (
        100,
        29_400,
        29_400,
    )
    assert collateral.get_balance(s.state, s.addr("alice")) == 0
    assert equity_of(s, "FUND") == 1_000_000 - 29_400
    return s


@vector("liq_fund_loss_limit_partial_backstop_rest_adl")
def _() -> Scenario:
    """The same bankruptcy (a share of -294 a lot) with a fund-loss limit of 10_000: the fund
    takes the most lots whose loss fits, 34 (9_996), at 34 * 9_500 + 9_996 = 332_996; the other
    66 lots are auto-deleveraged against bob (the only short) at 66 * 9_500 + 19_404 =
    646_404: bob buys back above the mark and bears the rest of the loss."""
    s = liq_scenario(
        21_000, markets=(HI,), fund_quote=1_000_000, insurance_max_loss_per_account_quote=10_000
    )
    out = hi_bankrupt(s)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.backstop_lots, pos.backstop_value_quote, pos.fund_loss_quote) == (
        34,
        332_996,
        9_996,
    )
    assert (pos.adl_lots, pos.adl_value_quote) == (66, 646_404)
    (dl,) = risk_of(out, Deleveraged)
    assert (dl.counterparty, dl.size_lots, dl.value_quote, dl.rank) == (
        s.addr("bob"),
        66,
        646_404,
        0,
    )
    assert size_of(s, "bob") == -34 and size_of(s, "FUND") == 34
    return s


@vector("liq_fund_loss_limit_is_per_account_across_markets")
def _() -> Scenario:
    """alice (21_000) is long 50 HI and 50 HI-2 (both 2% / 1%), both falling 5%: equity -29_400,
    each position's share -14_700 (-294 a lot). The fund may lose 20_000 per account: the first
    position (market 1) uses 14_700 of it; of the second, only 18 lots (5_292) fit in the 5_300
    left, and 32 are auto-deleveraged against bob."""
    hi2 = msgspec.structs.replace(HI, market_id=2, symbol="HI2-PERP")
    s = liq_scenario(
        21_000,
        markets=(HI, hi2),
        fund_quote=1_000_000,
        insurance_max_loss_per_account_quote=20_000,
    )
    s.block(
        [
            s.place("bob", 1, False, 10_000, 50),
            s.place("bob", 2, False, 10_000, 50),
            s.place("alice", 1, True, 10_000, 50),
            s.place("alice", 2, True, 10_000, 50),
        ],
        status=[0, 0, 0, 0],
    )
    out = s.block([], [s.price(1, 9_500), s.price(2, 9_500)])
    p1, p2 = risk_of(out, PositionLiquidated)
    assert (p1.market_id, p1.equity_share_quote, p1.backstop_lots, p1.fund_loss_quote) == (
        1,
        -14_700,
        50,
        14_700,
    )
    assert p1.fund_loss_limit_quote == 20_000
    assert (p2.market_id, p2.fund_loss_limit_quote, p2.backstop_lots, p2.fund_loss_quote) == (
        2,
        5_300,
        18,
        5_292,
    )
    assert p2.adl_lots == 32
    assert size_of(s, "FUND", 1) == 50 and size_of(s, "FUND", 2) == 18
    return s


@vector("liq_unfunded_fund_forces_adl")
def _() -> Scenario:
    """The same HI-PERP bankruptcy with a fund that holds nothing: taking the 100 lots would
    leave it at -29_400 against a maintenance of 9_500, so they are auto-deleveraged against
    bob (rank 0)."""
    s = liq_scenario(21_000, markets=(HI,))
    out = hi_bankrupt(s)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.backstop_lots, pos.adl_lots) == (0, 100)
    assert [d.counterparty for d in risk_of(out, Deleveraged)] == [s.addr("bob")]
    assert clearing.get_positions(s.state, FUND) == ()
    return s


@vector("liq_fund_takes_over_at_its_leverage_limit")
def _() -> Scenario:
    """At 9_200 with no bid, the fund with 890_400 of cash takes alice's 100 lots at 890_400:
    its equity becomes 890_400 + 29_600 = 920_000, exactly its notional (the 1x leverage cap,
    ``insurance_max_leverage_ppm``), and above its initial requirement 92_000."""
    s = liq_scenario(fund_quote=890_400)
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos.backstop_lots == 100
    risk = get_account_risk(s.state, FUND)
    assert risk.equity_quote == 920_000 and risk.initial_quote == 92_000
    return s


@vector("liq_fund_takes_what_its_leverage_allows_rest_adl")
def _() -> Scenario:
    """With 500_000 of cash, taking k of alice's 100 lots (share 296 a lot) leaves the fund an
    equity of 500_000 + 296k against a notional of 9_200k: at most 1x allows k = 56. The fund
    takes 56 lots; the other 44 are auto-deleveraged against bob."""
    s = liq_scenario(fund_quote=500_000)
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert (pos.backstop_lots, pos.adl_lots) == (56, 44)
    risk = get_account_risk(s.state, FUND)
    assert 56 * 9_200 <= risk.equity_quote < 57 * 9_200
    return s


@vector("liq_fund_takes_over_at_its_initial_requirement")
def _() -> Scenario:
    """With the leverage cap lifted (``FUND_UNCAPPED``), the fund's own initial requirement
    bounds the backstop: with 62_400 of cash it takes alice's 100 lots at 890_400 and its
    equity is 92_000, exactly 10% of 920_000."""
    s = liq_scenario(fund_quote=62_400, **FUND_UNCAPPED)
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_200)
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos.backstop_lots == 100
    risk = get_account_risk(s.state, FUND)
    assert risk.equity_quote == risk.initial_quote == 92_000
    return s


@vector("liq_adl_ranks_by_leverage_flat_account_untouched")
def _() -> Scenario:
    """HI-PERP, fund without capital. alice (21_000) buys 100 lots at 10_000 from bob (40, a
    deep account), carol (30, 50_000 of cash) and erin (30, 100_000): same profit at 9_500 (5%),
    different leverage, so carol ranks first, then erin, then bob. alice's bankruptcy (100 lots
    at 979_400) is shared in that order, 30 + 30 + 40, at 9_794 per lot; dave, who holds no
    position, is never touched."""
    s = liq_scenario(
        21_000,
        markets=(HI,),
        names=(*LIQ_NAMES, "erin"),
        balances={"carol": 50_000, "erin": 100_000},
    )
    s.block(
        [
            s.place("bob", 1, False, 10_000, 40),
            s.place("carol", 1, False, 10_000, 30),
            s.place("erin", 1, False, 10_000, 30),
            s.place("alice", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0, 0],
    )
    dave = collateral.get_balance(s.state, s.addr("dave"))
    out = move(s, 9_500)
    dls = risk_of(out, Deleveraged)
    names = {s.addr(n): n for n in s.wallets}
    assert [(names[d.counterparty], d.size_lots, d.rank) for d in dls] == [
        ("carol", 30, 0),
        ("erin", 30, 1),
        ("bob", 40, 2),
    ]
    keys = [d.rank_key for d in dls]
    assert keys == sorted(keys, reverse=True) and keys[0] > keys[1] > keys[2] >= 0, keys
    assert [d.value_quote for d in dls] == [293_820, 293_820, 391_760]
    assert collateral.get_balance(s.state, s.addr("dave")) == dave
    assert all(size_of(s, n) == 0 for n in ("alice", "bob", "carol", "erin", "dave"))
    return s


@vector("liq_adl_ranks_by_profit_times_leverage_losing_position_last")
def _() -> Scenario:
    """alice (21_000) sweeps three asks for 100 HI lots: bob's 40 at 9_400, carol's 40 at 9_800,
    dave's 20 at 10_000 (each of them holds 100_000). At 9_500 her equity is 2_612 against
    9_500: all 100 lots close, with no bid and a fund without capital, by deleveraging. The keys
    at 9_500 (profit ppm of entry cost, times leverage): carol 30_612 * 3.394 = 103_899, dave
    50_000 * 1.728 = 86_379, bob, who sold at 9_400, a loss: -10_639 / 3.96 = -2_687. carol is
    deleveraged first, then dave, and bob's losing short last."""
    s = liq_scenario(
        21_000, markets=(HI,), balances={"bob": 100_000, "carol": 100_000, "dave": 100_000}
    )
    s.block(
        [
            s.place("bob", 1, False, 9_400, 40),
            s.place("carol", 1, False, 9_800, 40),
            s.place("dave", 1, False, 10_000, 20),
            s.place("alice", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0, 0],
    )
    out = move(s, 9_500)
    assert liquidated(s, out) == ["alice"]
    names = {s.addr(n): n for n in s.wallets}
    dls = risk_of(out, Deleveraged)
    assert [(names[d.counterparty], d.size_lots, d.rank, d.rank_key) for d in dls] == [
        ("carol", 40, 0, 103_899),
        ("dave", 20, 1, 86_379),
        ("bob", 40, 2, -2_687),
    ]
    # By hand: (upnl, entry cost, notional, equity) at 9_500, before the deleveraging.
    assert liquidation.compute_adl_key(12_000, -392_000, 380_000, 111_960) == 103_899
    assert liquidation.compute_adl_key(10_000, -200_000, 190_000, 109_980) == 86_379
    assert liquidation.compute_adl_key(-4_000, -376_000, 380_000, 95_962) == -2_687
    assert sum(d.value_quote for d in dls) == 947_388 == 950_000 - 2_612
    return s


@vector("liq_adl_equal_keys_lower_address_first")
def _() -> Scenario:
    """bob and carol each sell alice 50 HI lots at 10_000 and hold 100_000 of cash: their ADL
    keys are equal, so the lower address is deleveraged first (rank 0)."""
    s = liq_scenario(21_000, markets=(HI,), balances={"bob": 100_000, "carol": 100_000})
    s.block(
        [
            s.place("bob", 1, False, 10_000, 50),
            s.place("carol", 1, False, 10_000, 50),
            s.place("alice", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0],
    )
    out = move(s, 9_500)
    dls = risk_of(out, Deleveraged)
    assert dls[0].rank_key == dls[1].rank_key
    assert [d.counterparty for d in dls] == sorted([s.addr("bob"), s.addr("carol")])
    return s


@vector("liq_fund_itself_liquidated_without_backstop")
def _() -> Scenario:
    """``FUND_UNCAPPED``: the fund (62_400) takes alice's 100 lots at 9_200 for 890_400 (equity
    92_000). At 8_650 its equity is 37_000 against a maintenance of 43_250: the fund itself is
    liquidated. The deficit needs ceil(6_250e6 / 43_250) = 144_509 ppm, twice that is 289_018:
    29 lots, which, with no bid and no backstop for the fund, are deleveraged against bob at
    29 * 8_650 - 10_730 (the slice's share of the fund's equity) = 240_120. (Its own stop may
    then close the rest at the mark, see ``FundDeleveraged``.)"""
    s = liq_scenario(fund_quote=62_400, **FUND_UNCAPPED)
    alice_long_100(s)
    move(s, 9_500)
    move(s, 9_200)
    assert size_of(s, "FUND") == 100
    assert not liquidated(s, move(s, 8_740))
    out = move(s, 8_650)
    assert liquidated(s, out) == ["FUND"]
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote, acct.close_ppm) == (37_000, 43_250, 289_018)
    pos = risk_of(out, PositionLiquidated)[0]
    assert (pos.account, pos.slice_lots, pos.equity_share_quote) == (FUND, 29, 10_730)
    assert (pos.backstop_lots, pos.adl_lots, pos.adl_value_quote) == (0, 29, 240_120)
    dl = risk_of(out, Deleveraged)[0]
    assert (dl.counterparty, dl.size_lots) == (s.addr("bob"), 29)
    return s


@vector("liq_notional_limit_per_block_carries_over")
def _() -> Scenario:
    """At most 300_000 of notional per market and block: at the mark 9_200 that is 32 lots. The
    fund (1_000_000) takes alice's 100 lots 32, 32, 32 and 4 in four blocks; each block shows the
    whole budget again."""
    s = liq_scenario(fund_quote=1_000_000, liquidation_max_notional_per_block_quote=300_000)
    alice_long_100(s)
    move(s, 9_500)
    slices = []
    for out in (move(s, 9_200), s.block(), s.block(), s.block()):
        (pos,) = risk_of(out, PositionLiquidated)
        slices.append((pos.budget_quote, pos.wanted_lots, pos.slice_lots, pos.backstop_lots))
    assert [x[0] for x in slices] == [300_000] * 4
    assert [x[2] for x in slices] == [32, 32, 32, 4], slices
    assert all(w >= n for _, w, n, _ in slices)
    assert size_of(s, "alice") == 0 and size_of(s, "FUND") == 100
    assert not risk_of(s.block(), AccountLiquidated)
    return s


@vector("liq_notional_limit_shared_by_accounts_in_a_market")
def _() -> Scenario:
    """Budget 1_000_000 per block. alice (equity 29_600) and erin (34_600), both long 100, are
    under maintenance at 9_200; alice, further under, goes first and uses 920_000 on her 100
    lots; erin's slice (wanted 50) gets the 80_000 left: 8 lots. The next block erin has a
    fresh budget."""
    s = liq_scenario(
        names=(*LIQ_NAMES, "erin"),
        balances={"erin": 115_000},
        fund_quote=1_000_000,
        liquidation_max_notional_per_block_quote=1_000_000,
    )
    s.block(
        [
            s.place("bob", 1, False, 10_000, 200),
            s.place("alice", 1, True, 10_000, 100),
            s.place("erin", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0],
    )
    move(s, 9_500)
    out = move(s, 9_200)
    assert liquidated(s, out) == ["alice", "erin"]
    p_alice, p_erin = risk_of(out, PositionLiquidated)
    assert (p_alice.budget_quote, p_alice.slice_lots) == (1_000_000, 100)
    assert (p_erin.budget_quote, p_erin.wanted_lots, p_erin.slice_lots) == (80_000, 50, 8)
    out = s.block()
    (p_next,) = risk_of(out, PositionLiquidated)
    assert p_next.budget_quote == 1_000_000 and p_next.slice_lots > 0
    return s


@vector("liq_notional_limit_is_per_market")
def _() -> Scenario:
    """alice is long 50 LIQ and 50 LQB; both fall to 9_200 with a budget of 300_000 per market
    and block: each market liquidates 32 lots of hers in the same block."""
    s = liq_scenario(
        markets=(LIQ, LIQ2), fund_quote=1_000_000, liquidation_max_notional_per_block_quote=300_000
    )
    s.block(
        [
            s.place("bob", 1, False, 10_000, 50),
            s.place("bob", 2, False, 10_000, 50),
            s.place("alice", 1, True, 10_000, 50),
            s.place("alice", 2, True, 10_000, 50),
        ],
        status=[0, 0, 0, 0],
    )
    s.block([], [s.price(1, 9_500), s.price(2, 9_500)])
    out = s.block([], [s.price(1, 9_200), s.price(2, 9_200)])
    slices = [(p.market_id, p.budget_quote, p.slice_lots) for p in risk_of(out, PositionLiquidated)]
    assert slices == [(1, 300_000, 32), (2, 300_000, 32)], slices
    return s


@vector("liq_stale_market_frozen_then_resumes")
def _() -> Scenario:
    """Staleness 1 s; 92_000 of notional per block (10 lots at 9_200); the fund takes the slices.
    After the price 9_200, alice loses 10 lots a block while the submission is fresh. Once
    LIQ-PERP is stale she is still under maintenance but nothing happens (her only position is
    frozen, no AccountLiquidated); a fresh price of 9_200 resumes the liquidation."""
    s = liq_scenario(
        fund_quote=1_000_000,
        oracle_staleness_ms=1_000,
        liquidation_max_notional_per_block_quote=92_000,
    )
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_200)
    assert [p.slice_lots for p in risk_of(out, PositionLiquidated)] == [10]
    while not oracle.is_stale(s.state, 1):
        out = s.block()
    assert not risk_of(out, AccountLiquidated)
    frozen = size_of(s, "alice")
    assert 0 < frozen < 100
    risk = get_account_risk(s.state, s.addr("alice"))
    assert risk.equity_quote < risk.maintenance_quote
    out = s.block()
    assert not risk_of(out, AccountLiquidated) and size_of(s, "alice") == frozen
    out = move(s, 9_200)
    assert not oracle.is_stale(s.state, 1)
    assert liquidated(s, out) == ["alice"] and size_of(s, "alice") == frozen - 10
    return s


@vector("liq_stale_market_position_frozen_other_market_liquidated")
def _() -> Scenario:
    """alice is long 50 LIQ and 50 LQB; staleness 1 s. LQB gets one price in the first block
    and then none, so it goes stale (its position still counts at its last mark); LIQ falls 5%
    a block, taking her under maintenance: only her LIQ position is liquidated, the stale LQB
    position is frozen."""
    s = liq_scenario(markets=(LIQ, LIQ2), oracle_staleness_ms=1_000)
    s.block(
        [
            s.place("bob", 1, False, 10_000, 50),
            s.place("bob", 2, False, 10_000, 50),
            s.place("alice", 1, True, 10_000, 50),
            s.place("alice", 2, True, 10_000, 50),
            s.place("carol", 1, True, 8_000, 100),
        ],
        [s.price(1, 10_000), s.price(2, 10_000)],
        status=[0, 0, 0, 0, 0],
    )
    for _ in range(5):
        move(s, 10_000)
    assert oracle.is_stale(s.state, 2) and not oracle.is_stale(s.state, 1)
    for price in (9_500, 9_025, 8_574, 8_145):
        out = move(s, price)
        if liquidated(s, out):
            break
    assert liquidated(s, out) == ["alice"]
    assert oracle.is_stale(s.state, 2)
    assert [p.market_id for p in risk_of(out, PositionLiquidated)] == [1]
    assert size_of(s, "alice", 2) == 50 and size_of(s, "alice", 1) < 50
    return s


@vector("liq_funding_settled_before_the_transfer")
def _() -> Scenario:
    """HI-PERP with a funding tick every second at 500 ppm (the interest, clamped): alice (long
    100) owes ceil(100 * 500 * 10_000 / 1e6) = 500 and bob receives 500 at the tick; at 9_500
    alice is bankrupt and her lots are deleveraged against bob: the transfer settles each
    side's funding first (PositionChanged.funding_quote 500 and -500)."""
    s = liq_scenario(21_000, markets=(HI,), funding_interval_ms=1_000, funding_interest_ppm=500)
    alice_long_100(s)
    tick = run_to_tick(s)
    assert tick.rate_ppm == 500
    out = move(s, 9_500)
    changed = {
        e.account: e.funding_quote for e in out.block_events.risk if isinstance(e, PositionChanged)
    }
    assert changed == {s.addr("alice"): 500, s.addr("bob"): -500}, changed
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos.equity_share_quote == -29_900 and pos.adl_lots == 100
    return s


TIERED = msgspec.structs.replace(LIQ, margin_tiers=(MarginTier(500_000, 200_000, 100_000),))
"""LIQ-PERP with one tier: notional above 500_000 needs 20% initial, 10% maintenance."""


@vector("margin_tiers_initial_requirement_refuses_order")
def _() -> Scenario:
    """TIERED: alice (160_000) buys 100 lots at 10_000 (1_000_000 of notional): her initial
    requirement is 500_000 * 10% + 500_000 * 20% = 150_000, not the flat 100_000. Her free
    collateral is 159_600 - 150_000 = 9_600, so a bid of 10 lots (reserving 10_040) fails with
    INSUFFICIENT_MARGIN; one of 9 lots (9_036) is placed."""
    s = liq_scenario(160_000, markets=(TIERED,))
    alice_long_100(s)
    risk = get_account_risk(s.state, s.addr("alice"))
    assert (risk.initial_quote, risk.maintenance_quote) == (150_000, 75_000)
    assert risk.initial_quote == margin.compute_requirement(
        1_000_000, 100_000, TIERED.margin_tiers, True
    )
    s.block(
        [s.place("alice", 1, True, 9_000, 10), s.place("alice", 1, True, 9_000, 9)],
        status=[E.INSUFFICIENT_MARGIN, 0],
    )
    return s


@vector("margin_tiers_liquidation_threshold")
def _() -> Scenario:
    """TIERED, alice (160_000) long 100 at 10_000. At 9_025 her equity is 62_100: above the flat
    maintenance (45_125) but below the tiered one, 500_000 * 5% + 402_500 * 10% = 65_250: she
    is liquidated, and the event's maintenance is the tiered figure."""
    s = liq_scenario(160_000, markets=(TIERED,), fund_quote=1_000_000)
    alice_long_100(s)
    assert not liquidated(s, move(s, 9_500))
    out = move(s, 9_025)
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote) == (62_100, 65_250)
    assert acct.maintenance_quote == margin.compute_requirement(
        902_500, 50_000, TIERED.margin_tiers, False
    )
    assert acct.equity_quote >= 902_500 * 50_000 // 1_000_000
    return s


@vector("margin_tiers_equity_share_by_tiered_maintenance")
def _() -> Scenario:
    """alice (220_000) is long 100 TIERED (market 1) and 50 LQB (market 2, flat). At 9_025 in
    both, each slice's equity share is her equity times its position's maintenance (tiered for
    market 1: 65_250; flat for market 2: 22_563) over her total."""
    s = liq_scenario(220_000, markets=(TIERED, LIQ2), fund_quote=1_000_000)
    s.block(
        [
            s.place("bob", 1, False, 10_000, 100),
            s.place("bob", 2, False, 10_000, 50),
            s.place("alice", 1, True, 10_000, 100),
            s.place("alice", 2, True, 10_000, 50),
        ],
        status=[0, 0, 0, 0],
    )
    s.block([], [s.price(1, 9_500), s.price(2, 9_500)])
    out = s.block([], [s.price(1, 9_025), s.price(2, 9_025)])
    (acct,) = risk_of(out, AccountLiquidated)
    assert acct.maintenance_quote == 65_250 + 22_563
    p1, p2 = risk_of(out, PositionLiquidated)
    for pos, maint in ((p1, 65_250), (p2, 22_563)):
        assert pos.equity_share_quote == liquidation.compute_equity_share(
            acct.equity_quote, maint, acct.maintenance_quote, pos.slice_lots, pos.size_before_lots
        )
    return s


OI_CAPPED = msgspec.structs.replace(LIQ, max_open_interest_lots=150)


def alice_long_100_capped(s: Scenario) -> None:
    """bob rests a sell of 100, then alice takes it: the cap counts every admitted order that is
    not reduce-only, both sides, so one block with both orders would count 200."""
    s.block([s.place("bob", 1, False, 10_000, 100)], status=[0])
    s.block([s.place("alice", 1, True, 10_000, 100)], status=[0])
    assert clearing.get_open_interest(s.state, 1) == 100


@vector("oi_cap_single_order_refused_open_interest_cap")
def _() -> Scenario:
    """LIQ-PERP capped at 150 lots of open interest; alice is long 100 (open interest 100).
    carol's bid of 60 would pass the cap (100 + 60 > 150): OPEN_INTEREST_CAP; a bid of 50
    reaches it exactly and is placed."""
    s = liq_scenario(markets=(OI_CAPPED,))
    alice_long_100_capped(s)
    assert clearing.get_open_interest(s.state, 1) == 100
    s.block(
        [s.place("carol", 1, True, 9_000, 60), s.place("carol", 1, True, 9_000, 50)],
        status=[E.OPEN_INTEREST_CAP, 0],
    )
    return s


@vector("oi_cap_counts_orders_admitted_earlier_in_the_block")
def _() -> Scenario:
    """Cap 150, open interest 100: carol's bid of 30 is admitted; dave's ask of 30 in the same
    block would take the admitted total to 160: OPEN_INTEREST_CAP."""
    s = liq_scenario(markets=(OI_CAPPED,))
    alice_long_100_capped(s)
    s.block(
        [s.place("carol", 1, True, 9_000, 30), s.place("dave", 1, False, 11_000, 30)],
        status=[0, E.OPEN_INTEREST_CAP],
    )
    return s


@vector("oi_cap_bulk_order_refused_with_reason")
def _() -> Scenario:
    """Cap 150, open interest 100: a BulkPlace of carol's with bids of 40 and 20: the first is
    placed, the second refused with OrderReason.OPEN_INTEREST_CAP (the transaction succeeds;
    refusals at admission are reported before the placements)."""
    s = liq_scenario(markets=(OI_CAPPED,))
    alice_long_100_capped(s)
    bulk = BulkPlace(
        (
            PlaceOrder(1, True, 9_000, 40, GTC, False, 1),
            PlaceOrder(1, True, 9_000, 20, GTC, False, 2),
        )
    )
    s.block(
        [s.tx("carol", bulk)],
        status=[0],
        updates=[[(REJECTED, R.OPEN_INTEREST_CAP), (OPEN, R.NONE)]],
    )
    return s


@vector("oi_cap_reduce_only_allowed_at_the_cap")
def _() -> Scenario:
    """Cap 100, open interest 100 (alice long 100 from bob): carol's new bid is refused, but
    alice's reduce-only sell of 30 and bob's reduce-only buy of 30 are placed and trade: open
    interest falls to 70."""
    s = liq_scenario(markets=(msgspec.structs.replace(LIQ, max_open_interest_lots=100),))
    alice_long_100_capped(s)
    s.block(
        [
            s.place("carol", 1, True, 9_000, 1),
            s.place("alice", 1, False, 10_000, 30, GTC, True),
            s.place("bob", 1, True, 10_000, 30, GTC, True),
        ],
        status=[E.OPEN_INTEREST_CAP, 0, 0],
    )
    assert clearing.get_open_interest(s.state, 1) == 70
    return s


@vector("liq_at_the_oi_cap_liquidation_still_closes")
def _() -> Scenario:
    """Cap 100, open interest 100: new orders are refused, but a liquidation only reduces: at
    9_200 alice's 100 lots are deleveraged against bob (the fund has no capital) and open
    interest goes to 0."""
    s = liq_scenario(
        markets=(msgspec.structs.replace(LIQ, max_open_interest_lots=100),), liquidation_fee_ppm=0
    )
    alice_long_100_capped(s)
    s.block([s.place("carol", 1, True, 9_000, 1)], status=[E.OPEN_INTEREST_CAP])
    move(s, 9_500)
    out = move(s, 9_200)
    assert liquidated(s, out) == ["alice"]
    assert clearing.get_open_interest(s.state, 1) == 0
    return s


@vector("liq_equity_equal_to_maintenance_not_liquidated")
def _() -> Scenario:
    """alice (107_400) long 100: at 9_400 her equity is 107_000 - 60_000 = 47_000, exactly her
    maintenance: not liquidated. At 9_399 it is 46_900 < 46_995: liquidated."""
    s = liq_scenario(107_400)
    alice_long_100(s)
    move(s, 9_500)
    out = move(s, 9_400)
    risk = get_account_risk(s.state, s.addr("alice"))
    assert risk.equity_quote == risk.maintenance_quote == 47_000
    assert not liquidated(s, out)
    out = move(s, 9_399)
    (acct,) = risk_of(out, AccountLiquidated)
    assert (acct.equity_quote, acct.maintenance_quote) == (46_900, 46_995)
    return s


@vector("liq_fills_pay_no_taker_fee_and_no_maker_rebate")
def _() -> Scenario:
    """Fee tiers with a maker rebate (-100 ppm) and a 400 ppm taker fee: carol's bid filled by a
    liquidation gets no rebate (maker fee 0) and alice pays no taker fee; the fee pool does not
    move in the risk phase."""
    s = liq_scenario(fee_tiers=(FeeTier(0, -100, 400),))
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_300, 60)], status=[0])
    move(s, 9_500)
    pool = clearing.get_fee_pool(s.state)
    out = move(s, 9_340)
    (fill,) = [e for e in out.block_events.risk if isinstance(e, FillEvent)]
    assert (fill.maker_fee_quote, fill.taker_fee_quote) == (0, 0)
    assert clearing.get_fee_pool(s.state) == pool
    return s


@vector("liq_most_under_water_first_takes_the_book")
def _() -> Scenario:
    """alice (110_000) and erin (112_000) are both long 100; at 9_200 alice's ratio (29_600 /
    46_000) is lower than erin's (31_600 / 46_000), so she is liquidated first and sells her
    100 lots into carol's bid of 100 at 9_100; erin finds the book empty, and the fund (1_000_000)
    takes her 100 lots."""
    s = liq_scenario(names=(*LIQ_NAMES, "erin"), balances={"erin": 112_000}, fund_quote=1_000_000)
    s.block(
        [
            s.place("bob", 1, False, 10_000, 200),
            s.place("erin", 1, True, 10_000, 100),
            s.place("alice", 1, True, 10_000, 100),
        ],
        status=[0, 0, 0],
    )
    s.block([s.place("carol", 1, True, 9_100, 100)], status=[0])
    move(s, 9_500)
    out = move(s, 9_200)
    assert liquidated(s, out) == ["alice", "erin"]
    p_alice, p_erin = risk_of(out, PositionLiquidated)
    assert (p_alice.book_lots, p_erin.book_lots, p_erin.backstop_lots) == (100, 0, 100)
    return s


@vector("liq_position_liquidated_event_every_field")
def _() -> Scenario:
    """Every field of one PositionLiquidated, by hand (HI-PERP bankruptcy with a fund of
    1_000_000 and a per-account fund-loss limit of 50_000; carol bids 30 at 9_800, above the
    bankruptcy price 9_794): mark = index = 9_500, size 100, wanted 100 of a budget of 10^13,
    share -29_400, value 979_400, limit 9_794; the book takes 30 at 9_800 (294_000, fee 1_470
    at 0.5%); the fund takes 70 at 950_000 * 70/100 ... = 665_000 + 20_580 = 685_580 with a
    loss of 20_580 (share * 70 // 100) out of 50_000; no ADL."""
    s = liq_scenario(
        21_000, markets=(HI,), fund_quote=1_000_000, insurance_max_loss_per_account_quote=50_000
    )
    alice_long_100(s)
    s.block([s.place("carol", 1, True, 9_800, 30)], status=[0])
    out = move(s, 9_500)
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos == PositionLiquidated(
        s.addr("alice"),
        1,
        9_500,
        9_500,
        100,
        100,
        10_000_000_000_000,
        100,
        -29_400,
        979_400,
        9_794,
        30,
        294_000,
        0,
        70,
        685_580,
        20_580,
        50_000,
        0,
        0,
    ), pos
    return s


@vector("liq_holders_registry_and_open_interest_follow_liquidations")
def _() -> Scenario:
    """The holders registry lists exactly the accounts with a position, and open interest is
    the sum of longs, through a backstop (the fund joins the registry), the fund's unwinding and
    a full close (alice leaves it)."""
    s = liq_scenario(fund_quote=1_000_000)

    def holders() -> set[bytes]:
        found = clearing.get_holders(s.state)
        assert len(set(found)) == len(found)
        return set(found)

    alice_long_100(s)
    assert holders() == {s.addr("alice"), s.addr("bob")}
    move(s, 9_500)
    move(s, 9_200)
    assert holders() == {s.addr("bob"), FUND}
    assert clearing.get_open_interest(s.state, 1) == 100
    s.block([s.place("carol", 1, True, 9_300, 100)], status=[0])
    assert holders() == {s.addr("bob"), s.addr("carol")}
    assert clearing.get_open_interest(s.state, 1) == 100
    return s


@vector("liq_adl_short_bankrupt_against_longs_by_rank")
def _() -> Scenario:
    """The mirror case: alice (21_000) shorts 100 HI lots at 10_000 to bob (60, deep account)
    and carol (40, 60_000 of cash); the price rises 5% to 10_500: her equity is negative, the
    fund has no capital, and the longs sell her the 100 lots back at the bankruptcy value
    (below the mark: they bear her loss): carol, more levered, first, then bob."""
    s = liq_scenario(21_000, markets=(HI,), balances={"carol": 60_000})
    s.block(
        [
            s.place("alice", 1, False, 10_000, 100),
            s.place("bob", 1, True, 10_000, 60),
            s.place("carol", 1, True, 10_000, 40),
        ],
        status=[0, 0, 0],
    )
    out = move(s, 10_500)
    (pos,) = risk_of(out, PositionLiquidated)
    assert pos.equity_share_quote < 0 and pos.bankruptcy_value_quote < 100 * 10_500
    dls = risk_of(out, Deleveraged)
    assert [(d.counterparty, d.size_lots) for d in dls] == [
        (s.addr("carol"), 40),
        (s.addr("bob"), 60),
    ]
    assert sum(d.value_quote for d in dls) == pos.bankruptcy_value_quote
    return s


# =============================================================================================
# Writing and checking
# =============================================================================================


def generate() -> dict[str, str]:
    """Every vector's file text, by file name."""
    out: dict[str, str] = {}
    for name, fn in SCENARIOS.items():
        description = " ".join((fn.__doc__ or "").split())
        out[f"{name}.json"] = dump_vector(fn().to_vector(description))
    return out


def check() -> list[str]:
    """Problems: files that differ from, are missing from, or are not produced by the
    generator."""
    expected = generate()
    on_disk = {p.name: p for p in iter_vector_paths()}
    problems = [f"missing: {n}" for n in sorted(expected.keys() - on_disk.keys())]
    problems += [f"stale (no scenario): {n}" for n in sorted(on_disk.keys() - expected.keys())]
    for name in sorted(expected.keys() & on_disk.keys()):
        if on_disk[name].read_text() != expected[name]:
            problems.append(f"differs: {name}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if any file differs")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(problem)
        print(f"{len(SCENARIOS)} vectors, {len(problems)} problems")
        return 1 if problems else 0
    VECTOR_DIR.mkdir(parents=True, exist_ok=True)
    files = generate()
    for path in iter_vector_paths():
        if path.name not in files:
            path.unlink()
    for name, text in files.items():
        (VECTOR_DIR / name).write_text(text)
    print(f"wrote {len(files)} vectors to {VECTOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

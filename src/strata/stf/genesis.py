"""Genesis: the first state and header, from a configuration record."""

from __future__ import annotations

import msgspec

from strata.core.ordered_merkle import compute_ordered_root
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
from strata.modules.book import Book
from strata.modules.markets import Market
from strata.state.store import ChainTip, State
from strata.stf.block import Header, compute_header_hash
from strata.stf.params import ChainParams, check_chain_params
from strata.stf.state_root import compute_state_root


class Allocation(msgspec.Struct, frozen=True, array_like=True):
    """Quote credited to an account at genesis (counted as a deposit)."""

    account: bytes
    amount_quote: int


class InitialPrice(msgspec.Struct, frozen=True, array_like=True):
    market_id: int
    price_ticks: int


class GenesisConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the first state is made of."""

    params: ChainParams
    timestamp_ms: int
    markets: tuple[Market, ...]
    allocations: tuple[Allocation, ...] = ()
    prices: tuple[InitialPrice, ...] = ()


def new_empty_state() -> State:
    """A state with every module's tables and no content."""
    state = State()
    accounts.register_tables(state)
    markets.register_tables(state)
    oracle.register_tables(state)
    collateral.register_tables(state)
    margin.register_tables(state)
    clearing.register_tables(state)
    funding.register_tables(state)
    liquidation.register_tables(state)
    triggers.register_tables(state)
    return state


def make_genesis(config: GenesisConfig) -> tuple[State, Header]:
    """Build the genesis state and header (height 0, empty transactions and receipts).

    Raises
    ------
    InvalidBlock
        ``MALFORMED_BLOCK`` for invalid parameters; ``InvalidTransaction`` ``BAD_AMOUNT`` for
        an invalid market listing.
    """
    check_chain_params(config.params)
    state = new_empty_state()
    for market in sorted(config.markets, key=lambda m: m.market_id):
        markets.list_market(state, market)
        state.books[market.market_id] = Book(market.market_id, market.max_open_orders_per_account)
    for allocation in config.allocations:
        collateral.credit_genesis(state, allocation.account, allocation.amount_quote)
    for price in config.prices:
        oracle.set_genesis_price(state, price.market_id, price.price_ticks)
    empty = compute_ordered_root(())
    header = Header(
        chain_id=config.params.chain_id,
        height=0,
        parent_hash=b"\x00" * 32,
        timestamp_ms=config.timestamp_ms,
        gas_used=0,
        state_root=compute_state_root(state),
        transactions_root=empty,
        receipts_root=empty,
        withdrawals_root=empty,
    )
    state.tip = ChainTip(0, config.timestamp_ms, compute_header_hash(header))
    return state, header

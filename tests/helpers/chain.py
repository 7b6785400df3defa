"""Build signed transactions and small chains for tests (ring 2: signs with real keys)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from strata.client.signing import AgentKey, Wallet, agent_from_seed, wallet_from_seed
from strata.core.signatures import compute_transaction_digest
from strata.modules.markets import Market
from strata.state.store import State
from strata.stf.block import Block, BlockOutput
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis
from strata.stf.params import ChainParams
from strata.stf.transactions import (
    Action,
    OracleObservation,
    OraclePrice,
    SignedTransaction,
    SystemInput,
    encode_action,
    encode_transaction,
)
from strata.stf.transition import build_block

CHAIN_ID = 7777
GENESIS_MS = 1_700_000_000_000
BLOCK_MS = 200

BTC = Market(
    market_id=1,
    symbol="BTC-PERP",
    quote_per_tick_lot=10,
    min_size_lots=1,
    max_size_lots=10_000_000,
    max_price_ticks=10_000_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=50,
)
ETH = Market(
    market_id=2,
    symbol="ETH-PERP",
    quote_per_tick_lot=1,
    min_size_lots=10,
    max_size_lots=100_000_000,
    max_price_ticks=1_000_000_000,
    initial_margin_ppm=50_000,
    maintenance_margin_ppm=30_000,
    max_open_orders_per_account=50,
)


def sign(
    wallet: Wallet,
    action: Action,
    nonce: int,
    params: ChainParams,
    agent: AgentKey | None = None,
    account: bytes | None = None,
) -> bytes:
    """Canonical bytes of ``action`` signed by ``wallet`` (or by ``agent`` for ``account``)."""
    who = account if account is not None else wallet.address
    digest = compute_transaction_digest(
        params.chain_id, params.bridge_address, who, nonce, encode_action(action)
    )
    if agent is None:
        tx = SignedTransaction(who, nonce, action, None, wallet.sign_digest(digest))
    else:
        tx = SignedTransaction(who, nonce, action, agent.public_key, agent.sign_digest(digest))
    return encode_transaction(tx)


def sign_price(
    oracle: Wallet, market_id: int, price_ticks: int, ts: int, params: ChainParams
) -> OraclePrice:
    digest = compute_transaction_digest(
        params.chain_id,
        params.bridge_address,
        oracle.address,
        ts,
        encode_action(OracleObservation(market_id, price_ticks, ts)),  # type: ignore[arg-type]
    )
    return OraclePrice(market_id, price_ticks, ts, oracle.address, oracle.sign_digest(digest))


@dataclass
class Chain:
    """A chain under test: the state, its params, the wallets, and a clock for nonces."""

    state: State
    params: ChainParams
    wallets: dict[str, Wallet]
    oracle: Wallet
    now_ms: int = GENESIS_MS
    nonce_clock: int = GENESIS_MS
    blocks: list[tuple[Block, BlockOutput]] = field(default_factory=list)
    genesis: GenesisConfig | None = None
    """The genesis the chain started from (what a verifier is given)."""

    def nonce(self) -> int:
        self.nonce_clock += 1
        return self.nonce_clock

    def tx(self, who: str, action: Action, nonce: int | None = None, **kw: object) -> bytes:
        return sign(
            self.wallets[who], action, self.nonce() if nonce is None else nonce, self.params, **kw
        )  # type: ignore[arg-type]

    def addr(self, who: str) -> bytes:
        return self.wallets[who].address

    def approve(self, who: str, agent: AgentKey, valid_until_ms: int) -> bytes:
        """``who``'s wallet approves ``agent`` (with the agent's consent) until the given time."""
        action = agent.approve_for(self.addr(who), valid_until_ms, self.params.chain_id)
        return self.tx(who, action)

    def block(self, txs: Sequence[bytes] = (), system: Sequence[SystemInput] = ()) -> BlockOutput:
        self.now_ms += BLOCK_MS
        block, output = build_block(self.state, self.now_ms, system, txs, self.params)
        self.blocks.append((block, output))
        return output

    def price(self, market_id: int, price_ticks: int) -> OraclePrice:
        return sign_price(self.oracle, market_id, price_ticks, self.now_ms + 1, self.params)


def make_chain(
    names: Sequence[str] = ("alice", "bob", "carol"),
    balance_quote: int = 1_000_000_000_000,
    markets: Sequence[Market] = (BTC, ETH),
    prices: Sequence[tuple[int, int]] = ((1, 500_000), (2, 30_000)),
    **param_overrides: object,
) -> Chain:
    wallets = {name: wallet_from_seed(name) for name in names}
    oracle = wallet_from_seed("oracle")
    params = ChainParams(chain_id=CHAIN_ID, oracle_keys=(oracle.address,), **param_overrides)  # type: ignore[arg-type]
    config = GenesisConfig(
        params=params,
        timestamp_ms=GENESIS_MS,
        markets=tuple(markets),
        allocations=tuple(Allocation(w.address, balance_quote) for w in wallets.values()),
        prices=tuple(InitialPrice(m, p) for m, p in prices),
    )
    state, _ = make_genesis(config)
    return Chain(state, params, wallets, oracle, genesis=config)


__all__ = ["agent_from_seed", "make_chain", "sign"]

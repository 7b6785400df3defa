"""A deterministic chain for storage tests: block ``h`` depends only on ``h`` (not on timing or
on what crashed before), so a killed and restarted writer produces the very same chain."""

from __future__ import annotations

import random

from strata.client.signing import Wallet, wallet_from_seed
from strata.modules.markets import Market
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice
from strata.stf.params import ChainParams
from strata.stf.transactions import CancelAll, PlaceOrder, Withdraw
from tests.helpers.chain import sign

GENESIS_MS = 1_700_000_000_000
BLOCK_MS = 200
MARKET = Market(
    market_id=1,
    symbol="BTC-PERP",
    quote_per_tick_lot=10,
    min_size_lots=1,
    max_size_lots=1_000_000,
    max_price_ticks=10_000_000,
    initial_margin_ppm=50_000,
    maintenance_margin_ppm=30_000,
    max_open_orders_per_account=200,
)
NAMES = [f"trader-{i}" for i in range(8)]
WALLETS: list[Wallet] = [wallet_from_seed(name) for name in NAMES]
PARAMS = ChainParams(chain_id=99)
GENESIS = GenesisConfig(
    params=PARAMS,
    timestamp_ms=GENESIS_MS,
    markets=(MARKET,),
    allocations=tuple(Allocation(w.address, 10**13) for w in WALLETS),
    prices=(InitialPrice(1, 100_000),),
)


def block_time(height: int) -> int:
    return GENESIS_MS + height * BLOCK_MS


def block_transactions(height: int, count: int = 12) -> list[bytes]:
    """The transactions of block ``height``: orders around the mark, a cancel-all now and then,
    a small withdrawal now and then; nonces derive from the height."""
    rng = random.Random(height)
    txs: list[bytes] = []
    for i in range(count):
        who = rng.randrange(len(WALLETS))
        wallet = WALLETS[who]
        nonce = block_time(height) + i
        roll = rng.random()
        if roll < 0.05:
            action: object = CancelAll(1)
        elif roll < 0.08:
            action = Withdraw(1_000, wallet.address)
        else:
            is_buy = rng.random() < 0.5
            price = 100_000 + rng.randint(-20, 20)
            tif = rng.choice((0, 0, 1, 3))
            action = PlaceOrder(1, is_buy, price, rng.randint(1, 20), tif)
        txs.append(sign(wallet, action, nonce, PARAMS))  # type: ignore[arg-type]
    return txs

"""The node's configuration and its genesis file.

``DATA_DIR/genesis.json`` holds the chain's :class:`GenesisConfig` (consensus) and each market's
display units (``tick_size``, ``lot_size``; ring 2, see ``client/markets.py``). A node started on an
existing data directory reads it back and refuses one that does not match its chain database.

``strata node --config FILE`` reads a JSON :class:`NodeConfig`; ``strata devnet`` builds one from
its flags and :func:`devnet_genesis`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Final

import msgspec

from strata.client.markets import MarketInfo
from strata.client.signing import wallet_from_seed
from strata.modules.collateral import INSURANCE_FUND_ACCOUNT
from strata.modules.markets import Market
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice
from strata.stf.params import ChainParams

DEVNET_CHAIN_ID: Final = 31_337
DEVNET_ORACLE_SEED: Final = "strata-devnet-oracle"
"""The devnet oracle key's seed label: devnet only (anyone can derive it)."""


class NodeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a node needs besides the genesis (JSON file of ``strata node --config``)."""

    data_dir: str
    genesis_file: str | None = None
    """A genesis JSON (:class:`NodeGenesis`) for a new data directory; ignored when the data
    directory already holds a chain (its own ``genesis.json`` is used and must match)."""
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8545
    """0 picks a free port (printed at start)."""
    block_time_ms: int = 200
    max_block_transactions: int = 20_000
    block_gas_target: Annotated[int, msgspec.Meta(gt=0)] = 10_000_000
    """Base gas the sequencer puts in one block at most (and never more than half the chain's
    ``block_gas_limit``): 10,000 single orders or 625 bulks of 16. With a block every
    ``block_time_ms`` this is the node's capacity (50,000 orders/s at the defaults; a 2-core
    machine under full bulk load includes about 2,700 bulks a second), and a backlog drains as a
    run of blocks of this size. The bound before, half the chain's limit, let a backlog build
    blocks of up to 25,000 orders, and the small-object allocator kept the arenas of their peak
    for good: 73-88 arenas against 55-59 now in the same soak (``docs/node.md``, "Memory")."""
    mempool_capacity_gas: int = 30_000_000
    """Base gas of pending transactions at most (beyond: ``MEMPOOL_FULL``): 30,000 single
    orders, or 1,875 bulks of 16; a few blocks' worth, so a backlog is refused early rather than
    served seconds late, and memory stays bounded."""
    max_body_bytes: int = 256 * 1024
    max_batch_requests: int = 50
    max_batch_transactions: int = 1_000
    max_subscriptions_per_connection: int = 100
    max_connections_per_ip: int = 100
    ip_rate_per_s: int = 200_000
    """Request weight per second per IP (a request weighs 1 + transactions / 40, as
    Hyperliquid's); bursts up to twice this."""
    account_rate_per_s: int = 2_000
    """Transactions per second per account to start with; bursts up to twice this."""
    account_rate_volume_quote: int = 100_000_000_000
    """Traded volume (quote units) that earns an account one more transaction per second."""
    account_rate_max_per_s: int = 20_000
    signature_threads: int = 2
    """Threads of the signature precompile when it runs without processes."""
    signature_processes: int | None = None
    """Worker processes of the signature precompile (``exec/signatures.py``); ``None`` picks
    one per spare core, at most two (none on a one-core machine: threads then); 0 forces
    threads."""
    matching_shards: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Split each block's matching phase by market across this many shards, all but one of
    them worker processes (``exec/parallel.py``; 2 or more; 0 and 1 match in the node's
    process). Off by default: on a two-core machine it measured no faster (``docs/node.md``,
    "Market-sharded matching")."""
    commit_process: bool = False
    """Compute each block's state root in a process of its own (``strata-commit``,
    ``exec/commitment.py``), pipelined with execution: block ``N + 1`` executes while ``N``'s
    root is computed, and ``N`` is sealed, committed and published once its root is in. The
    chain's bytes are the same; a block is acknowledged up to one block later, and state reads
    (accounts, books) may show the block being sealed (their ``height`` says which). Costs a
    second copy of the state tree's nodes in memory. Measured in ``docs/node.md``
    ("Execution pipelined apart from the commitment")."""
    index_process: bool | None = None
    """Index committed blocks in a process of their own (``node/index_worker.py``); ``None``:
    when the machine has more than one core."""
    index_niceness: Annotated[int, msgspec.Meta(ge=0, le=19)] = 10
    """How much lower than the node the index process runs (``nice``, 0 to 19): when more
    processes want a core than there are cores, the node's main thread and the signature
    workers go first, and the index catches up in the gaps (its queue is bounded: production
    waits for it beyond 64 blocks). Measured on two cores under bulk load, six runs each,
    alternating, 10 against 0: the node's main thread busy 88-98% against 85-93% of a core, and
    1.16x the orders included (``docs/node.md``, "Where each core's time goes")."""
    checkpoint_every: int = 8
    """Blocks between the state store's checkpoints (``docs/storage.md``). The blocks since the
    last checkpoint wait in memory as small objects (their changes and tree nodes), and a
    checkpoint in flight lets as many again pile up; CPython's allocator keeps the arenas they
    were spread over. With 16, the soaks of ``strata bench node`` climbed pass after pass
    (+12.4% and +15.7%; 19 blocks and 150,904 changes at the peak, nearly all of them orders
    placed and gone within one block, which the commitment no longer lists); with 8, +7.8%
    then, +7.1% and +4.6% (levelling off) since; with 4, +6.0%, but a slower p50 latency in
    two runs of two (``bench/README.md``). Recovery replays at most this many blocks."""
    retain_heights: int = 64
    """Heights whose state can still be read and proven (``strata_getProof``)."""
    devnet: bool = False
    """Enables ``strata_faucet`` and the devnet oracle feeder. Never on a real chain."""
    demo: bool = False
    """Devnet market-maker and taker bots so the books are alive."""
    exit_after_blocks: int | None = None
    da: str | None = None
    """Where batches are posted: ``file`` (``DATA_DIR/da``), ``file:DIR``, or
    ``ethereum:URL,INBOX_ADDRESS,POSTER_KEY_FILE``; ``None`` posts nothing."""
    da_batch_blocks: int = 50
    da_batch_ms: int = 2_000
    da_max_backlog_blocks: int = 5_000
    """Committed blocks not yet posted at most; beyond, block production pauses."""
    fault_wrong_root_at: int | None = None
    """Test-only fault switch (devnet only): commit a wrong state root at this height, so that
    tests can show the verifier catches it."""

    def resolved_index_process(self) -> bool:
        if self.index_process is not None:
            return self.index_process
        return len(os.sched_getaffinity(0)) > 1

    def resolved_signature_processes(self) -> int:
        if self.signature_processes is not None:
            return max(0, self.signature_processes)
        spare = len(os.sched_getaffinity(0)) - 1
        return max(0, min(2, spare))


class MarketDisplay(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    market_id: int
    tick_size: str
    lot_size: str


class NodeGenesis(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``genesis.json``: the consensus genesis plus the markets' display units."""

    chain: GenesisConfig
    display: tuple[MarketDisplay, ...]

    def market_infos(self) -> dict[int, MarketInfo]:
        """Every market with its display units (``ValueError`` if units do not match)."""
        units = {d.market_id: d for d in self.display}
        infos: dict[int, MarketInfo] = {}
        for market in self.chain.markets:
            shown = units.get(market.market_id)
            if shown is None:
                raise ValueError(f"genesis: market {market.market_id} has no display units")
            infos[market.market_id] = MarketInfo.of(market, shown.tick_size, shown.lot_size)
        return infos


def read_genesis(path: Path) -> NodeGenesis:
    """Load and check a genesis file (``ValueError`` with a readable reason if it is wrong)."""
    try:
        genesis = msgspec.json.decode(path.read_bytes(), type=NodeGenesis)
    except (OSError, msgspec.DecodeError) as error:
        raise ValueError(f"{path}: not a Strata genesis file: {error}") from None
    genesis.market_infos()
    return genesis


def write_genesis(path: Path, genesis: NodeGenesis) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(genesis), indent=2) + b"\n")


def read_config(path: Path) -> NodeConfig:
    try:
        return msgspec.json.decode(path.read_bytes(), type=NodeConfig)
    except (OSError, msgspec.DecodeError) as error:
        raise ValueError(f"{path}: not a node configuration: {error}") from None


DEVNET_FUNDED_SEEDS: Final = tuple(f"devnet-{i}" for i in range(10))
"""Accounts funded at devnet genesis (``wallet_from_seed``): devnet only."""
DEVNET_INSURANCE_FUND_QUOTE: Final = 1_000_000 * 1_000_000
"""The insurance fund's capital at devnet genesis (1,000,000 USDC), so the backstop takes over
what the book cannot absorb instead of deleveraging traders at once."""


def devnet_genesis(timestamp_ms: int) -> NodeGenesis:
    """The devnet's genesis: BTC-PERP and ETH-PERP, ten funded accounts, a capitalized insurance
    fund (:data:`DEVNET_INSURANCE_FUND_QUOTE`), the devnet oracle."""
    btc = Market(
        market_id=1,
        symbol="BTC-PERP",
        quote_per_tick_lot=10,  # tick 0.1 USDC x lot 0.0001 BTC = 1e-5 USDC = 10 units
        min_size_lots=1,
        max_size_lots=10_000_000,
        max_price_ticks=100_000_000,
        initial_margin_ppm=100_000,
        maintenance_margin_ppm=50_000,
        max_open_orders_per_account=1_000,
    )
    eth = Market(
        market_id=2,
        symbol="ETH-PERP",
        quote_per_tick_lot=1,  # tick 0.01 USDC x lot 0.0001 ETH = 1e-6 USDC = 1 unit
        min_size_lots=10,
        max_size_lots=100_000_000,
        max_price_ticks=100_000_000,
        initial_margin_ppm=50_000,
        maintenance_margin_ppm=30_000,
        max_open_orders_per_account=1_000,
    )
    oracle = wallet_from_seed(DEVNET_ORACLE_SEED).address
    params = ChainParams(chain_id=DEVNET_CHAIN_ID, oracle_keys=(oracle,))
    allocations = (
        *(
            Allocation(wallet_from_seed(seed).address, 10_000_000 * 1_000_000)
            for seed in DEVNET_FUNDED_SEEDS
        ),
        Allocation(INSURANCE_FUND_ACCOUNT, DEVNET_INSURANCE_FUND_QUOTE),
    )
    chain = GenesisConfig(
        params=params,
        timestamp_ms=timestamp_ms,
        markets=(btc, eth),
        allocations=allocations,
        prices=(InitialPrice(1, 600_000), InitialPrice(2, 300_000)),  # 60,000 and 3,000 USDC
    )
    display = (
        MarketDisplay(market_id=1, tick_size="0.1", lot_size="0.0001"),
        MarketDisplay(market_id=2, tick_size="0.01", lot_size="0.0001"),
    )
    return NodeGenesis(chain=chain, display=display)

"""The sequencer node: admission, ordering, execution and commit, as resumable stages.

Stages and their checkpoints (ARCHITECTURE.md, "The node"):

- **admit**: decode and size-check, verify signatures on a thread pool, pre-check nonce, market,
  fee and authority against the committed state, rate-limit, and append to the mempool and its
  journal (``DATA_DIR/mempool.log``). The caller gets the transaction hash at once.
- **order**: an :class:`OrderingPolicy` (arrival order by default) picks the next block's
  transactions, within a base-gas budget of half the block gas limit (the other half is for
  matching work, which is metered only as it happens).
- **execute**: ``build_block`` on the committed state; invalid transactions are left out with
  their code.
- **commit**: ``ChainStore.commit_block``: one durable LMDB transaction. Only then are the
  transactions reported *included*, the mempool trimmed, the indexes (``DATA_DIR/index``) and the
  feeds updated.

On restart every stage resumes from its checkpoint: the chain store recovers the last acknowledged
block; the index re-indexes blocks above its own tip; the mempool journal is re-admitted minus what
blocks hold. ``kill -9`` at any point loses only pending transactions' journal tail still in the
process (none after ``flush``), and never an included one.

Everything runs on one asyncio event loop (execution and commit included, so requests never see a
half-applied block); only signature checks run on threads (PyNaCl and coincurve release the GIL).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

from strata.adapters.chain_store import ChainStore, StoreError
from strata.adapters.lifetime import (
    collector_paused,
    start_commitment_process,
    start_sharded_matching,
    start_signature_pool,
)
from strata.adapters.memory import TRIM_EVERY_BLOCKS, release_free_memory, release_mapped_pages
from strata.client.errors import RpcCode, RpcError
from strata.client.markets import MarketInfo
from strata.client.signing import Wallet, wallet_from_seed
from strata.core.errors import ErrorCode, InvalidBlock, InvalidTransaction
from strata.core.signatures import compute_transaction_digest
from strata.exec.commitment import CommitmentProcess, CommitmentWorkerDied
from strata.exec.parallel import MatchingWorkerDied
from strata.exec.signatures import joined
from strata.modules import accounts, clearing, collateral, markets, oracle
from strata.node.config import (
    DEVNET_ORACLE_SEED,
    NodeConfig,
    NodeGenesis,
    read_genesis,
    write_genesis,
)
from strata.node.conflicts import report_block
from strata.node.feeds import REBUILD_BLOCKS, BookViews, Feeds
from strata.node.index import IndexHints, NodeIndex
from strata.node.index_worker import IndexWorker
from strata.node.mempool import ArrivalOrder, Mempool, OrderingPolicy, PendingTx
from strata.node.metrics import NodeMetrics
from strata.node.posting import DaPoster
from strata.state.store import ChainTip, State
from strata.stf.block import Block, BlockOutput, compute_header_hash
from strata.stf.commitment import IncrementalCommitment
from strata.stf.transactions import (
    CANCEL_ACTIONS,
    MAX_TRANSACTION_BYTES,
    Deposit,
    OracleObservation,
    OraclePrice,
    SignedTransaction,
    SystemInput,
    compute_transaction_hash,
    decode_transaction,
    encode_action,
    placements_of,
)
from strata.stf.transition import (
    UnsealedBlock,
    build_block,
    check_authority,
    check_signature,
    compute_base_gas,
    execute_block,
    seal_block,
)

log = logging.getLogger("strata.node")
REFUSALS_KEPT = 100_000
TRANSIENT_REFUSALS = frozenset({RpcCode.MEMPOOL_FULL, RpcCode.RATE_LIMITED, RpcCode.SHUTTING_DOWN})
"""Refusals that say nothing about the transaction (the node is busy: the same bytes may be
accepted a moment later), so they are not kept as its status: it reads as unknown, as it would
on any other node. Keeping them also made the node's memory climb under a sustained overload
(14,475 new refusals over four passes of the ``strata bench node`` plan, all ``MEMPOOL_FULL``)."""
ADMITTING_REQUESTS = 16
"""Submissions decoded and checked at once; the next wait with their raw bytes only. Under an
overload the requests waiting for the signature workers held their decoded transactions (about
50 small objects for a bulk), more of them than the mempool. 4 throttled single orders (10,153
and 11,009 tx/s included of 12,000 offered, against 11,900 and 11,847 with 16): a slot is held
until the main thread, busy with a block, inserts the request's transactions."""
LATENCY_SAMPLES = 64
"""Inclusion latencies observed per block (evenly spread over its transactions)."""


class TokenBucket:
    """``rate`` tokens per second, at most ``2 * rate`` saved up."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = 2 * rate
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self, amount: float) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < amount:
            return False
        self.tokens -= amount
        return True


class RateLimiter:
    """Token buckets by key (IP or account), forgetting idle keys so memory stays bounded."""

    def __init__(self, rate: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: dict[Any, TokenBucket] = {}

    def allow(self, key: Any, amount: float = 1.0, rate: float | None = None) -> bool:
        """Take ``amount`` tokens from ``key``'s bucket; ``rate`` (if given) is this key's own
        rate, which may grow over time (an account's budget grows with its traded volume)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                full = [k for k, b in self._buckets.items() if b.tokens >= b.capacity]
                for k in full or list(self._buckets)[: self.max_keys // 2]:
                    del self._buckets[k]
            bucket = self._buckets[key] = TokenBucket(self.rate if rate is None else rate)
        elif rate is not None and rate != bucket.rate:
            bucket.rate = rate
            bucket.capacity = 2 * rate
        return bucket.take(amount)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _PostState:
    """What publishing a block reads of its post-state, taken while the state still is it (a
    block whose commitment is pipelined is published after the next one has executed)."""

    hints: IndexHints
    books: BookViews


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A block executed and waiting for its state root from the commitment process."""

    unsealed: UnsealedBlock
    changes: dict[bytes, bytes | None]
    chosen: list[PendingTx]
    decoded: list[SignedTransaction]
    post: _PostState
    hashes: frozenset[bytes]
    deposits: frozenset[int]
    started: float
    built: float


class Node:
    """A running sequencer over one data directory (see the module docstring)."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: NodeGenesis,
        store: ChainStore,
        policy: OrderingPolicy | None = None,
    ) -> None:
        self.config = config
        self.genesis = genesis
        self.store = store
        self.params = store.params
        self.markets: dict[int, MarketInfo] = genesis.market_infos()
        self._market_ids = sorted(self.markets)
        self._had_pending = False
        data_dir = Path(config.data_dir)
        self.index = NodeIndex(data_dir / "index")
        self.indexer: IndexWorker | None = None
        """The index process, once the node has resumed (``None``: indexing in this process)."""
        self._unindexed: dict[bytes, int] = {}
        """Hashes of transactions in committed blocks the index process may not hold yet."""
        self._unindexed_blocks: deque[tuple[int, list[bytes]]] = deque()
        """The same hashes by block, oldest first (dropped as the index process's tip passes)."""
        self.mempool = Mempool(data_dir / "mempool.log", config.mempool_capacity_gas)
        self.policy: OrderingPolicy = policy or ArrivalOrder()
        self.feeds = Feeds(self.markets)
        self.metrics = NodeMetrics()
        self.signatures = start_signature_pool(
            config.resolved_signature_processes(), config.signature_threads
        )
        self.signatures.start()
        self.matching = start_sharded_matching(config.matching_shards)
        self.committer: CommitmentProcess | None = None
        """The commitment process (``commit_process``), started once the node has resumed."""
        self._in_flight: _InFlight | None = None
        """The block executed and waiting for its root (only with the commitment process)."""
        self._matching_seconds: dict[str, float] = {}
        """``self.matching.seconds`` as last exported to the metrics."""
        self.ip_limits = RateLimiter(config.ip_rate_per_s)
        self.account_limits = RateLimiter(config.account_rate_per_s)
        self.faucet_queue: list[Deposit] = []
        self.stopping = False
        self.blocks_produced = 0
        self.last_block_at = time.monotonic()
        self.oracle: Wallet | None = wallet_from_seed(DEVNET_ORACLE_SEED) if config.devnet else None
        self._oracle_prices: dict[int, int] = {}
        self._random = random.Random(0)
        self._lock_file: IO[str] | None = None
        self.stopped = asyncio.Event()
        self._admission_tail: asyncio.Event | None = None
        self._admitting = asyncio.Semaphore(ADMITTING_REQUESTS)
        self.poster: DaPoster | None = None
        self._paused = False
        self.refused: dict[bytes, int] = {}
        """Hashes refused at admission with their codes, the last ``REFUSALS_KEPT`` (in memory:
        a restart forgets them, and the transaction reads as unknown); not the transient ones
        (:data:`TRANSIENT_REFUSALS`)."""

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, config: NodeConfig, new_genesis: NodeGenesis | None) -> Node:
        """Open the node's data directory, creating the chain from ``new_genesis`` if it is
        empty. Raises ``StoreError`` or ``ValueError`` with a readable reason."""
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / "node.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(
                f"{data_dir}: another node is running on this data directory"
            ) from None
        genesis_path = data_dir / "genesis.json"
        chain_dir = data_dir / "chain"
        kwargs = {
            "checkpoint_every": config.checkpoint_every,
            "retain_heights": config.retain_heights,
        }
        if (chain_dir / "data.mdb").exists():
            genesis = read_genesis(genesis_path)
            store = ChainStore.open(chain_dir, full_check=False, **kwargs)
            if store.genesis != genesis.chain:
                store.close(checkpoint=False)
                raise StoreError(f"{genesis_path} does not match the chain in {chain_dir}")
        else:
            if new_genesis is None:
                raise StoreError(f"{data_dir}: no chain here and no genesis to start one")
            genesis = new_genesis
            genesis.market_infos()
            write_genesis(genesis_path, genesis)
            store = ChainStore.create(chain_dir, genesis.chain, **kwargs)
        node = cls(config, genesis, store)
        node._lock_file = lock
        if config.da is not None:
            from strata.adapters.da_open import open_da

            node.poster = DaPoster(
                open_da(config.da, data_dir / "da", poster=True),
                data_dir,
                store.params.chain_id,
                batch_blocks=config.da_batch_blocks,
                batch_ms=config.da_batch_ms,
                max_backlog_blocks=config.da_max_backlog_blocks,
                metrics=node.metrics,
            )
        node._resume()
        return node

    def _resume(self) -> None:
        """Bring the derived stages up to the chain: index, feeds, mempool."""
        state = self.store.state
        tip = self.store.tip.height
        indexed = self.index.catch_up(tip, self._read_block, state)
        if self.config.resolved_index_process():
            self.index.close()
            self.indexer = IndexWorker(
                Path(self.config.data_dir) / "index",
                tip,
                self.markets,
                self.config.index_niceness,
            )
            self.index = self.indexer.reader
        first = max(1, self.store.base_height + 1, tip - REBUILD_BLOCKS + 1)
        self.feeds.load(state, tip, (self._read_block(h)[1] for h in range(first, tip + 1)))
        reloaded = self.mempool.recover(self._readmit)
        if self.config.commit_process:
            self.committer = start_commitment_process(self._commitment().tree)
        self.metrics.height.set(tip)
        self.metrics.mempool.set(len(self.mempool))
        for market_id in self.markets:
            mark = oracle.get_mark_price(state, market_id)
            if mark is not None:
                self._oracle_prices[market_id] = mark
        log.info(
            "resumed",
            extra={"fields": {"height": tip, "reindexed": indexed, "mempool": reloaded}},
        )

    def _read_block(self, height: int) -> tuple[Block, BlockOutput]:
        block = self.store.get_block(height)
        receipts, block_events = self.store.get_encoded_receipts(height)
        output = BlockOutput(
            header=block.header,
            encoded_receipts=receipts,
            block_events=block_events,
            withdrawals=(),
            transactions=block.transactions,
        )
        return block, output

    @property
    def state_height(self) -> int:
        """The height whose post-state ``store.state`` is, which state reads report: the tip,
        or with the commitment process the block in flight (executed, sealed within a block)."""
        return self.store.state.tip.height

    def is_included(self, tx_hash: bytes) -> bool:
        """Whether a committed block holds the transaction (indexed or not yet)."""
        return tx_hash in self._unindexed or bool(self.index.included([tx_hash]))

    def indexer_tip(self) -> int:
        """The height of the last block the index holds."""
        return self.store.tip.height if self.indexer is None else self.indexer.tip

    def unindexed_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a committed transaction the index does not hold yet (it runs
        in its own process and may lag, e.g. while it starts), read from the block's receipts."""
        height = self._unindexed.get(tx_hash)
        if height is None:
            return None
        receipts, _ = self.store.get_receipts(height)
        for index, receipt in enumerate(receipts):
            if receipt.tx_hash == tx_hash:
                return height, index
        return None

    async def index_synced(self) -> bool:
        """Wait (briefly) until the index holds every committed block, so that the API answers
        from it what the chain and the feeds already show; whether it does."""
        if self.indexer is not None:
            return await self.indexer.wait_for(self.store.tip.height)
        return True

    def _readmit(self, data: bytes) -> PendingTx | None:
        tx_hash = compute_transaction_hash(data)
        if self.is_included(tx_hash):
            return None
        try:
            tx = decode_transaction(data)
            self._precheck(tx, now_ms())
        except InvalidTransaction:
            return None
        signer = check_signature(self.params, tx)
        try:
            check_authority(self.store.state, tx, signer, now_ms())
        except InvalidTransaction:
            return None
        gas = compute_base_gas(self.params, tx, len(self.markets))
        return self._pending(tx_hash, data, tx, signer, gas)

    def _pending(
        self, tx_hash: bytes, data: bytes, tx: SignedTransaction, signer: bytes | None, gas: int
    ) -> PendingTx:
        return PendingTx(
            tx_hash=tx_hash,
            data=data,
            account=tx.account,
            nonce=tx.nonce,
            signer=signer,
            is_cancel=isinstance(tx.action, CANCEL_ACTIONS),
            received_ns=time.monotonic_ns(),
            gas=gas,
        )

    # ------------------------------------------------------------------ admission

    def _check_nonce(self, tx: SignedTransaction, at_ms: int) -> None:
        params = self.params
        accounts.check_nonce(
            self.store.state,
            tx.account,
            tx.nonce,
            at_ms,
            params.nonce_window,
            params.nonce_past_bound_ms,
            params.nonce_future_bound_ms,
        )

    def _precheck(self, tx: SignedTransaction, at_ms: int) -> None:
        """Checks against the committed state that need no signature (raise
        ``InvalidTransaction`` with the chain's code)."""
        state = self.store.state
        params = self.params
        self._check_nonce(tx, at_ms)
        for order in placements_of(tx.action):
            markets.check_order_params(state, order.market_id, order.price_ticks, order.size_lots)
        if params.gas_price_quote:
            fee = compute_base_gas(params, tx, len(self.markets)) * params.gas_price_quote
            if collateral.get_balance(state, tx.account) < fee:
                raise InvalidTransaction(ErrorCode.INSUFFICIENT_FEE_BALANCE, str(fee))

    async def submit(self, datas: Sequence[bytes]) -> list[dict[str, Any]]:
        """Admit transactions (canonical bytes); one result per transaction, in order:
        ``{"hash": hex}`` or ``{"error": {...}}``. Resubmitting a known transaction returns its
        hash again and changes nothing."""
        if self.stopping:
            raise RpcError(RpcCode.SHUTTING_DOWN, "the node is stopping")
        async with self._admitting:  # waiting requests hold bytes, not decoded transactions
            return await self._submit(datas)

    async def _submit(self, datas: Sequence[bytes]) -> list[dict[str, Any]]:
        started = time.monotonic()
        results: list[dict[str, Any] | None] = [None] * len(datas)
        candidates: list[tuple[int, bytes, bytes, SignedTransaction, int]] = []
        at_ms = now_ms()
        mempool = self.mempool
        for i, data in enumerate(datas):
            tx_hash = compute_transaction_hash(data)
            try:
                if len(data) > MAX_TRANSACTION_BYTES:
                    raise InvalidTransaction(ErrorCode.TRANSACTION_TOO_LARGE, str(len(data)))
                if tx_hash in mempool:
                    results[i] = {"hash": "0x" + tx_hash.hex()}
                    continue
                tx = decode_transaction(data)
                self._precheck(tx, at_ms)
            except InvalidTransaction as error:
                spent = (ErrorCode.NONCE_ALREADY_USED, ErrorCode.NONCE_BELOW_WINDOW)
                if error.code in spent and self.is_included(tx_hash):
                    results[i] = {"hash": "0x" + tx_hash.hex()}  # an included tx, resubmitted
                    continue
                results[i] = self._refused(RpcError(error.code, error.detail), tx_hash)
                continue
            gas = compute_base_gas(self.params, tx, len(self.markets))
            if mempool.refuses(gas, isinstance(tx.action, CANCEL_ACTIONS)):
                # Overloaded: no signature check for what would be refused after it.
                results[i] = self._refused(mempool.full_error(), tx_hash)
                continue
            candidates.append((i, tx_hash, data, tx, gas))
        admission = self.metrics.stage_seconds.labels("admission")
        admission.inc(time.monotonic() - started)
        # Signatures of concurrent requests are checked in parallel, but requests enter the
        # mempool in the order they arrived: a bot's transactions keep their nonce order, so a
        # block cut between two of its requests never leaves a lower nonce behind a higher one.
        previous, turn = self._admission_tail, asyncio.Event()
        self._admission_tail = turn
        try:
            signers = await self._verify([c[2] for c in candidates])
            if previous is not None:
                await previous.wait()
            inserting = time.monotonic()
            self._insert(candidates, signers, results)
            admission.inc(time.monotonic() - inserting)
        finally:
            turn.set()
            if self._admission_tail is turn:
                self._admission_tail = None
        mempool.flush()
        self.metrics.mempool.set(len(mempool))
        return [r for r in results if r is not None]

    def _insert(
        self,
        candidates: list[tuple[int, bytes, bytes, SignedTransaction, int]],
        signers: list[bytes | None],
        results: list[dict[str, Any] | None],
    ) -> None:
        """Authority, pending-nonce and rate checks, then into the mempool (in order)."""
        state = self.store.state
        mempool = self.mempool
        at_ms = now_ms()
        admitted = 0
        for (i, tx_hash, data, tx, gas), signer in zip(candidates, signers, strict=True):
            try:
                if tx_hash in mempool:
                    results[i] = {"hash": "0x" + tx_hash.hex()}
                    continue
                self._check_nonce(tx, at_ms)  # again: a block may have committed meanwhile
                check_authority(state, tx, signer, at_ms)
                if mempool.has_nonce(tx.account, tx.nonce):
                    raise RpcError(
                        RpcCode.NONCE_ALREADY_PENDING,
                        f"a pending transaction of 0x{tx.account.hex()} uses nonce {tx.nonce}",
                    )
                if not self.account_limits.allow(tx.account, 1.0, self._account_rate(tx.account)):
                    raise RpcError(RpcCode.RATE_LIMITED, f"0x{tx.account.hex()}: too many txs")
                mempool.add(self._pending(tx_hash, data, tx, signer, gas))
            except InvalidTransaction as error:
                results[i] = self._refused(RpcError(error.code, error.detail), tx_hash)
                continue
            except RpcError as error:
                results[i] = self._refused(error, tx_hash)
                continue
            admitted += 1
            results[i] = {"hash": "0x" + tx_hash.hex()}
        self.metrics.admitted.inc(admitted)

    def _account_rate(self, account: bytes) -> float:
        """An account's transactions per second: the base rate, plus one per
        ``account_rate_volume_quote`` it has traded, up to ``account_rate_max_per_s`` (spam is
        cheap; volume is not: Hyperliquid's rule, in per-second terms)."""
        config = self.config
        bonus = clearing.get_volume(self.store.state, account) // config.account_rate_volume_quote
        return float(min(config.account_rate_max_per_s, config.account_rate_per_s + bonus))

    def _refused(self, error: RpcError, tx_hash: bytes | None = None) -> dict[str, Any]:
        self.metrics.refused.labels(error.name).inc()
        if tx_hash is not None and error.code not in TRANSIENT_REFUSALS:
            refused = self.refused
            refused[tx_hash] = error.code
            if len(refused) > REFUSALS_KEPT:
                del refused[next(iter(refused))]
        return {"error": error.to_json()}

    async def _verify(self, datas: list[bytes]) -> list[bytes | None]:
        """Signature checks of a batch of raw transactions on the signature precompile's
        workers (``exec/signatures.py``; a small batch in one part: a hop costs more than it
        saves), while the event loop serves other requests and builds blocks."""
        if not datas:
            return []
        parts = 1 if len(datas) < 8 else None
        started = time.monotonic()
        try:
            futures = self.signatures.submit(self.params, datas, parts)
            await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
            self.metrics.signature_batch.observe(time.monotonic() - started)
        except BrokenExecutor:
            # A signature worker died: the node stops before its next block, never in it.
            log.error("a signature worker died: stopping", extra={"fields": {}})
            self.stopping = True
            raise RpcError(RpcCode.SHUTTING_DOWN, "the node is stopping") from None
        return joined(futures)

    def faucet(self, account: bytes, amount_quote: int) -> int:
        """Devnet only: queue a deposit for the next block; returns its inbox index."""
        if not self.config.devnet:
            raise RpcError(RpcCode.DEVNET_ONLY, "strata_faucet exists only on a devnet")
        if len(self.faucet_queue) >= 1000:
            raise RpcError(RpcCode.RATE_LIMITED, "too many faucet deposits pending")
        ledger = collateral.get_ledger(self.store.state)
        index = ledger.next_deposit_index + len(self.faucet_queue)
        self.faucet_queue.append(Deposit(index, account, amount_quote))
        return index

    # ------------------------------------------------------------------ blocks

    async def run(self) -> None:
        """Produce a block every ``block_time_ms`` until :meth:`stop` (or ``exit_after_blocks``)."""
        period = self.config.block_time_ms / 1000
        next_at = time.monotonic()
        if self.indexer is not None:
            self.indexer.start_rendering(asyncio.get_running_loop(), self.feeds.rendered)
            self.feeds.remote = True
        try:
            while not self.stopping:
                next_at += period
                delay = next_at - time.monotonic()
                if delay > 0 and self._in_flight is not None:
                    await self._seal_when_ready(delay)
                    delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    next_at = time.monotonic()
                    await asyncio.sleep(0)  # let requests in between back-to-back blocks
                if self.stopping:
                    break
                if self.poster is not None and self.poster.is_full(self.store.tip.height):
                    if not self._paused:
                        log.warning("paused: the DA backlog is full", extra={"fields": {}})
                    self._paused = True
                    continue
                self._paused = False
                self.produce_block()
                limit = self.config.exit_after_blocks
                if limit is not None and self.blocks_produced >= limit:
                    self.stopping = True
        finally:
            self.stopped.set()

    async def _seal_when_ready(self, timeout: float) -> None:
        """Between blocks: seal the block in flight as soon as its root is in (within
        ``timeout`` seconds), rather than when the next block has executed."""
        committer = self.committer
        assert committer is not None
        if not committer.ready():
            loop = asyncio.get_running_loop()
            ready = asyncio.Event()
            loop.add_reader(committer.fileno(), ready.set)
            try:
                await asyncio.wait_for(ready.wait(), timeout)
            except TimeoutError:
                return
            finally:
                loop.remove_reader(committer.fileno())
        if self._in_flight is not None and not self.stopping:
            self._seal()

    def stop(self) -> None:
        """Ask the producer to stop after the block in hand."""
        self.stopping = True

    def _system_inputs(self, timestamp_ms: int) -> list[SystemInput]:
        flight = self._in_flight
        credited = frozenset() if flight is None else flight.deposits
        system: list[SystemInput] = [d for d in self.faucet_queue if d.index not in credited]
        if self.oracle is not None and self.config.demo:
            for market_id in sorted(self.markets):
                price = self._oracle_prices.get(market_id)
                if price is None:
                    continue
                step = max(1, price // 2000)
                price = max(1, price + self._random.randint(-step, step))
                self._oracle_prices[market_id] = price
                system.append(self._sign_price(market_id, price, timestamp_ms))
        return system

    def _sign_price(self, market_id: int, price_ticks: int, timestamp_ms: int) -> OraclePrice:
        assert self.oracle is not None
        observation = OracleObservation(market_id, price_ticks, timestamp_ms)
        digest = compute_transaction_digest(
            self.params.chain_id,
            self.params.bridge_address,
            self.oracle.address,
            timestamp_ms,
            encode_action(observation),  # type: ignore[arg-type]
        )
        return OraclePrice(
            market_id,
            price_ticks,
            timestamp_ms,
            self.oracle.address,
            self.oracle.sign_digest(digest),
        )

    @property
    def block_gas_budget(self) -> int:
        """Base gas of one block at most: the configured target, within half the chain's limit
        (matching work is metered on top of base gas)."""
        return min(self.config.block_gas_target, self.params.block_gas_limit // 2)

    def _select(self) -> list[PendingTx]:
        budget = self.block_gas_budget
        chosen: list[PendingTx] = []
        pending = self.mempool.pending()
        flight = self._in_flight
        if flight is not None:  # still in the mempool until its block is committed
            pending = (tx for tx in pending if tx.tx_hash not in flight.hashes)
        for tx in self.policy.select(pending, self.config.max_block_transactions):
            budget -= tx.gas
            if budget < 0:
                break
            chosen.append(tx)
        return chosen

    def _commitment(self) -> IncrementalCommitment:
        commitment = self.store.state.commitment
        assert isinstance(commitment, IncrementalCommitment)
        return commitment

    def produce_block(self) -> None:
        """Order, execute and commit one block, then report it (index, feeds, metrics).

        With the commitment process, the block is executed and its changes go to that process;
        the block executed before it is sealed with the root that came back, committed and
        reported (see :attr:`NodeConfig.commit_process`)."""
        if self.indexer is not None and not self.indexer.is_alive():
            # A stage that died takes the node down before the next block, never in it.
            log.error("the index process died: stopping", extra={"fields": {}})
            self.stopping = True
            return
        if self.committer is not None and self.committer.ready() and not self._seal():
            return  # the block in flight is sealed as soon as its root is in
        started = time.monotonic()
        tip = self.store.state.tip  # the last block executed (committed, or in flight)
        timestamp_ms = max(now_ms(), tip.timestamp_ms + 1)
        chosen = self._select()
        decoded = [decode_transaction(tx.data) for tx in chosen]
        system = self._system_inputs(timestamp_ms)
        while True:
            try:
                args = (
                    self.store.state,
                    timestamp_ms,
                    system,
                    [tx.data for tx in chosen],
                    self.params,
                    [tx.signer for tx in chosen],
                    decoded,
                    self.matching,
                )
                with collector_paused():
                    if self.committer is None:
                        block, output = build_block(*args)
                    else:
                        unsealed = execute_block(*args)
                break
            except MatchingWorkerDied as error:
                # Nothing of the block is committed: take the state back, then stop (a restart
                # starts new workers and resumes from the last committed block). A block in
                # flight is dropped too: its transactions are still in the mempool.
                log.error(
                    "a matching worker process died: stopping",
                    extra={"fields": {"error": str(error)}},
                )
                self._in_flight = None
                self._reload_state()
                self.stopping = True
                return
            except InvalidBlock as error:
                # The state is half-applied: take it back from the durable store (after
                # committing the block in flight, which the commitment process has applied),
                # then retry with half the transactions (over the gas limit) or without system
                # inputs.
                log.warning("block rebuilt", extra={"fields": {"error": str(error)}})
                if self._in_flight is not None and not self._seal():
                    return
                self._reload_state()
                if error.code == ErrorCode.BLOCK_GAS_LIMIT_EXCEEDED and len(chosen) > 1:
                    chosen = chosen[: len(chosen) // 2]
                    decoded = decoded[: len(chosen)]
                else:
                    system = []
                    self.faucet_queue.clear()
        built = time.monotonic()
        if self.matching is not None:
            seen = self._matching_seconds
            for part, total in self.matching.seconds.items():
                self.metrics.matching_seconds.labels(part).inc(total - seen.get(part, 0.0))
                seen[part] = total
        if self.committer is None:
            self._commit(block, output, chosen, decoded, self.store.state, started, built)
            return
        state = self.store.state
        changed = [m for m, book in state.books.items() if book.dirty]  # (take_changes clears)
        changes = self._commitment().take_changes(state)
        books = self.feeds.capture_books(state, changed)
        post = _PostState(IndexHints.of(state, unsealed.output), books)
        try:
            # Sent before the block in flight is sealed: the process computes this block's root
            # while the node commits and reports the one before (it answers in order).
            self.committer.submit(changes)
        except CommitmentWorkerDied as error:
            self._commitment_died(error)
            return
        previous, self._in_flight = (
            self._in_flight,
            _InFlight(
                unsealed,
                changes,
                chosen,
                decoded,
                post,
                frozenset(tx.tx_hash for tx in chosen),
                frozenset(d.index for d in unsealed.system if isinstance(d, Deposit)),
                started,
                built,
            ),
        )
        if previous is not None:
            self._seal(previous)

    def _seal(self, flight: _InFlight | None = None) -> bool:
        """Wait for the root of ``flight`` (default: the block in flight), seal it, commit it
        and report it; ``False`` (and the node stopping, no block in flight committed) if the
        commitment process died."""
        if flight is None:
            flight, self._in_flight = self._in_flight, None
        assert flight is not None and self.committer is not None
        waiting = time.monotonic()
        try:
            root, nodes, stale = self.committer.result()
        except CommitmentWorkerDied as error:
            self._commitment_died(error)
            return False
        commitment = self._commitment()
        commitment.tree.adopt_packed(root, nodes, stale)
        commitment.adopt(flight.changes, root)
        block, output = seal_block(flight.unsealed, self.store.tip.header_hash, root)
        sealed = time.monotonic()
        self.metrics.stage_seconds.labels("seal").inc(sealed - waiting)
        self._commit(
            block, output, flight.chosen, flight.decoded, flight.post, flight.started, flight.built
        )
        state = self.store.state
        if state.tip.height == block.header.height:  # nothing executed after it
            state.tip = self.store.tip
        return True

    def _commitment_died(self, error: CommitmentWorkerDied) -> None:
        """The commitment process died: stop without committing the blocks executed since the
        last commit (their transactions stay in the mempool), the state taken back to that
        commit; a restart starts a new process from it."""
        log.error("the commitment process died: stopping", extra={"fields": {"error": str(error)}})
        self._in_flight = None
        self._reload_state()
        self.stopping = True

    def _commit(
        self,
        block: Block,
        output: BlockOutput,
        chosen: list[PendingTx],
        decoded: list[SignedTransaction],
        post: State | _PostState,
        started: float,
        built: float,
    ) -> None:
        """Commit a sealed block and report it (``post``: its post-state, or what of it was
        taken before the next block executed)."""
        committing = time.monotonic()
        if self.config.devnet and self.config.fault_wrong_root_at == block.header.height:
            block, output = self._tamper(block, output)
        self.store.commit_block(block, output)
        committed = time.monotonic()
        self._after_commit(block, output, chosen, decoded, post)
        reported = time.monotonic()
        left_out = {tx_hash for tx_hash, _ in output.rejected}
        conflicts = report_block(
            (tx for p, tx in zip(chosen, decoded, strict=True) if p.tx_hash not in left_out),
            self._market_ids,
        )
        if conflicts.total_ops:
            self.metrics.hot_market_share.observe(conflicts.hot_market_share)
            self.metrics.parallel_bound.observe(conflicts.parallel_bound)
        self.metrics.markets_active.set(len(conflicts.ops_by_market))
        self.metrics.cross_market_accounts.set(conflicts.cross_market_accounts)
        stage = self.metrics.stage_seconds
        stage.labels("execute").inc(built - started)
        stage.labels("commit").inc(committed - committing)
        stage.labels("report").inc(reported - committed)
        self.metrics.block_build.observe(built - started)
        self.metrics.block_commit.observe(committed - committing)
        self.metrics.block_interval.observe(committed - self.last_block_at)
        self.last_block_at = committed
        self.blocks_produced += 1
        # The resident set follows the load down (adapters/memory.py): every few seconds, as soon
        # as a burst ends (the mempool empties), and after every empty block (what a burst
        # leaves behind is freed over the next seconds: feeds flushed, blocks posted and
        # checkpointed). The database files' pages the node has read leave its resident set
        # every few seconds only (they stay in the page cache): they accumulate slowly, and a
        # drained mempool comes every block under a light load.
        drained = self._had_pending and not len(self.mempool)
        self._had_pending = bool(len(self.mempool))
        idle = not block.transactions and not len(self.mempool)
        periodic = self.blocks_produced % TRIM_EVERY_BLOCKS == 0
        if drained or idle or periodic:
            release_free_memory()
            if periodic:
                release_mapped_pages([*self.store.data_files(), self.index.data_file])
            self._report_memory()
        log.info(
            "block",
            extra={
                "fields": {
                    "height": block.header.height,
                    "txs": len(block.transactions),
                    "left_out": len(output.rejected),
                    "build_ms": round((built - started) * 1000, 2),
                    "commit_ms": round((committed - committing) * 1000, 2),
                    "mempool": len(self.mempool),
                    "hot_market_share": round(conflicts.hot_market_share, 3),
                    "cross_market_accounts": conflicts.cross_market_accounts,
                }
            },
        )

    def _report_memory(self) -> None:
        items = self.store.memory_items()
        items["mempool"] = len(self.mempool)
        items["refused"] = len(self.refused)
        items["unindexed"] = len(self._unindexed)
        items["index_queue_bytes"] = 0 if self.indexer is None else self.indexer.queued_bytes
        items["da_recent_blocks"] = 0 if self.poster is None else self.poster.recent_blocks
        gauge = self.metrics.memory_items
        for kind, count in items.items():
            gauge.labels(kind).set(count)

    def _tamper(self, block: Block, output: BlockOutput) -> tuple[Block, BlockOutput]:
        """The test-only fault switch: the block's header claims a wrong state root (the chain
        continues from the tampered header, as a dishonest sequencer's would)."""
        wrong = msgspec.structs.replace(block.header, state_root=bytes(32))
        log.warning("fault switch: wrong state root", extra={"fields": {"height": wrong.height}})
        tip = self.store.state.tip
        if tip.height == wrong.height:  # (else the next block has executed: it has no hash yet)
            self.store.state.tip = ChainTip(
                tip.height, tip.timestamp_ms, compute_header_hash(wrong)
            )
        return (
            msgspec.structs.replace(block, header=wrong),
            msgspec.structs.replace(output, header=wrong),
        )

    def _reload_state(self) -> None:
        path = Path(self.config.data_dir) / "chain"
        self.store.close(checkpoint=False)
        self.store = ChainStore.open(
            path,
            full_check=False,
            checkpoint_every=self.config.checkpoint_every,
            retain_heights=self.config.retain_heights,
        )

    def _after_commit(
        self,
        block: Block,
        output: BlockOutput,
        chosen: list[PendingTx],
        decoded: list[SignedTransaction],
        post: State | _PostState,
    ) -> None:
        height = block.header.height
        credited = {d.index for d in block.system if isinstance(d, Deposit)}
        self.faucet_queue = [d for d in self.faucet_queue if d.index not in credited]
        now_ns = time.monotonic_ns()
        latency = self.metrics.inclusion_latency
        for tx in chosen[:: max(1, len(chosen) // LATENCY_SAMPLES)]:  # a sample per block
            latency.observe((now_ns - tx.received_ns) / 1e9)
        self.mempool.remove_many(tx.tx_hash for tx in chosen)
        if isinstance(post, State):
            render = self.feeds.publish(output, post)
            hints = IndexHints.of(post, output)
        else:
            render = self.feeds.publish(output, post.books)
            hints = post.hints
        if self.indexer is not None:
            self.indexer.submit(block, output, hints, render)
            self.metrics.index_lag.set(max(0, height - max(self.indexer.tip, 0)))
            self._forget_indexed(self.indexer.tip)
            hashes = [receipt.tx_hash for receipt in output.receipts]
            self._unindexed.update(dict.fromkeys(hashes, height))
            self._unindexed_blocks.append((height, hashes))
        else:
            txs = {p.tx_hash: tx for p, tx in zip(chosen, decoded, strict=True)}
            self.index.add_block(block, output, hints, txs)
        if self.poster is not None:
            self.poster.remember(block)
        self.metrics.height.set(height)
        self.metrics.mempool.set(len(self.mempool))
        self.metrics.block_txs.inc(len(block.transactions))
        self.metrics.left_out.inc(len(output.rejected))

    def _forget_indexed(self, tip: int) -> None:
        """Drop the unindexed hashes of the blocks the index process now holds (up to ``tip``):
        the index answers for them, and the node keeps only what it lags behind by."""
        blocks = self._unindexed_blocks
        unindexed = self._unindexed
        while blocks and blocks[0][0] <= tip:
            for tx_hash in blocks.popleft()[1]:
                unindexed.pop(tx_hash, None)

    def close(self) -> None:
        """Flush and close everything (after :meth:`run` has returned)."""
        if self.committer is not None:
            if self._in_flight is not None:
                self._seal()  # the block in flight is committed (unless the process died)
            self.committer.close()
        self.signatures.close()
        if self.matching is not None:
            self.matching.close()
        if self.poster is not None:
            self.poster.close()
        self.mempool.close()
        if self.indexer is not None:
            self.indexer.close()
        else:
            self.index.close()
        self.store.close(checkpoint=True)
        if self._lock_file is not None:
            self._lock_file.close()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("strata")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False

"""Crash tests of a real node process: ``kill -9`` under load, then the chain is checked on disk.

The campaign (``test_kill9_under_load``): a load generator thread keeps submitting signed
transactions to a devnet node over HTTP (``strata_sendRawTransactions``): resting GTC orders of
three maker accounts, crossing IOC orders of three taker accounts, cancels by client id and the
odd cancel-all. It keeps polling ``strata_getTransaction`` for every hash the node gave it back,
and records every hash the node ever reported ``included`` with its height: the *acknowledged*
set. A batch whose reply was lost to a kill is sent again, unchanged, to the restarted node (what
a real client does: resubmitting is idempotent). The test kills the node with SIGKILL at random
moments (0.2-1.5 s after each start, seeded), restarts it on the same data directory each time
and keeps loading. After the last restart it drains, stops the node with SIGTERM (exit 0) and
reads the chain database directly (``ChainStore.open``, full check):

1. every acknowledged transaction is in a committed block, at the height the node reported;
2. no transaction hash appears twice across all blocks (none applied twice);
3. heights are contiguous, headers link, and the recovered height is at least the highest
   acknowledged height;
4. re-executing every block from ``make_genesis`` with ``apply_block`` gives exactly the stored
   headers, receipts and block events, and the final state root is the store's;
5. a node restarted on the directory answers ``included`` at the same height for every
   acknowledged hash.

``test_pending_transactions_survive_kill9`` kills a node right after a burst of admissions,
before its next block, and checks the pending transactions come back from the mempool journal
(``DATA_DIR/mempool.log``) and are then included, each exactly once.

The default campaign makes 10 kills (about 25 s on two cores); ``-m long`` runs 100 (about
3 min).
"""

from __future__ import annotations

import collections
import random
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from strata.adapters.chain_store import ChainStore
from strata.client.signing import Wallet, wallet_from_seed
from strata.core.signatures import compute_transaction_digest
from strata.node.config import read_genesis
from strata.stf.block import compute_header_hash
from strata.stf.genesis import make_genesis
from strata.stf.params import ChainParams
from strata.stf.state_root import compute_state_root
from strata.stf.transactions import (
    Action,
    CancelAll,
    CancelOrder,
    PlaceOrder,
    SignedTransaction,
    compute_transaction_hash,
    encode_action,
    encode_transaction,
)
from strata.stf.transition import apply_block
from tests.helpers.node_process import NodeProcess

SEED = 20_251_130
BLOCK_TIME_MS = 50
MIN_KILL_DELAY_S = 0.2
MAX_KILL_DELAY_S = 1.5

BTC, ETH = 1, 2
MID_TICKS = {BTC: 600_000, ETH: 300_000}
"""The devnet's initial prices (``devnet_genesis``); nothing moves the mark on a plain devnet."""
STEP_TICKS = {BTC: 10, ETH: 5}
SIZE_LOTS = {BTC: (1, 20), ETH: (10, 200)}
GTC, IOC = 0, 1

MAKERS = tuple(wallet_from_seed(f"devnet-{i}") for i in range(3))
TAKERS = tuple(wallet_from_seed(f"devnet-{i}") for i in range(3, 6))

RPC_BATCH = 50
"""The node's limit of requests per JSON-RPC batch."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def sign(wallet: Wallet, action: Action, nonce: int, params: ChainParams) -> bytes:
    """Canonical bytes of ``action`` signed by ``wallet`` (as ``tests/helpers/chain.py``)."""
    digest = compute_transaction_digest(
        params.chain_id, params.bridge_address, wallet.address, nonce, encode_action(action)
    )
    signed = SignedTransaction(wallet.address, nonce, action, None, wallet.sign_digest(digest))
    return encode_transaction(signed)


class NodeDown(Exception):
    """The node did not answer (killed, restarting, or stopping)."""


def rpc(client: httpx.Client, url: str, method: str, *params: Any) -> Any:
    """One JSON-RPC call; ``NodeDown`` if the node is not there, ``AssertionError`` on an error
    reply (the load generator never sends a malformed request)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    try:
        reply = client.post(url, json=body).json()
    except (httpx.TransportError, ValueError) as error:
        raise NodeDown(str(error)) from None
    if "error" in reply:
        if reply["error"].get("data", {}).get("name") == "SHUTTING_DOWN":
            raise NodeDown("the node is stopping")
        raise AssertionError(f"{method}: {reply['error']}")
    return reply["result"]


def rpc_batch(
    client: httpx.Client, url: str, method: str, params: Sequence[list[Any]]
) -> list[Any]:
    """The same method for each params list, in JSON-RPC batches; results in order."""
    results: list[Any] = []
    for start in range(0, len(params), RPC_BATCH):
        chunk = params[start : start + RPC_BATCH]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(chunk)
        ]
        try:
            replies = client.post(url, json=body).json()
        except (httpx.TransportError, ValueError) as error:
            raise NodeDown(str(error)) from None
        if not isinstance(replies, list):
            raise AssertionError(f"{method}: not a batch reply: {replies}")
        by_id = {r["id"]: r for r in replies}
        for i in range(len(chunk)):
            reply = by_id[i]
            if "error" in reply:
                if reply["error"].get("data", {}).get("name") == "SHUTTING_DOWN":
                    raise NodeDown("the node is stopping")
                raise AssertionError(f"{method}: {reply['error']}")
            results.append(reply["result"])
    return results


class Signer:
    """Signs the workload's transactions: per-account nonces strictly increasing near now."""

    def __init__(self, params: ChainParams, rng: random.Random) -> None:
        self.params = params
        self.rng = rng
        self.nonces: dict[bytes, int] = {}
        self.client_ids: dict[tuple[bytes, int], collections.deque[int]] = {}
        self.next_client_id = 1

    def tx(self, wallet: Wallet, action: Action) -> bytes:
        nonce = max(now_ms(), self.nonces.get(wallet.address, 0) + 1)
        self.nonces[wallet.address] = nonce
        return sign(wallet, action, nonce, self.params)

    def maker_order(self, wallet: Wallet) -> bytes:
        rng = self.rng
        market = rng.choice((BTC, ETH))
        is_buy = rng.random() < 0.5
        offset = rng.randint(1, 20) * STEP_TICKS[market]
        price = MID_TICKS[market] + (-offset if is_buy else offset)
        client_id = self.next_client_id
        self.next_client_id += 1
        recent = self.client_ids.setdefault((wallet.address, market), collections.deque(maxlen=200))
        recent.append(client_id)
        size = rng.randint(*SIZE_LOTS[market])
        return self.tx(wallet, PlaceOrder(market, is_buy, price, size, GTC, False, client_id))

    def taker_order(self, wallet: Wallet) -> bytes:
        rng = self.rng
        market = rng.choice((BTC, ETH))
        is_buy = rng.random() < 0.5
        reach = 25 * STEP_TICKS[market]  # through every resting level of the makers
        price = MID_TICKS[market] + (reach if is_buy else -reach)
        size = rng.randint(*SIZE_LOTS[market]) * 2
        return self.tx(wallet, PlaceOrder(market, is_buy, price, size, IOC))

    def cancel(self, wallet: Wallet) -> bytes:
        rng = self.rng
        market = rng.choice((BTC, ETH))
        recent = self.client_ids.get((wallet.address, market))
        if not recent:
            return self.maker_order(wallet)
        # Often an order already filled or canceled: the cancel fails in its receipt, included.
        return self.tx(wallet, CancelOrder(market, None, rng.choice(recent)))

    def cancel_all(self, wallet: Wallet) -> bytes:
        market = self.rng.choice((BTC, ETH))
        self.client_ids.pop((wallet.address, market), None)
        return self.tx(wallet, CancelAll(market))

    def mixed_batch(self, size: int) -> list[bytes]:
        rng = self.rng
        batch = []
        for _ in range(size):
            roll = rng.random()
            if roll < 0.45:
                batch.append(self.maker_order(rng.choice(MAKERS)))
            elif roll < 0.80:
                batch.append(self.taker_order(rng.choice(TAKERS)))
            elif roll < 0.98:
                batch.append(self.cancel(rng.choice(MAKERS)))
            else:
                batch.append(self.cancel_all(rng.choice(MAKERS)))
        return batch


@dataclass
class LoadStats:
    batches: int = 0
    resent_batches: int = 0
    transport_errors: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    polls: int = 0


class LoadGenerator(threading.Thread):
    """Submits mixed batches and polls their status, against whatever node ``url`` points at."""

    def __init__(self, params: ChainParams, seed: int) -> None:
        super().__init__(name="strata-load", daemon=True)
        self.rng = random.Random(seed)
        self.signer = Signer(params, self.rng)
        self.url: str | None = None
        """Set by the test at each (re)start; ``None`` while the node is down."""
        self.halt = threading.Event()
        self.sending = threading.Event()
        self.sending.set()
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self.stats = LoadStats()
        self.signed: dict[bytes, bytes] = {}
        """Every transaction signed: hash -> canonical bytes."""
        self.admitted: set[bytes] = set()
        """Hashes the node answered ``strata_sendRawTransactions`` with."""
        self.unresolved: dict[bytes, None] = {}
        """Admitted, not yet reported included or rejected (in admission order)."""
        self.acknowledged: dict[bytes, int] = {}
        """Every hash the node ever reported ``included``, with the height it reported."""
        self.rejected: dict[bytes, str] = {}
        self.anomalies: list[str] = []
        """Answers that contradict an earlier one (checked by the test)."""
        self._retry: list[bytes] | None = None

    # ------------------------------------------------------------------ the thread

    def run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(3.0, connect=0.5)) as client:
                while not self.halt.is_set():
                    url = self.url
                    if url is None:
                        time.sleep(0.01)
                        continue
                    try:
                        if self.sending.is_set() or self._retry is not None:
                            self._send(client, url)
                        self._poll(client, url)
                    except NodeDown:
                        self.stats.transport_errors += 1
                        time.sleep(0.02)
                        continue
                    time.sleep(0.005)
        except BaseException as error:
            self.error = error

    def _send(self, client: httpx.Client, url: str) -> None:
        if self._retry is None:
            self._retry = self.signer.mixed_batch(self.rng.randint(10, 40))
            for data in self._retry:
                self.signed[compute_transaction_hash(data)] = data
        else:
            self.stats.resent_batches += 1
        batch = self._retry
        results = rpc(client, url, "strata_sendRawTransactions", ["0x" + d.hex() for d in batch])
        self._retry = None  # the node answered: the batch's fate is known
        self.stats.batches += 1
        assert len(results) == len(batch), results
        with self.lock:
            for data, result in zip(batch, results, strict=True):
                tx_hash = compute_transaction_hash(data)
                if "hash" in result:
                    if result["hash"] != "0x" + tx_hash.hex():
                        self.anomalies.append(f"admitted as {result['hash']}, is {tx_hash.hex()}")
                    self.admitted.add(tx_hash)
                    if tx_hash not in self.acknowledged and tx_hash not in self.rejected:
                        self.unresolved[tx_hash] = None
                else:
                    self.stats.refused[result["error"]["data"]["name"]] += 1

    def _poll(self, client: httpx.Client, url: str) -> None:
        """Ask for the oldest unresolved hashes, and re-ask a few acknowledged ones (an
        ``included`` answer must never change)."""
        with self.lock:
            ask = list(self.unresolved)[:150]
            acked = list(self.acknowledged)
        if acked:
            ask += self.rng.sample(acked, min(10, len(acked)))
        if not ask:
            return
        answers = rpc_batch(client, url, "strata_getTransaction", [["0x" + h.hex()] for h in ask])
        self.stats.polls += 1
        with self.lock:
            for tx_hash, answer in zip(ask, answers, strict=True):
                self._record(tx_hash, answer)

    def _record(self, tx_hash: bytes, answer: dict[str, Any]) -> None:
        status = answer["status"]
        known = self.acknowledged.get(tx_hash)
        if known is not None:
            if status != "included" or answer["height"] != known:
                self.anomalies.append(
                    f"{tx_hash.hex()} was included at {known}, now {status} "
                    f"at {answer.get('height')}"
                )
            return
        if status == "included":
            self.acknowledged[tx_hash] = answer["height"]
            self.unresolved.pop(tx_hash, None)
        elif status == "rejected":
            self.rejected[tx_hash] = answer["error"]["data"]["name"]
            self.unresolved.pop(tx_hash, None)

    # ------------------------------------------------------------------ the test's side

    def drain(self, timeout: float) -> None:
        """Stop signing new transactions and wait until every admitted one is resolved (or
        ``timeout``); the thread keeps polling."""
        self.sending.clear()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.error is None:
            with self.lock:
                if not self.unresolved and self._retry is None:
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)
        assert not self.is_alive(), "the load generator did not stop"


# ---------------------------------------------------------------------- the node, on disk


def log_tail(node: NodeProcess, lines: int = 30) -> str:
    try:
        text = node.log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start_node(
    data_dir: Path, log_path: Path, block_time_ms: int = BLOCK_TIME_MS, extra: Sequence[str] = ()
) -> NodeProcess:
    """Start a node on ``data_dir`` (``extra``: more ``strata devnet`` flags); a refusal to
    (re)start fails the test with its log."""
    node = NodeProcess(data_dir, block_time_ms=block_time_ms, log_path=log_path, extra=extra)
    try:
        return node.start()
    except RuntimeError as error:
        node.kill()
        pytest.fail(f"the node did not (re)start on {data_dir}: {error}\n{log_tail(node)}")


@contextmanager
def running(node: NodeProcess) -> Iterator[NodeProcess]:
    """Kill the node if the test fails while it runs (never leave a process behind)."""
    try:
        yield node
    finally:
        node.kill()
        if node.proc is not None and node.proc.stdout is not None:
            node.proc.stdout.close()


def stop_gracefully(node: NodeProcess) -> None:
    code = node.terminate(30)
    if node.proc is not None and node.proc.stdout is not None:
        node.proc.stdout.close()
    assert code == 0, f"SIGTERM: the node exited {code}\n{log_tail(node)}"


@dataclass
class ChainReport:
    tip: int
    transactions: int
    where: dict[bytes, int]
    """Every committed transaction hash -> the height of its block."""


def check_chain(data_dir: Path) -> ChainReport:
    """Checks 2, 3 (contiguity) and 4 on the chain database, read directly; returns where each
    transaction is for check 1."""
    genesis = read_genesis(data_dir / "genesis.json")
    store = ChainStore.open(data_dir / "chain", full_check=True)
    try:
        assert store.genesis == genesis.chain, "genesis.json does not match the chain database"
        state, genesis_header = make_genesis(store.genesis)
        assert store.get_header(0) == genesis_header, "the stored genesis header differs"
        tip = store.tip.height
        where: dict[bytes, int] = {}
        twice: list[str] = []
        parent = compute_header_hash(genesis_header)
        expected = 1
        for block in store.iter_blocks():
            header = block.header
            height = header.height
            assert height == expected, f"block {height} where block {expected} was expected"
            expected += 1
            assert store.get_header(height) == header, f"header {height} != its block's header"
            assert header.parent_hash == parent, f"header {height} does not link to its parent"
            parent = compute_header_hash(header)
            receipts, block_events = store.get_receipts(height)
            hashes = [compute_transaction_hash(data) for data in block.transactions]
            assert sorted(r.tx_hash for r in receipts) == sorted(hashes), (
                f"block {height}: its receipts are not of its transactions"
            )
            for tx_hash in hashes:
                if tx_hash in where:
                    twice.append(f"{tx_hash.hex()} at heights {where[tx_hash]} and {height}")
                where.setdefault(tx_hash, height)
            # apply_block raises InvalidBlock on any root (state, txs, receipts) mismatch.
            output = apply_block(state, block, store.params)
            assert output.header == header, f"block {height} re-executes to another header"
            assert output.receipts == receipts, f"block {height}: other receipts on replay"
            assert output.block_events == block_events, f"block {height}: other block events"
        assert expected - 1 == tip, f"blocks 1..{expected - 1} but the tip is {tip}"
        assert not twice, f"transactions applied twice: {twice[:5]}"
        final_root = compute_state_root(state)
        assert final_root == store.get_header(tip).state_root
        assert final_root == compute_state_root(store.state), "the store's state root differs"
        assert store.state.tip == store.tip
        return ChainReport(tip, len(where), where)
    finally:
        store.close(checkpoint=False)


def check_acknowledged(acknowledged: dict[bytes, int], report: ChainReport) -> None:
    """Checks 1 and 3 (height): every acknowledged transaction is where the node said."""
    lost = [h.hex() for h in acknowledged if h not in report.where]
    moved = [
        f"{h.hex()}: reported at {height}, committed at {report.where[h]}"
        for h, height in acknowledged.items()
        if h in report.where and report.where[h] != height
    ]
    assert not lost, f"{len(lost)} acknowledged transactions are in no committed block: {lost[:5]}"
    assert not moved, f"{len(moved)} acknowledged transactions moved: {moved[:5]}"
    highest = max(acknowledged.values(), default=0)
    assert report.tip >= highest, f"recovered height {report.tip} < acknowledged {highest}"


def check_node_answers(node: NodeProcess, acknowledged: dict[bytes, int]) -> None:
    """Check 5: the restarted node reports every acknowledged hash included, same height."""
    hashes = list(acknowledged)
    with httpx.Client(timeout=10) as client:
        answers = rpc_batch(
            client, node.url, "strata_getTransaction", [["0x" + h.hex()] for h in hashes]
        )
    wrong = [
        f"{h.hex()}: {a['status']} at {a.get('height')}, was included at {acknowledged[h]}"
        for h, a in zip(hashes, answers, strict=True)
        if a["status"] != "included" or a["height"] != acknowledged[h]
    ]
    assert not wrong, f"{len(wrong)} acknowledged hashes not included after restart: {wrong[:5]}"


def resumed_lines(log_path: Path) -> list[str]:
    return [line for line in log_path.read_text().splitlines() if '"msg": "resumed"' in line]


# ---------------------------------------------------------------------- the campaign


def run_campaign(tmp_path: Path, kills: int, seed: int, extra: Sequence[str] = ()) -> None:
    """``kills`` kills under load of a node started with ``extra`` flags, then the checks."""
    rng = random.Random(seed)
    data_dir = tmp_path / "node"
    log_path = tmp_path / "node.log"
    started = time.monotonic()
    node = start_node(data_dir, log_path, extra=extra)
    params = read_genesis(data_dir / "genesis.json").chain.params
    load = LoadGenerator(params, seed + 1)
    load.url = node.url
    load.start()
    delays: list[float] = []
    try:
        for _ in range(kills):
            with running(node):
                delay = rng.uniform(MIN_KILL_DELAY_S, MAX_KILL_DELAY_S)
                delays.append(delay)
                time.sleep(delay)
                assert load.error is None, f"load generator: {load.error!r}"
                assert node.proc is not None and node.proc.poll() is None, (
                    f"the node died by itself\n{log_tail(node)}"
                )
                node.kill()
            load.url = None
            node = start_node(data_dir, log_path, extra=extra)
            load.url = node.url
        with running(node):
            time.sleep(1.0)  # load on the last incarnation too
            load.drain(timeout=15.0)
            assert load.error is None, f"load generator: {load.error!r}"
            load.url = None
            stop_gracefully(node)
    finally:
        load.stop()
    assert load.error is None, f"load generator: {load.error!r}"
    assert not load.anomalies, f"contradicting answers: {load.anomalies[:5]}"
    acknowledged = dict(load.acknowledged)
    loaded = time.monotonic() - started

    report = check_chain(data_dir)
    check_acknowledged(acknowledged, report)
    unresolved = [h for h in load.unresolved if h not in report.where]

    with running(start_node(data_dir, log_path, extra=extra)) as node:
        check_node_answers(node, acknowledged)
        stop_gracefully(node)

    readmitted = sum(not line.endswith('"mempool": 0}') for line in resumed_lines(log_path))
    print(
        f"\n{kills} kills (delays {min(delays):.2f}-{max(delays):.2f} s), "
        f"{loaded:.1f} s under load, {time.monotonic() - started:.1f} s in all: "
        f"{len(load.signed)} signed, {len(load.admitted)} admitted, "
        f"{len(acknowledged)} acknowledged, {len(load.rejected)} left out, "
        f"{len(unresolved)} admitted but never resolved; {report.tip} blocks holding "
        f"{report.transactions} transactions; {load.stats.batches} batches "
        f"({load.stats.resent_batches} resent after a kill), {load.stats.transport_errors} "
        f"transport errors, refused {dict(load.stats.refused)}; restarts re-admitted "
        f"{readmitted} times"
    )
    assert len(acknowledged) > 20 * kills, "too little load reached blocks to mean anything"
    # Admitted transactions are journaled before their hash is returned: a kill never loses one.
    assert not unresolved, (
        f"{len(unresolved)} admitted transactions were neither included nor left out: "
        f"{[h.hex() for h in unresolved[:5]]}"
    )


def test_kill9_under_load(tmp_path: Path) -> None:
    run_campaign(tmp_path, kills=10, seed=SEED)


def test_kill9_under_load_with_the_commitment_process(tmp_path: Path) -> None:
    """The same campaign with state roots computed in the commitment process: a kill may land
    while a block waits for its root (executed, not committed)."""
    run_campaign(tmp_path, kills=6, seed=SEED + 7, extra=["--commit-process"])


@pytest.mark.long
def test_kill9_under_load_long(tmp_path: Path) -> None:
    run_campaign(tmp_path, kills=100, seed=SEED + 100)


# ---------------------------------------------------------------------- the mempool journal

_RECORD = struct.Struct(">II")


def journal_records(path: Path) -> list[bytes]:
    """The intact records of ``mempool.log`` (length, crc32, bytes)."""
    blob = path.read_bytes()
    records: list[bytes] = []
    offset = 0
    while offset + _RECORD.size <= len(blob):
        length, crc = _RECORD.unpack_from(blob, offset)
        data = blob[offset + _RECORD.size : offset + _RECORD.size + length]
        if len(data) != length or zlib.crc32(data) != crc:
            break
        records.append(data)
        offset += _RECORD.size + length
    return records


def statuses(node: NodeProcess, hashes: Sequence[bytes]) -> list[dict[str, Any]]:
    with httpx.Client(timeout=10) as client:
        answers: list[dict[str, Any]] = rpc_batch(
            client, node.url, "strata_getTransaction", [["0x" + h.hex()] for h in hashes]
        )
    return answers


def test_pending_transactions_survive_kill9(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    log_path = tmp_path / "node.log"
    slow = 60_000  # no block while the test looks
    with running(start_node(data_dir, log_path, block_time_ms=slow)) as node:
        params = read_genesis(data_dir / "genesis.json").chain.params
        signer = Signer(params, random.Random(SEED))
        burst = signer.mixed_batch(80)
        hashes = [compute_transaction_hash(data) for data in burst]
        height = node.call("strata_blockNumber")
        results = node.call("strata_sendRawTransactions", ["0x" + d.hex() for d in burst])
        assert [r.get("hash") for r in results] == ["0x" + h.hex() for h in hashes], results
        assert {a["status"] for a in statuses(node, hashes)} == {"pending"}
        assert node.call("strata_blockNumber") == height, "a block came before the kill"
        node.kill()
    journaled = {compute_transaction_hash(r) for r in journal_records(data_dir / "mempool.log")}
    assert set(hashes) <= journaled, "admitted transactions missing from the journal"

    # Restarted with blocks still far off: every transaction is pending again.
    with running(start_node(data_dir, log_path, block_time_ms=slow)) as node:
        answers = statuses(node, hashes)
        assert [a["status"] for a in answers] == ["pending"] * len(hashes), answers
        assert node.call("strata_getStatus")["mempool"] == len(hashes)
        assert node.call("strata_blockNumber") == height
        node.kill()  # a second kill, after the journal was compacted at start

    with running(start_node(data_dir, log_path)) as node:
        deadline = time.monotonic() + 15
        answers = statuses(node, hashes)
        while time.monotonic() < deadline and any(a["status"] == "pending" for a in answers):
            time.sleep(0.1)
            answers = statuses(node, hashes)
        assert [a["status"] for a in answers] == ["included"] * len(hashes), answers
        reported = {h: a["height"] for h, a in zip(hashes, answers, strict=True)}
        assert min(reported.values()) > height
        stop_gracefully(node)

    report = check_chain(data_dir)
    check_acknowledged(reported, report)
    resumed = resumed_lines(log_path)
    assert f'"mempool": {len(hashes)}' in resumed[1], resumed


def _descendants(pid: int) -> dict[int, str]:
    """Live processes below ``pid`` (``/proc``): pid -> command line."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue  # gone meanwhile
        if fields.get("State", "").startswith("Z"):
            continue
        children[int(fields["PPid"])].append(int(fields["Pid"]))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                cmdline = (Path("/proc") / str(child) / "cmdline").read_bytes()
            except OSError:
                continue
            found[child] = cmdline.replace(b"\0", b" ").decode(errors="replace")
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_helper_processes_die_with_a_killed_node(tmp_path: Path) -> None:
    """``kill -9`` of the node takes its helper processes with it (signature workers, the index
    process; ``adapters/lifetime.py``): none is left waiting forever on a queue nobody writes."""
    node = NodeProcess(tmp_path / "node")
    node.start()
    assert node.proc is not None
    try:
        deadline = time.monotonic() + 15
        helpers = _descendants(node.proc.pid)
        while time.monotonic() < deadline and not any("spawn_main" in c for c in helpers.values()):
            time.sleep(0.2)
            helpers = _descendants(node.proc.pid)
        assert any("spawn_main" in c for c in helpers.values()), helpers
    finally:
        node.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in helpers):
        time.sleep(0.1)
    left = {pid: helpers[pid] for pid in helpers if _alive(pid)}
    assert not left, f"helper processes outlived the node: {left}"

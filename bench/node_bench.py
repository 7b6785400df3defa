"""``strata bench node``: a real node under load, over its real API.

The node runs as its own process (``strata devnet``, fresh data directory, durable commits); this
process is the load generator. It signs every transaction ahead of time (Ed25519 agent keys, as
bots do), then offers them over HTTP (``strata_sendRawTransactions`` batches) at rising rates,
one step per rate, and listens to each trading account's WebSocket feed.

Two workloads:

- ``single``: one order per signed transaction. Orders come in crossing pairs from different
  accounts at the mark (a GTC sell, then a GTC buy at the same price), so half rest for a moment
  and half fill them, and the book stays small;
- ``bulk``: ``BulkPlace`` transactions of 16 orders each (how market makers requote), in the same
  crossing pattern.

Per step it reports the offered rate, the accepted rate (hashes returned), the included rate
(transactions in committed blocks during the step), and the latency from sending a transaction to
its order event on the account feed (p50, p99). At the end it drains the mempool and counts
``lost`` transactions: accepted but never included. ``rss_growth_pct`` compares the node's
resident memory at the end with after a warm-up pass (the same steps, as long unless
``--warmup-seconds`` says otherwise, not reported), so it shows whether the same load run again
makes memory grow (a leak, an unbounded queue or cache), not how much a heavier load needs; both
readings come after the node has idled ``SETTLE_S`` seconds (a checkpoint and a heap trim), not
at a random point of its cycle;
``anon_rss_growth_pct`` does the same for its anonymous memory alone (heap and stacks, without the
pages of the LMDB files it maps, which the kernel reclaims at will). ``--passes N`` runs the
measured steps N times (a soak) and reads the memory after each pass (``rss_mb_by_pass``), so a
reader sees whether it levels off or keeps climbing. The included counts come from
the node's blocks feed, not from reading every block back over the API, which would map the
whole block log into the node's resident memory; only the final ``lost`` check, after the last
memory reading, reads every block.

``--json`` prints ``tx_per_s`` (the highest included single-order rate of any step),
``bulk_orders_per_s`` (the same for the bulk workload, in orders), ``latency_ms_p50`` and
``latency_ms_p99`` (at the step closest to 5,000 tx/s offered), ``lost`` and ``rss_growth_pct``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.node_process import NodeProcess  # noqa: E402

from strata.client.signing import AgentKey, Wallet, agent_from_seed, wallet_from_seed  # noqa: E402
from strata.core.signatures import compute_transaction_digest  # noqa: E402
from strata.node.config import DEVNET_CHAIN_ID, DEVNET_FUNDED_SEEDS  # noqa: E402
from strata.stf.transactions import (  # noqa: E402
    Action,
    BulkPlace,
    PlaceOrder,
    SignedTransaction,
    compute_transaction_hash,
    encode_action,
    encode_transaction,
)

MARKET_ID = 1
MARK_TICKS = 600_000  # the devnet's BTC-PERP genesis price, 60,000 USDC
MARKS = {1: MARK_TICKS, 2: 300_000}
"""Devnet genesis prices: BTC-PERP 60,000 USDC, ETH-PERP 3,000 USDC."""
SIZES = {1: 1, 2: 10}
"""The smallest order of each devnet market, in lots."""
BULK = 16
BATCH = 200
"""Transactions per HTTP request."""
INFLIGHT = 32
JSON = {"Content-Type": "application/json"}
SETTLE_S = 6.0
"""Idle seconds before each memory reading: a checkpoint (16 blocks) and a heap trim (25 blocks)
happen, so both readings see the node at rest rather than mid-cycle."""
"""Requests in flight at most (as a client with a connection pool of this size)."""


@dataclass
class Signer:
    wallet: Wallet
    agent: AgentKey
    nonce: int

    def sign(self, action: Action) -> bytes:
        self.nonce += 1
        digest = compute_transaction_digest(
            DEVNET_CHAIN_ID, bytes(20), self.wallet.address, self.nonce, encode_action(action)
        )
        return encode_transaction(
            SignedTransaction(
                self.wallet.address,
                self.nonce,
                action,
                self.agent.public_key,
                self.agent.sign_digest(digest),
            )
        )


@dataclass
class Batch:
    """One ``strata_sendRawTransactions`` request, encoded ahead of time (the load generator
    spends its time offering load, not formatting it)."""

    body: bytes
    hashes: list[bytes]
    owners: list[tuple[str, list[int]]]
    """(owner hex, client ids of its orders) per transaction."""


@dataclass
class Step:
    workload: str
    offered_tx_per_s: int
    seconds: float
    txs: list[tuple[bytes, list[int], str]] = field(default_factory=list)
    """(canonical bytes, client ids of its orders, owner hex)."""
    batches: list[Batch] = field(default_factory=list)
    """``txs`` cut into requests, encoded ahead of time like the signatures."""
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    included: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_height: int = 0
    last_height: int = 0
    elapsed: float = 0.0
    rss_kb: int = 0
    anon_kb: int = 0
    loadgen_cpu_s: float = 0.0
    """CPU time of this process (the load generator) during the step."""
    markets: tuple[int, ...] = (MARKET_ID,)
    """The markets its orders go to, one crossing pair after another."""


async def read_metrics(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Every sample of the node's ``/metrics``: ``name{labels}`` -> value."""
    async with session.get(url + "metrics") as response:
        text = await response.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process in KiB (``RssAnon``: its heap and stacks; ``RssFile``: pages
    of mapped files, such as the LMDB databases, which the kernel can reclaim)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, node: NodeProcess, signers: list[Signer]) -> None:
        self.node = node
        self.signers = signers
        self.sent_at: dict[tuple[str, int], float] = {}
        self.step: Step | None = None
        self.client_id = 0
        self.accepted_hashes: set[bytes] = set()
        self.tx_counts: dict[int, int] = {}
        """Transactions per committed block, from the blocks feed (when listening)."""

    # ------------------------------------------------------------ signing ahead

    def presign(self, step: Step) -> None:
        count = int(step.offered_tx_per_s * step.seconds)
        signers = self.signers
        pairs = len(signers) // 2
        for i in range(count):
            pair = (i // 2) % pairs
            is_buy = i % 2 == 1
            signer = signers[2 * pair + (1 if is_buy else 0)]
            market_id = step.markets[(i // 2) % len(step.markets)]
            price = MARKS[market_id] + (i // 2) % 7 - 3
            size = SIZES[market_id]
            if step.workload == "single":
                self.client_id += 1
                cid = self.client_id
                action: Action = PlaceOrder(market_id, is_buy, price, size, 0, False, cid)
                ids = [self.client_id]
            else:
                ids = []
                orders = []
                for _ in range(BULK):
                    self.client_id += 1
                    ids.append(self.client_id)
                    orders.append(
                        PlaceOrder(market_id, is_buy, price, size, 0, False, self.client_id)
                    )
                action = BulkPlace(tuple(orders))
            step.txs.append((signer.sign(action), ids, "0x" + signer.wallet.address.hex()))
        for i in range(0, len(step.txs), BATCH):
            chunk = step.txs[i : i + BATCH]
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "strata_sendRawTransactions",
                "params": [["0x" + data.hex() for data, _, _ in chunk]],
            }
            step.batches.append(
                Batch(
                    orjson.dumps(body),
                    [compute_transaction_hash(data) for data, _, _ in chunk],
                    [(owner, ids) for _, ids, owner in chunk],
                )
            )

    # ------------------------------------------------------------ feeds

    async def listen(self, session: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        async with session.ws_connect(self.node.ws_url, max_msg_size=0) as ws:
            for n, signer in enumerate(self.signers):
                address = "0x" + signer.wallet.address.hex()
                await ws.send_json(
                    {
                        "jsonrpc": "2.0",
                        "id": n,
                        "method": "strata_subscribe",
                        "params": ["account", {"address": address}],
                    }
                )
            await ws.send_json(
                {"jsonrpc": "2.0", "id": -1, "method": "strata_subscribe", "params": ["blocks"]}
            )
            ready.set()
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic()
                data = orjson.loads(message.data)
                result = data.get("params", {}).get("result")
                if not result:
                    continue
                if "tx_count" in result:
                    self.tx_counts[result["height"]] = result["tx_count"]
                    continue
                step = self.step
                address = result.get("address")
                for update in result.get("orders", ()):
                    sent = self.sent_at.pop((address, update.get("client_id")), None)
                    if sent is not None and step is not None:
                        step.latencies_ms.append((now - sent) * 1000)

    # ------------------------------------------------------------ load

    async def run_step(self, session: aiohttp.ClientSession, step: Step) -> None:
        self.step = step
        step.first_height = await self.height(session)
        interval = BATCH / step.offered_tx_per_s
        batches = step.batches
        cpu = time.process_time()
        start = time.monotonic()
        inflight: set[asyncio.Task[None]] = set()
        for n, batch in enumerate(batches):
            due = start + n * interval
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.send(session, step, batch))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            if len(inflight) >= INFLIGHT:  # the node is behind: do not queue unboundedly here
                await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
        if inflight:
            await asyncio.wait(inflight)
        step.elapsed = time.monotonic() - start
        step.loadgen_cpu_s = time.process_time() - cpu
        step.last_height = await self.height(session)
        step.included = await self.count_included(session, step.first_height + 1, step.last_height)

    async def send(self, session: aiohttp.ClientSession, step: Step, batch: Batch) -> None:
        now = time.monotonic()
        sent_at = self.sent_at
        for owner, ids in batch.owners:
            for client_id in ids:
                sent_at[(owner, client_id)] = now
        async with session.post(self.node.url, data=batch.body, headers=JSON) as response:
            reply = orjson.loads(await response.read())
        results = reply.get("result")
        if results is None:
            name = reply["error"]["data"]["name"]
            step.refused[name] = step.refused.get(name, 0) + len(batch.hashes)
            return
        for tx_hash, result in zip(batch.hashes, results, strict=True):
            if "hash" in result:
                step.accepted += 1
                self.accepted_hashes.add(tx_hash)
            else:
                name = result["error"]["data"]["name"]
                step.refused[name] = step.refused.get(name, 0) + 1

    async def call(self, session: aiohttp.ClientSession, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        async with session.post(self.node.url, json=body) as response:
            reply = await response.json()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    async def memory_items(self, session: aiohttp.ClientSession) -> dict[str, int]:
        """The node's ``strata_memory_items`` gauges (its bounded in-memory structures)."""
        prefix = 'strata_memory_items{kind="'
        return {
            name[len(prefix) : -2]: int(value)
            for name, value in (await read_metrics(session, self.node.url)).items()
            if name.startswith(prefix)
        }

    async def height(self, session: aiohttp.ClientSession) -> int:
        return int(await self.call(session, "strata_blockNumber"))

    async def count_included(self, session: aiohttp.ClientSession, first: int, last: int) -> int:
        """Transactions in blocks ``first..last``: from the blocks feed, else read over the API
        (reading every block would map the block log's pages into the node's memory, which is
        not what ``rss_growth_pct`` is about)."""
        total = 0
        for height in range(first, last + 1):
            count = self.tx_counts.get(height)
            if count is None:
                block = await self.call(session, "strata_getBlock", height)
                count = len(block["transactions"])
            total += count
        return total

    async def included_hashes(self, session: aiohttp.ClientSession, last: int) -> set[bytes]:
        hashes: set[bytes] = set()
        for height in range(1, last + 1):
            block = await self.call(session, "strata_getBlock", height)
            hashes.update(bytes.fromhex(h[2:]) for h in block["transactions"])
        return hashes


async def _setup(bench: Bench, session: aiohttp.ClientSession) -> None:
    """Approve each account's agent key (wallet-signed) and wait until the approvals are in."""
    txs = []
    for signer in bench.signers:
        action = signer.agent.approve_for(signer.wallet.address, 2**62, DEVNET_CHAIN_ID)
        signer.nonce += 1
        digest = compute_transaction_digest(
            DEVNET_CHAIN_ID, bytes(20), signer.wallet.address, signer.nonce, encode_action(action)
        )
        tx = SignedTransaction(
            signer.wallet.address, signer.nonce, action, None, signer.wallet.sign_digest(digest)
        )
        txs.append("0x" + encode_transaction(tx).hex())
    results = await bench.call(session, "strata_sendRawTransactions", txs)
    hashes = [r["hash"] for r in results]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        statuses = [
            (await bench.call(session, "strata_getTransaction", h))["status"] for h in hashes
        ]
        if all(s == "included" for s in statuses):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("agent approvals were not included")


async def _drain(bench: Bench, session: aiohttp.ClientSession, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await bench.call(session, "strata_getStatus")
        if status["mempool"] == 0:
            await asyncio.sleep(0.5)  # one more block for the last one in flight
            return
        await asyncio.sleep(0.2)


def _print_step(step: Step, unit: int) -> None:
    p50 = _percentile(step.latencies_ms, 0.5)
    p99 = _percentile(step.latencies_ms, 0.99)
    included_rate = step.included / step.elapsed if step.elapsed else 0
    print(
        f"  {step.workload:6} offered {step.offered_tx_per_s:>6}/s  "
        f"accepted {step.accepted / step.elapsed:>8.0f}/s  "
        f"included {included_rate:>8.0f} tx/s ({included_rate * unit:>8.0f} orders/s)  "
        f"p50 {p50 or 0:>7.1f} ms  p99 {p99 or 0:>7.1f} ms  node RSS {step.rss_kb // 1024} MB "
        f"(anon {step.anon_kb // 1024} MB)  "
        f"load generator CPU {100 * step.loadgen_cpu_s / step.elapsed:.0f}%  "
        f"refused {step.refused or '-'}",
        file=sys.stderr,
        flush=True,
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-node-"))
    node = NodeProcess(workdir / "node", block_time_ms=args.block_time_ms)
    node.start()
    assert node.proc is not None
    base = int(time.time() * 1000)
    signers = [
        Signer(wallet_from_seed(seed), agent_from_seed(f"bench-agent-{seed}"), base)
        for seed in DEVNET_FUNDED_SEEDS
    ]
    bench = Bench(node, signers)
    summary: dict[str, Any] = {}
    try:
        connector = aiohttp.TCPConnector(limit=INFLIGHT + 2)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _setup(bench, session)
            ready = asyncio.Event()
            listener = asyncio.create_task(bench.listen(session, ready))
            await ready.wait()
            steps: list[Step] = []
            plan = [("single", rate) for rate in args.rates] + [
                ("bulk", rate) for rate in args.bulk_rates
            ]
            print(
                f"node bench: {len(plan)} steps of {args.seconds} s, block time "
                f"{args.block_time_ms} ms, {len(signers)} accounts",
                file=sys.stderr,
            )
            warmup_seconds = args.seconds if args.warmup_seconds is None else args.warmup_seconds
            if warmup_seconds > 0:  # the same plan: the peak working set is reached
                for workload, rate in plan:
                    warmup = Step(workload, rate, warmup_seconds)
                    bench.presign(warmup)
                    await bench.run_step(session, warmup)
                    await _drain(bench, session)
                print(
                    f"  warm-up: the same steps, {warmup_seconds} s each; node RSS "
                    f"{_rss_kb(node.proc.pid) // 1024} MB",
                    file=sys.stderr,
                )
            await asyncio.sleep(SETTLE_S)
            rss_warm = _rss_kb(node.proc.pid)
            anon_warm = _rss_kb(node.proc.pid, "RssAnon")
            items_warm = await bench.memory_items(session)
            by_pass: list[tuple[int, int]] = []
            for number in range(1, args.passes + 1):
                for workload, rate in plan:
                    step = Step(workload, rate, args.seconds)
                    bench.presign(step)
                    await bench.run_step(session, step)
                    await _drain(bench, session)
                    step.included = await bench.count_included(
                        session, step.first_height + 1, await bench.height(session)
                    )
                    step.txs = []
                    step.batches = []
                    step.rss_kb = _rss_kb(node.proc.pid)
                    step.anon_kb = _rss_kb(node.proc.pid, "RssAnon")
                    _print_step(step, BULK if workload == "bulk" else 1)
                    steps.append(step)
                await _drain(bench, session)
                await asyncio.sleep(SETTLE_S)
                by_pass.append((_rss_kb(node.proc.pid), _rss_kb(node.proc.pid, "RssAnon")))
                if args.passes > 1:
                    print(
                        f"  pass {number} of {args.passes}: node RSS {by_pass[-1][0] // 1024} MB "
                        f"(anon {by_pass[-1][1] // 1024} MB) after {SETTLE_S:.0f} s idle",
                        file=sys.stderr,
                    )
            rss_end, anon_end = by_pass[-1]
            items_end = await bench.memory_items(session)
            last = await bench.height(session)
            included = await bench.included_hashes(session, last)
            lost = len(bench.accepted_hashes - included)
            listener.cancel()

        def rate(step: Step) -> float:
            return min(step.included, step.accepted) / step.elapsed if step.elapsed else 0.0

        singles = [s for s in steps if s.workload == "single"]
        bulks = [s for s in steps if s.workload == "bulk"]
        at_5k = min(singles, key=lambda s: abs(s.offered_tx_per_s - 5000)) if singles else None
        summary = {
            "tx_per_s": round(max((rate(s) for s in singles), default=0.0)),
            "bulk_orders_per_s": round(max((rate(s) * BULK for s in bulks), default=0.0)),
            "latency_ms_p50": None if at_5k is None else _percentile(at_5k.latencies_ms, 0.5),
            "latency_ms_p99": None if at_5k is None else _percentile(at_5k.latencies_ms, 0.99),
            "latency_at_offered_tx_per_s": None if at_5k is None else at_5k.offered_tx_per_s,
            "lost": lost,
            "rss_growth_pct": round(100 * (rss_end - rss_warm) / rss_warm, 1),
            "anon_rss_growth_pct": round(100 * (anon_end - anon_warm) / anon_warm, 1),
            "rss_mb_after_warmup": rss_warm // 1024,
            "rss_mb_end": rss_end // 1024,
            "anon_rss_mb_after_warmup": anon_warm // 1024,
            "anon_rss_mb_end": anon_end // 1024,
            "rss_mb_by_pass": [rss // 1024 for rss, _ in by_pass],
            "anon_rss_mb_by_pass": [anon // 1024 for _, anon in by_pass],
            "memory_items_after_warmup": items_warm,
            "memory_items_end": items_end,
            "block_time_ms": args.block_time_ms,
            "data_dir": str(workdir / "node") if args.keep_data_dir else None,
            "steps": [
                {
                    "workload": s.workload,
                    "offered_tx_per_s": s.offered_tx_per_s,
                    "accepted_tx_per_s": round(s.accepted / s.elapsed),
                    "included_tx_per_s": round(rate(s)),
                    "latency_ms_p50": _percentile(s.latencies_ms, 0.5),
                    "latency_ms_p99": _percentile(s.latencies_ms, 0.99),
                    "refused": s.refused,
                    "loadgen_cpu_pct": round(100 * s.loadgen_cpu_s / s.elapsed),
                }
                for s in steps
            ],
        }
    finally:
        node.terminate(60)
        if args.keep_data_dir:
            print(f"  the node's data directory is kept: {workdir / 'node'}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)  # a full run writes about a gigabyte
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strata bench node", description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="*", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--bulk-rates", type=int, nargs="*", default=[500, 1500, 2500])
    parser.add_argument("--seconds", type=float, default=10.0, help="per step")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        help="per step of the warm-up pass (default: --seconds)",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        help="measured passes of the steps after the warm-up (a soak: the node's memory is "
        "read after each, and rss_growth_pct compares the last with after the warm-up)",
    )
    parser.add_argument("--block-time-ms", type=int, default=200)
    parser.add_argument(
        "--keep-data-dir",
        action="store_true",
        help="keep the node's data directory (its chain, index and logs) for inspection",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    summary = asyncio.run(run(args))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key in (
            "tx_per_s",
            "bulk_orders_per_s",
            "latency_ms_p50",
            "latency_ms_p99",
            "lost",
            "rss_growth_pct",
            "anon_rss_growth_pct",
        ):
            print(f"{key:20} {summary[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

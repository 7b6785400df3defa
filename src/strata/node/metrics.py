"""Prometheus metrics of the node (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BLOCK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.height = Gauge("strata_height", "Committed block height", registry=r)
        self.mempool = Gauge("strata_mempool_depth", "Pending transactions", registry=r)
        self.block_build = Histogram(
            "strata_block_build_seconds", "Block execution time", buckets=_BLOCK_BUCKETS, registry=r
        )
        self.block_commit = Histogram(
            "strata_block_commit_seconds",
            "Durable commit time of a block",
            buckets=_BLOCK_BUCKETS,
            registry=r,
        )
        self.block_interval = Histogram(
            "strata_block_interval_seconds",
            "Time between committed blocks",
            buckets=_BLOCK_BUCKETS,
            registry=r,
        )
        self.block_txs = Counter(
            "strata_included_transactions", "Included transactions", registry=r
        )
        self.admitted = Counter(
            "strata_admitted_transactions", "Transactions admitted to the mempool", registry=r
        )
        self.refused = Counter(
            "strata_refused_transactions",
            "Transactions refused at admission, by error name",
            ["name"],
            registry=r,
        )
        self.left_out = Counter(
            "strata_left_out_transactions", "Admitted transactions a block left out", registry=r
        )
        self.matching_seconds = Counter(
            "strata_matching_seconds",
            "Main-thread time in the matching phase with market-sharded matching on, by part: "
            "own (its own markets), waiting (for the worker processes' answers), handover "
            "(catching them up, sending, gathering)",
            ["part"],
            registry=r,
        )
        self.stage_seconds = Counter(
            "strata_stage_seconds",
            "Main-thread time by stage (admission, execute, seal, commit, report; seal: with the "
            "commitment process, waiting for a block's root and adopting it): with the wall clock, "
            "how busy the one thread that orders every block is",
            ["stage"],
            registry=r,
        )
        self.signature_batch = Histogram(
            "strata_signature_batch_seconds",
            "Time of an admission batch's signature checks in the precompile's workers",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.memory_items = Gauge(
            "strata_memory_items",
            "Entries of the node's bounded in-memory structures, by kind",
            ["kind"],
            registry=r,
        )
        self.hot_market_share = Histogram(
            "strata_block_hot_market_share",
            "The busiest market's share of a block's book operations (node/conflicts.py)",
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0),
            registry=r,
        )
        self.parallel_bound = Histogram(
            "strata_block_parallel_bound",
            "The most sharding matching by market could speed up a block (1 / hot share)",
            buckets=(1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 3.0, 4.0, 8.0),
            registry=r,
        )
        self.markets_active = Gauge(
            "strata_block_markets_active",
            "Markets with book operations in the last block",
            registry=r,
        )
        self.cross_market_accounts = Gauge(
            "strata_block_cross_market_accounts",
            "Accounts with book operations in more than one market in the last block",
            registry=r,
        )
        self.index_lag = Gauge(
            "strata_index_lag_blocks",
            "Committed blocks the index process has not written yet",
            registry=r,
        )
        self.inclusion_latency = Histogram(
            "strata_inclusion_latency_seconds",
            "Admission to durable inclusion",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "strata_rpc_requests", "JSON-RPC requests by method", ["method"], registry=r
        )
        self.rpc_errors = Counter(
            "strata_rpc_errors", "JSON-RPC errors by name", ["name"], registry=r
        )
        self.ws_connections = Gauge("strata_ws_connections", "Open WebSockets", registry=r)
        self.subscriptions = Gauge("strata_subscriptions", "Live subscriptions", registry=r)
        self.da_backlog = Gauge(
            "strata_da_backlog_blocks", "Committed blocks not yet posted to DA", registry=r
        )
        self.da_posted = Counter("strata_da_posted_batches", "Batches posted to DA", registry=r)
        self.da_posted_height = Gauge(
            "strata_da_posted_height", "Last height posted to DA", registry=r
        )
        self.da_errors = Counter("strata_da_post_errors", "Failed DA posts (retried)", registry=r)
        self.dropped_subscribers = Counter(
            "strata_dropped_subscribers", "Subscribers dropped for falling behind", registry=r
        )

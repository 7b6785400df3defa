"""The conflict report of a block: what in it could run in parallel, and what serializes it.

``ARCHITECTURE.md`` partitions matching by market and settlement by account, so a block's
matching can spread over as many workers as it has busy markets, and no further than its busiest
market allows. For each committed block the node computes, from the transactions it included:

- ``ops_by_market``: book operations per market (each placement, modify or cancel counts one; a
  cancel-all of every market counts one in each);
- ``hot_market_share``: the busiest market's share of them (1.0: one hot market serializes the
  whole matching phase);
- ``parallel_bound``: ``1 / hot_market_share``, the most that sharding matching by market could
  speed it up for this block;
- ``cross_market_accounts``: accounts with operations in more than one market (their margin ties
  those markets together at admission and settlement).

The node exports them as metrics (``strata_block_hot_market_share``,
``strata_block_parallel_bound``, ``strata_block_markets_active``,
``strata_block_cross_market_accounts``) beside the time of each stage
(``strata_stage_seconds{stage}``: execute, commit, report), and ``strata bench parallel`` shows
where each core's time went (``node_cpu_pct`` and ``--trace``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from strata.stf.transactions import (
    BulkCancel,
    CancelAll,
    CancelOrder,
    SignedTransaction,
    placements_of,
)


@dataclass(frozen=True, slots=True)
class ConflictReport:
    ops_by_market: dict[int, int]
    cross_market_accounts: int

    @property
    def total_ops(self) -> int:
        return sum(self.ops_by_market.values())

    @property
    def hot_market_share(self) -> float:
        total = self.total_ops
        return max(self.ops_by_market.values()) / total if total else 0.0

    @property
    def parallel_bound(self) -> float:
        share = self.hot_market_share
        return 1 / share if share else 1.0


def _markets_of(tx: SignedTransaction, all_markets: Sequence[int]) -> list[int]:
    """The market of each book operation of ``tx`` (none for account actions)."""
    action = tx.action
    placed = placements_of(action)
    if placed:
        return [order.market_id for order in placed]
    if isinstance(action, CancelOrder):
        return [action.market_id]
    if isinstance(action, BulkCancel):
        return [cancel.market_id for cancel in action.cancels]
    if isinstance(action, CancelAll):
        return list(all_markets) if action.market_id is None else [action.market_id]
    return []


def report_block(txs: Iterable[SignedTransaction], all_markets: Sequence[int]) -> ConflictReport:
    """The conflict report of a block that included ``txs``."""
    ops: Counter[int] = Counter()
    markets_of_account: dict[bytes, set[int]] = {}
    for tx in txs:
        touched = _markets_of(tx, all_markets)
        if not touched:
            continue
        ops.update(touched)
        markets_of_account.setdefault(tx.account, set()).update(touched)
    cross = sum(1 for markets in markets_of_account.values() if len(markets) > 1)
    return ConflictReport(dict(ops), cross)

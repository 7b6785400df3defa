"""The golden-vector file format, shared by the generator and the runner.

A vector is one JSON object (see ``tests/vectors/README.md``). This module holds the pieces both
sides must agree on: where the files live, how a block's expectation is computed from a
``BlockOutput``, and the readable ``post`` summary of a state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from strata.modules import clearing, collateral, liquidation
from strata.modules.clearing.events import OrderUpdate
from strata.state.store import State
from strata.stf.block import BlockOutput, compute_header_hash
from strata.stf.genesis import GenesisConfig

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors" / "stf"

Json = dict[str, Any]


def encode_genesis(config: GenesisConfig) -> Any:
    """The genesis config as plain JSON data (msgspec's JSON form: bytes are base64)."""
    return json.loads(msgspec.json.encode(config))


def decode_genesis(data: Any) -> GenesisConfig:
    return msgspec.json.decode(json.dumps(data).encode(), type=GenesisConfig)


def compute_block_expect(output: BlockOutput) -> Json:
    """What a valid block must reproduce: its header commitments, receipt statuses, the
    ``(status, reason)`` of every ``OrderUpdate`` of each receipt, and what the builder left
    out."""
    header = output.header
    return {
        "header_hash": compute_header_hash(header).hex(),
        "state_root": header.state_root.hex(),
        "transactions_root": header.transactions_root.hex(),
        "receipts_root": header.receipts_root.hex(),
        "withdrawals_root": header.withdrawals_root.hex(),
        "gas_used": header.gas_used,
        "receipt_status": [receipt.status for receipt in output.receipts],
        "order_updates": [
            [[e.status, e.reason] for e in receipt.events if isinstance(e, OrderUpdate)]
            for receipt in output.receipts
        ],
        "rejected": [[tx_hash.hex(), code] for tx_hash, code in output.rejected],
    }


def summarize_state(state: State) -> Json:
    """A readable subset of the state: balances, reservations, positions (with the funding index
    each last settled at), open orders, fee pool, insurance fund, funding per market
    (``[index_micro, rate_ppm, in_transit_quote, dust_micro]``), recorded bad debt, open
    interest per market, the holders registry (in its order), ledger totals and the tip.
    The insurance fund is the account ``ff..ff``. Addresses are lowercase hex; orders are
    ``[order_id, owner, side, price_ticks, size_lots]`` in id order."""
    balances = state.tables["balances"].data
    reserved = state.tables["reserved"].data
    positions = state.tables["positions"].data
    ledger = collateral.get_ledger(state)
    return {
        "balances": {a.hex(): balances[a] for a in sorted(balances)},
        "reserved": {a.hex(): reserved[a] for a in sorted(reserved)},
        "positions": {
            a.hex(): [
                [p.market_id, p.size_lots, p.entry_cost_quote, p.funding_index_micro]
                for p in positions[a]
            ]
            for a in sorted(positions)
        },
        "open_orders": {
            str(market_id): [
                [
                    o.order_id,
                    o.owner.hex(),
                    "buy" if o.is_buy else "sell",
                    o.price_ticks,
                    o.size_lots,
                ]
                for o in state.books[market_id].iter_orders()
            ]
            for market_id in sorted(state.books)
        },
        "fee_pool": clearing.get_fee_pool(state),
        "insurance_fund": collateral.get_insurance_fund(state),
        "funding": {
            str(m): [r.index_micro, r.rate_ppm, r.in_transit_quote, r.dust_micro]
            for m, r in sorted(state.tables["funding"].data.items())
        },
        "bad_debt": liquidation.get_bad_debt(state),
        "open_interest": {
            str(m): clearing.get_open_interest(state, m) for m in sorted(state.books)
        },
        "holders": [a.hex() for a in clearing.get_holders(state)],
        "ledger": {
            "deposited_quote": ledger.deposited_quote,
            "withdrawn_quote": ledger.withdrawn_quote,
            "next_deposit_index": ledger.next_deposit_index,
            "next_withdrawal_id": ledger.next_withdrawal_id,
        },
        "tip": {"height": state.tip.height, "header_hash": state.tip.header_hash.hex()},
    }


def dump_vector(vector: Json) -> str:
    """The exact text written to disk (stable key order, trailing newline)."""
    return json.dumps(vector, indent=1, sort_keys=False) + "\n"


def iter_vector_paths() -> list[Path]:
    return sorted(VECTOR_DIR.glob("*.json"))

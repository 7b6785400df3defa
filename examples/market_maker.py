"""A devnet market maker: a ladder of post-only quotes around the mark price, renewed each block.

Run a devnet node, then the bot (from a checkout with the package installed)::

    strata devnet                                   # serves http://127.0.0.1:8545
    python examples/market_maker.py --url http://127.0.0.1:8545 --seed mm-1 --market BTC-PERP

The key is derived from the ``--seed`` label (devnet only: anyone who knows the label has the key)
and funded from the devnet faucet. Each new block the bot places a fresh ladder with
``bulk_place`` and cancels the previous one by client id in the same block: a block runs post-only
orders before cancels, so the book is never left without quotes. Ctrl-C cancels everything.
"""

from __future__ import annotations

import argparse
import time

from strata.client import CancelSpec, Client, OrderSpec, Trader, wallet_from_seed


def wait_blocks(client: Client, count: int) -> int:
    start = client.block_number()
    while (height := client.block_number()) < start + count:
        time.sleep(0.05)
    return height


def main() -> None:
    parser = argparse.ArgumentParser(description="Quote around the mark price on a devnet.")
    parser.add_argument("--url", default="http://127.0.0.1:8545")
    parser.add_argument("--seed", default="market-maker", help="devnet key label")
    parser.add_argument("--market", default="BTC-PERP")
    parser.add_argument("--levels", type=int, default=5, help="quotes per side")
    parser.add_argument("--step", type=int, default=2, help="ticks between levels")
    parser.add_argument("--size", default="0.01", help="size of each quote (base units)")
    args = parser.parse_args()

    client = Client(args.url)
    trader = Trader(client, wallet_from_seed(args.seed))
    client.faucet(trader.account, "1000000")  # USDC, credited in the next block
    market = trader.market(args.market)
    trader.cancel_all(market.symbol)
    height, rounds = wait_blocks(client, 2), 0
    previous: list[int | None] = []
    try:
        while True:
            mark = next(m["mark_price"] for m in client.markets() if m["symbol"] == market.symbol)
            if mark is not None:
                mark_ticks = market.price_to_ticks(mark)
                base = 1000 * (1 + rounds % 2)  # two sets of client ids, used in turn
                orders = [
                    OrderSpec(
                        market.symbol,
                        side,
                        market.ticks_to_price(ticks),
                        args.size,
                        tif="post_only",
                        client_id=base + 2 * level + (side == "sell"),
                    )
                    for level in range(args.levels)
                    for side, ticks in (
                        ("buy", mark_ticks - args.step * (level + 1)),
                        ("sell", mark_ticks + args.step * (level + 1)),
                    )
                    if ticks > 0
                ]
                trader.bulk_place(orders)
                if previous:
                    trader.bulk_cancel([CancelSpec(market.symbol, client_id=c) for c in previous])
                previous, rounds = [order.client_id for order in orders], rounds + 1
                print(f"height {height}: mark {mark}, {len(orders)} quotes")
            height = wait_blocks(client, 1)
    except KeyboardInterrupt:
        trader.cancel_all(market.symbol, wait=True)


if __name__ == "__main__":
    main()

"""A devnet taker: immediate-or-cancel orders against the best quotes, alternating buy and sell.

Run a devnet node and a market maker, then the taker::

    strata devnet                                   # serves http://127.0.0.1:8545
    python examples/market_maker.py --seed mm-1 &
    python examples/taker.py --url http://127.0.0.1:8545 --seed taker-1 --market BTC-PERP

The key is derived from the ``--seed`` label (devnet only) and funded from the devnet faucet. Each
order is an IOC whose limit is the best opposite price moved ``--slippage`` ticks against us (the
worst price accepted); the bot waits for its block and prints the fills from the receipt.
"""

from __future__ import annotations

import argparse
import time

from strata.client import Client, RpcError, Trader, wallet_from_seed


def main() -> None:
    parser = argparse.ArgumentParser(description="Send IOC orders on a devnet.")
    parser.add_argument("--url", default="http://127.0.0.1:8545")
    parser.add_argument("--seed", default="taker", help="devnet key label")
    parser.add_argument("--market", default="BTC-PERP")
    parser.add_argument("--size", default="0.005", help="size of each order (base units)")
    parser.add_argument("--slippage", type=int, default=5, help="ticks beyond the best price")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between orders")
    args = parser.parse_args()

    client = Client(args.url)
    trader = Trader(client, wallet_from_seed(args.seed))
    start = client.block_number()
    client.faucet(trader.account, "100000")  # USDC, credited in the next block
    while client.block_number() < start + 2:
        time.sleep(0.05)
    market = trader.market(args.market)
    side = "buy"
    while True:
        book = client.book(market.symbol, depth=1)
        levels = book["asks"] if side == "buy" else book["bids"]
        if levels:
            best_ticks = market.price_to_ticks(levels[0][0])
            limit = best_ticks + args.slippage if side == "buy" else best_ticks - args.slippage
            price = market.ticks_to_price(max(limit, 1))
            try:
                result = trader.place(market.symbol, side, price, args.size, tif="ioc", wait=True)
            except RpcError as exc:
                print(f"{side} refused: {exc.name}: {exc.message}")
            else:
                events = (result.get("receipt") or {}).get("events", [])
                fills = [f"{e['size']} @ {e['price']}" for e in events if e.get("type") == "fill"]
                print(f"{side} {args.size} up to {price}: {', '.join(fills) or 'no fill'}")
        side = "sell" if side == "buy" else "buy"
        time.sleep(args.interval)


if __name__ == "__main__":
    main()

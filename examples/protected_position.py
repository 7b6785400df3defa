"""A protected position: isolated margin, a stop-loss on the mark, and a dead-man switch.

Run a devnet with quotes to trade against, then the example::

    strata devnet --demo                            # bots quote and the oracle moves
    python examples/protected_position.py --url http://127.0.0.1:8545 --seed protected-1

The key is derived from the ``--seed`` label (devnet only) and funded from the devnet faucet. The
example switches the market to isolated margin (the position then keeps its own cash and can
lose no more than it), buys ``--size`` at the best ask, adds ``--extra`` USDC of margin to the
position, and places a stop-loss that sells when the mark falls ``--stop`` percent below the
fill. It then renews a dead-man switch every few seconds while printing the position's own
margin; if the script stops, the switch cancels the account's orders and triggers (the stop-loss
too) a minute later, and the isolated margin still bounds the loss. Ctrl-C clears the switch
and leaves the position and its stop-loss in place.
"""

from __future__ import annotations

import argparse
import time
from decimal import Decimal

from strata.client import Client, RpcError, Trader, wallet_from_seed

SWITCH_MS = 60_000
"""The dead-man switch fires this long after its last renewal."""


def main() -> None:
    parser = argparse.ArgumentParser(description="Open an isolated position with a stop-loss.")
    parser.add_argument("--url", default="http://127.0.0.1:8545")
    parser.add_argument("--seed", default="protected", help="devnet key label")
    parser.add_argument("--market", default="BTC-PERP")
    parser.add_argument("--size", default="0.01", help="size to buy (base units)")
    parser.add_argument("--extra", default="50", help="USDC of margin added to the position")
    parser.add_argument("--stop", default="2", help="stop-loss distance below the fill, percent")
    args = parser.parse_args()

    client = Client(args.url)
    trader = Trader(client, wallet_from_seed(args.seed))
    start = client.block_number()
    client.faucet(trader.account, "10000")  # USDC, credited in the next block
    while client.block_number() < start + 2:
        time.sleep(0.05)
    market = trader.market(args.market)

    mode = trader.set_margin_mode(market.symbol, True, wait=True)
    if mode["receipt"]["status"]:  # POSITION_OPEN: a position from an earlier run
        print("the account already holds a position here: its margin mode stays")
    asks = client.book(market.symbol, depth=1)["asks"]
    if not asks:
        raise SystemExit(f"no ask in {market.symbol}: run `strata devnet --demo` or a market maker")
    bought = trader.place(market.symbol, "buy", asks[0][0], args.size, tif="ioc", wait=True)
    fills = [e for e in bought["receipt"]["events"] if e["type"] == "fill"]
    if not fills:
        raise SystemExit("the ask was gone before our order: try again")
    fill_ticks = market.price_to_ticks(fills[0]["price"])
    filled = sum(Decimal(f["size"]) for f in fills)
    print(f"bought {filled} {market.symbol} at {fills[0]['price']} (isolated)")

    trader.move_isolated_margin(market.symbol, args.extra, wait=True)
    stop_ticks = int(fill_ticks * (100 - Decimal(args.stop)) / 100)
    stop = market.ticks_to_price(stop_ticks)
    placed = trader.stop_loss(market.symbol, "sell", stop, str(filled), wait=True)
    (trigger,) = [e for e in placed["receipt"]["events"] if e["type"] == "trigger_update"]
    print(f"stop-loss {trigger['trigger_id']}: sell {filled} when the mark reaches {stop}")

    try:
        while True:
            trader.schedule_cancel(time.time_ns() // 1_000_000 + SWITCH_MS, wait=True)
            account = client.account(trader.account)
            held = [p for p in account["positions"] if p["market"] == market.symbol]
            if not held:
                print("the position is closed (stop-loss or liquidation)")
                break
            margin = held[0]["isolated_margin"] or {}
            print(
                f"mark {held[0]['mark_price']}  cash {margin.get('cash')}  equity "
                f"{margin.get('equity')}  ratio {margin.get('margin_ratio')}  "
                f"cross equity {account['equity']}"
            )
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            trader.schedule_cancel(None, wait=True)
        except RpcError as exc:
            print(f"clearing the switch failed: {exc.name}")


if __name__ == "__main__":
    main()

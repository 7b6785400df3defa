"""The built-in incident scenarios (``strata scenario list``): each a script of blocks on the real
engine and the assertions that say the risk engine held. ``docs/risk.md`` tells their stories.

Units: balances in quote units (``USDC`` = 1e6), prices in ticks, sizes in lots. Every scenario is
deterministic: keys come from labels, the cascade's accounts from a seeded generator.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from strata.core.errors import ErrorCode
from strata.modules import clearing, collateral, liquidation, margin
from strata.modules.liquidation import Deleveraged, FundDeleveraged, PositionLiquidated
from strata.modules.markets import MarginTier, Market
from strata.scenarios.harness import (
    FUND,
    USDC,
    BlockRow,
    ScenarioChain,
    ScenarioRun,
    format_usdc,
)
from strata.stf.transactions import CancelAll, PlaceOrder, Withdraw

GTC, IOC = 0, 1

BTC = Market(
    market_id=1,
    symbol="BTC-PERP",
    quote_per_tick_lot=1_000,  # tick $1, lot 0.001 BTC: one lot at one tick is 0.001 USDC
    min_size_lots=1,
    max_size_lots=10_000_000,
    max_price_ticks=10_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=200,
    margin_tiers=(MarginTier(5_000_000 * USDC, 200_000, 100_000),),
)
ETH = Market(
    market_id=2,
    symbol="ETH-PERP",
    quote_per_tick_lot=100,  # tick $0.1, lot 0.001 ETH
    min_size_lots=1,
    max_size_lots=100_000_000,
    max_price_ticks=100_000_000,
    initial_margin_ppm=100_000,
    maintenance_margin_ppm=50_000,
    max_open_orders_per_account=200,
)


def thin_market(market_id: int, symbol: str, *, max_open_interest_lots: int = 0) -> Market:
    """A low-liquidity token market: tick $0.0001, lot one token (``qptl`` 100)."""
    return Market(
        market_id=market_id,
        symbol=symbol,
        quote_per_tick_lot=100,
        min_size_lots=1,
        max_size_lots=1_000_000_000,
        max_price_ticks=1_000_000,
        initial_margin_ppm=100_000,
        maintenance_margin_ppm=50_000,
        max_open_orders_per_account=200,
        max_open_interest_lots=max_open_interest_lots,
    )


Progress = Callable[[BlockRow], None] | None


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    story: str
    run: Callable[[Progress], ScenarioRun]


# --------------------------------------------------------------------------------------------
# mango
# --------------------------------------------------------------------------------------------


def run_mango(progress: Progress = None) -> ScenarioRun:
    """A thin market's price is pumped to borrow against unrealized profit (Mango Markets, 2022).

    ``attacker-long`` and ``attacker-short`` open 400M MNGO against each other at 380 ticks. Then:
    one of the three oracle venues is pumped 10x (the median ignores it); a wash trade at 10x sets
    the last trade (the mark's book component is the median of bid, ask and last trade, so it
    does not move); then every venue reports the pump for 12 blocks: the index climbs at most 5%
    a block, and every block ``attacker-long`` tries to withdraw its unrealized profit and is
    refused (``INSUFFICIENT_FREE_COLLATERAL``). ``attacker-short`` is liquidated on the way up.
    The venues return to the true price; the loss is what the insurance fund's books show.
    """
    mngo = thin_market(3, "MNGO-PERP")
    true_price = 380
    chain = ScenarioChain(
        markets_=(BTC, mngo),
        prices={1: 60_000, 3: true_price},
        balances={
            "attacker-long": 5_000_000 * USDC,
            "attacker-short": 3_000_000 * USDC,
            "mm": 20_000_000 * USDC,
        },
        fund_quote=2_000_000 * USDC,
        oracle_keys=3,
        on_block=progress,
    )
    run = ScenarioRun("mango", chain)
    size = 400_000_000
    deposited = 8_000_000 * USDC
    chain.set_price(3, true_price)
    # A thin book around the true price.
    quotes = [PlaceOrder(3, True, true_price - 5 - i, 2_000_000, GTC) for i in range(5)]
    quotes += [PlaceOrder(3, False, true_price + 5 + i, 2_000_000, GTC) for i in range(5)]
    chain.block(chain.bulk("mm", quotes), "mm quotes MNGO")
    out = chain.block(
        [
            chain.tx("attacker-short", PlaceOrder(3, False, true_price, size, GTC)),
            chain.tx("attacker-long", PlaceOrder(3, True, true_price, size, IOC)),
        ],
        "attackers open 400M MNGO",
    )
    chain.check(
        "attackers hold 400M MNGO long and short",
        chain.position("attacker-long", 3) == size and chain.position("attacker-short", 3) == -size,
        f"statuses {chain.statuses(out)}",
    )
    # 1. One venue of three pumped: the median ignores it.
    chain.set_key_prices(3, [true_price * 10, true_price, true_price])
    chain.idle(2, "one venue of three pumped 10x")
    index, mark = chain.rows[-1].indexes[3], chain.rows[-1].marks[3]
    chain.check(
        "one manipulated venue of three does not move the index", index == true_price, f"{index}"
    )
    # 2. A wash trade at 10x: the last trade alone does not move the mark.
    chain.set_price(3, true_price)
    chain.block(
        [
            chain.tx("attacker-short", PlaceOrder(3, False, true_price * 10, 1, GTC)),
            chain.tx("attacker-long", PlaceOrder(3, True, true_price * 10, 1, IOC)),
        ],
        "wash trade of 1 lot at 10x",
    )
    chain.block((), "the mark reads the wash trade")
    mark = chain.rows[-1].marks[3]
    chain.check(
        "a wash trade at 10x does not move the mark", mark <= true_price + 10, f"mark {mark}"
    )
    # 3. Every venue pumped: the index is clamped; unrealized profit cannot be withdrawn.
    chain.set_price(3, true_price * 10)
    refused = attempts = 0
    clamp_ok = True
    max_move = chain.params.oracle_max_move_ppm
    for _ in range(12):
        risk = chain.get_risk(chain.addr("attacker-long"))
        before = chain.rows[-1].indexes[3]
        action = Withdraw(max(risk.free_collateral_quote, 1), chain.addr("attacker-long"))
        out = chain.block([chain.tx("attacker-long", action)], "every venue pumped 10x")
        attempts += 1
        if risk.unrealized_profit_quote > 0:
            refused += out.receipts[0].status == ErrorCode.INSUFFICIENT_FREE_COLLATERAL
        after = chain.rows[-1].indexes[3]
        clamp_ok &= after - before <= -(-before * max_move // 1_000_000)
    chain.check("the index moves at most oracle_max_move_ppm per block", clamp_ok)
    chain.check(
        "every withdrawal of unrealized profit is refused (INSUFFICIENT_FREE_COLLATERAL)",
        refused == attempts - 1 and refused > 0,
        f"{refused} of {attempts} attempts refused",
    )
    peak = chain.rows[-1].indexes[3]
    run.notes.append(f"index after 12 pumped blocks: {peak} ticks ({peak * 100 // true_price}%)")
    liquidated = any(
        isinstance(e, PositionLiquidated) and e.account == chain.addr("attacker-short")
        for _, e in chain.risk_events()
    )
    chain.check("attacker-short is liquidated on the way up", liquidated)
    # 4. The venues return to the true price.
    chain.set_price(3, true_price)
    chain.idle(40, "venues back at the true price")
    # 5. The attackers take out everything they are allowed to.
    withdrawn = 0
    for name in ("attacker-long", "attacker-short"):
        risk = chain.get_risk(chain.addr(name))
        if risk.withdrawable_quote > 0:
            out = chain.block(
                [chain.tx(name, Withdraw(risk.withdrawable_quote, chain.addr(name)))],
                f"{name} withdraws what it may",
            )
            if out.receipts[0].status == 0:
                withdrawn += risk.withdrawable_quote
    left = sum(chain.get_equity(chain.addr(n)) for n in ("attacker-long", "attacker-short"))
    gain = withdrawn + left - deposited
    figures = chain.figures()
    fund_loss = -figures["insurance_fund_change_quote"]
    run.notes.append(
        f"attackers: deposited {format_usdc(deposited)}, withdrew {format_usdc(withdrawn)}, "
        f"equity left {format_usdc(left)}, net {format_usdc(gain)} USDC"
    )
    chain.check("no bad debt", figures["bad_debt_quote"] == 0, str(figures["bad_debt_quote"]))
    chain.check(
        "the insurance fund's loss is bounded by its capital",
        fund_loss <= 2_000_000 * USDC,
        f"fund change {format_usdc(-fund_loss)} USDC",
    )
    chain.check(
        "the attackers' gain is bounded by the insurance fund's loss",
        gain <= max(fund_loss, 0),
        f"gain {format_usdc(gain)}, fund loss {format_usdc(fund_loss)}",
    )
    return run


# --------------------------------------------------------------------------------------------
# jelly
# --------------------------------------------------------------------------------------------


def run_jelly(progress: Progress = None) -> ScenarioRun:
    """A trader self-liquidates a large short into the backstop, then pumps the price (JELLY on
    Hyperliquid, 2025).

    ``whale-short`` sells 150M JELLY to its own ``whale-long`` at 500 ticks with barely the
    initial margin; a third account's attempt to add 60M more passes the market's open-interest
    cap (200M) and is refused. The venues pump the price 5% a block: the short goes under and is
    liquidated in slices (``liquidation_max_notional_per_block_quote``: 2M USDC per block), the
    thin book absorbs little, the insurance fund takes slices while its loss per account and
    block stays under ``insurance_max_loss_per_account_quote`` (25k USDC) and its leverage limits
    hold, and the rest is auto-deleveraged against ``whale-long``. The pump goes on while the fund
    holds the short: its stop (``insurance_stop_loss_ppm``) deleverages it, it never adds to the
    losing short, and the price returns.
    """
    jelly = thin_market(4, "JELLY-PERP", max_open_interest_lots=200_000_000)
    chain = ScenarioChain(
        markets_=(BTC, jelly),
        prices={1: 60_000, 4: 500},
        balances={
            "whale-short": 800_000 * USDC,
            "whale-long": 2_000_000 * USDC,
            "whale-extra": 2_000_000 * USDC,
            "mm": 5_000_000 * USDC,
        },
        fund_quote=3_000_000 * USDC,
        liquidation_max_notional_per_block_quote=2_000_000 * USDC,
        insurance_max_loss_per_account_quote=25_000 * USDC,
        on_block=progress,
    )
    run = ScenarioRun("jelly", chain)
    size = 150_000_000
    chain.set_price(4, 500)
    quotes = [PlaceOrder(4, True, 495 - i, 1_000_000, GTC) for i in range(3)]
    quotes += [PlaceOrder(4, False, 505 + i, 1_000_000, GTC) for i in range(3)]
    chain.block(chain.bulk("mm", quotes), "mm quotes JELLY thinly")
    # Two blocks: the cap counts every order admitted in a block that is not reduce-only.
    chain.block([chain.tx("whale-short", PlaceOrder(4, False, 500, size, GTC))], "whale-short asks")
    chain.block([chain.tx("whale-long", PlaceOrder(4, True, 500, size, IOC))], "whale-long takes")
    chain.check("whale-short holds 150M short", chain.position("whale-short", 4) == -size)
    out = chain.block(
        [chain.tx("whale-extra", PlaceOrder(4, True, 510, 60_000_000, GTC))],
        "60M more would pass the OI cap",
    )
    chain.check(
        "the open-interest cap refuses 60M more (OPEN_INTEREST_CAP)",
        out.receipts[0].status == ErrorCode.OPEN_INTEREST_CAP,
        f"status {out.receipts[0].status}",
    )
    chain.set_price(4, 5_000)
    fund_peak_lots = 0
    fund_worst = 0
    for _ in range(20):
        chain.block((), "venues pump JELLY")
        fund_peak_lots = max(fund_peak_lots, abs(chain.position("insurance-fund", 4)))
        fund_worst = min(fund_worst, chain.get_equity(FUND) - chain.fund_equity_start)
    chain.set_price(4, 500)
    for _ in range(50):
        chain.block((), "venues back at 500")
        fund_peak_lots = max(fund_peak_lots, abs(chain.position("insurance-fund", 4)))
        fund_worst = min(fund_worst, chain.get_equity(FUND) - chain.fund_equity_start)
    slices = [e for _, e in chain.risk_events() if isinstance(e, PositionLiquidated)]
    short = [e for e in slices if e.account == chain.addr("whale-short")]
    limit = chain.params.liquidation_max_notional_per_block_quote
    chain.check(
        "the per-block notional limit held back part of the short",
        any(e.slice_lots < e.wanted_lots for e in short),
        f"{len(short)} slices of whale-short",
    )
    per_block: dict[tuple[int, int], int] = {}
    for height, e in chain.risk_events():
        # The fund's own stops close at the mark by deleveraging, outside the book's limit.
        if isinstance(e, PositionLiquidated) and e.account != FUND:
            key = (height, e.market_id)
            qptl = chain.markets[e.market_id].quote_per_tick_lot
            per_block[key] = per_block.get(key, 0) + e.slice_lots * e.mark_ticks * qptl
    chain.check(
        "no block liquidates more notional than the limit in a market",
        all(v <= limit for v in per_block.values()),
        f"largest {format_usdc(max(per_block.values(), default=0))} USDC",
    )
    capped = [
        e
        for e in short
        if e.adl_lots
        and max(0, -(e.equity_share_quote * e.adl_lots // max(e.slice_lots, 1)))
        > e.fund_loss_limit_quote
    ]
    chain.check(
        "the fund's loss limit per account and block sent slices to ADL",
        bool(capped) or any(e.adl_lots for e in short),
        f"{len(capped)} slices over the fund's per-account limit",
    )
    chain.check(
        "every fund loss on a slice is within the per-account limit",
        all(e.fund_loss_quote <= e.fund_loss_limit_quote for e in slices),
    )
    backstop = sum(e.backstop_value_quote for e in short)
    derisked = [e for _, e in chain.risk_events() if isinstance(e, FundDeleveraged)]
    chain.check(
        "as the pump went on, the fund's own stops closed what it had taken over",
        bool(derisked) and backstop > 0,
        f"backstop {format_usdc(backstop)} USDC, {len(derisked)} fund deleveragings",
    )
    chain.check(
        "the fund never holds more than the open-interest cap",
        fund_peak_lots <= jelly.max_open_interest_lots,
        f"peak {fund_peak_lots:,} lots",
    )
    figures = chain.figures()
    chain.check("no bad debt", figures["bad_debt_quote"] == 0, str(figures["bad_debt_quote"]))
    chain.check(
        "the fund's worst drawdown stays within half its capital",
        -fund_worst < 1_500_000 * USDC,
        f"worst {format_usdc(fund_worst)} USDC",
    )
    run.notes.append(
        f"fund: peak position {fund_peak_lots:,} lots, worst drawdown {format_usdc(fund_worst)} "
        f"USDC, final change {format_usdc(figures['insurance_fund_change_quote'])} USDC"
    )
    return run


# --------------------------------------------------------------------------------------------
# yfi
# --------------------------------------------------------------------------------------------


def run_yfi(progress: Progress = None) -> ScenarioRun:
    """A slow squeeze on a low-liquidity market (YFI, 2020-21 style).

    Six leveraged shorts (2.5x to 9.5x) hold YFI against ``whale`` and ``long-2``; the book is a
    few small quotes; the insurance fund has 40k USDC. The venues raise the price 3% a block for
    25 blocks. The shorts are liquidated one after another: the book takes a little, the fund
    what it can, auto-deleveraging the rest against the longs. Bystanders: ``saver`` (collateral
    only), ``closed`` (traded YFI and closed it), ``btc-trader`` (a BTC position only): none of
    them may lose a quote unit or appear in a ``Deleveraged`` event.
    """
    yfi = Market(
        market_id=5,
        symbol="YFI-PERP",
        quote_per_tick_lot=1_000,  # tick $1, lot 0.001 YFI
        min_size_lots=1,
        max_size_lots=10_000_000,
        max_price_ticks=10_000_000,
        initial_margin_ppm=100_000,
        maintenance_margin_ppm=50_000,
        max_open_orders_per_account=200,
    )
    leverages = (25, 40, 55, 70, 85, 95)  # tenths
    shorts = [f"short-{i + 1}" for i in range(len(leverages))]
    lots = 100_000  # 100 YFI each, 3M USDC at 30,000
    price = 30_000
    notional = lots * price * yfi.quote_per_tick_lot
    balances = {name: notional * 10 // lev for name, lev in zip(shorts, leverages, strict=True)}
    balances.update(
        {
            "whale": 20_000_000 * USDC,
            "long-2": 10_000_000 * USDC,
            "mm": 5_000_000 * USDC,
            "saver": 1_000_000 * USDC,
            "closed": 1_000_000 * USDC,
            "btc-trader": 1_000_000 * USDC,
            "btc-mm": 5_000_000 * USDC,
        }
    )
    chain = ScenarioChain(
        markets_=(BTC, yfi),
        prices={1: 60_000, 5: price},
        balances=balances,
        fund_quote=40_000 * USDC,
        on_block=progress,
    )
    run = ScenarioRun("yfi", chain)
    chain.set_price(5, price)
    chain.set_price(1, 60_000)
    txs = chain.bulk("mm", [PlaceOrder(5, False, price + 50 + 25 * i, 500, GTC) for i in range(4)])
    txs += chain.bulk("mm", [PlaceOrder(5, True, price - 50 - 25 * i, 500, GTC) for i in range(4)])
    txs.append(chain.tx("btc-mm", PlaceOrder(1, False, 60_000, 1_000, GTC)))
    chain.block(txs, "thin YFI book, a BTC ask")
    txs = [chain.tx(name, PlaceOrder(5, False, price, lots, GTC)) for name in shorts]
    txs.append(chain.tx("whale", PlaceOrder(5, True, price, lots * 4, IOC)))
    txs.append(chain.tx("long-2", PlaceOrder(5, True, price, lots * 2, IOC)))
    txs.append(chain.tx("btc-trader", PlaceOrder(1, True, 60_000, 1_000, IOC)))
    txs.append(chain.tx("closed", PlaceOrder(5, True, price + 50, 100, IOC)))
    chain.block(txs, "shorts open against the longs")
    chain.block([chain.tx("closed", PlaceOrder(5, False, price - 50, 100, IOC))], "closed exits")
    chain.check(
        "the shorts are open and closed is flat",
        all(chain.position(n, 5) == -lots for n in shorts) and chain.position("closed", 5) == 0,
    )
    bystanders = ("saver", "closed", "btc-trader")
    before = {n: collateral.get_balance(chain.state, chain.addr(n)) for n in bystanders}
    btc_before = chain.position("btc-trader", 1)
    for step in range(1, 26):
        chain.set_price(5, price * 103**step // 100**step)
        chain.block((), "squeeze +3%/block")
    chain.idle(5, "price holds")
    after = {n: collateral.get_balance(chain.state, chain.addr(n)) for n in bystanders}
    touched = {
        chain.name_of(e.counterparty) for _, e in chain.risk_events() if isinstance(e, Deleveraged)
    }
    figures = chain.figures()
    chain.check(
        "every short was liquidated",
        all(chain.position(n, 5) == 0 for n in shorts),
        ", ".join(f"{n} {chain.position(n, 5)}" for n in shorts),
    )
    chain.check("the fund absorbed part of the loss", figures["backstop_value_quote"] > 0)
    chain.check("auto-deleveraging absorbed the rest", figures["adl_count"] > 0)
    chain.check(
        "no bad debt leaked: none is recorded",
        figures["bad_debt_quote"] == 0,
        str(figures["bad_debt_quote"]),
    )
    chain.check(
        "bystanders' balances are untouched to the unit",
        before == after,
        f"{before} -> {after}",
    )
    chain.check(
        "ADL touched only YFI longs",
        touched <= {"whale", "long-2"},
        ", ".join(sorted(touched)),
    )
    chain.check(
        "btc-trader's BTC position is untouched", chain.position("btc-trader", 1) == btc_before
    )
    return run


# --------------------------------------------------------------------------------------------
# cascade
# --------------------------------------------------------------------------------------------


def run_cascade(progress: Progress = None, accounts: int = 2_000, seed: int = 7) -> ScenarioRun:
    """A 20% shock across two markets with ``accounts`` leveraged traders.

    Four market makers quote BTC and ETH with ``BulkPlace`` (64 orders per signature); each
    trader opens one position at 3x to 9.5x leverage (one in ten short, the rest long). The
    venues then report both markets 20% lower at once: the clamp walks the index down 5% a block,
    each block liquidates the accounts its marks put under maintenance within the per-block
    notional limit (1,500 USDC per trader: 3M USDC per market for 2,000), and the cascade runs
    over several blocks. Conservation and the other invariants are checked after every block; at
    the end no account is under maintenance.
    """
    rng = random.Random(seed)
    traders = [f"trader-{i}" for i in range(accounts)]
    makers = [f"mm-{i}" for i in range(4)]
    prices = {1: 60_000, 2: 30_000}
    plans: list[tuple[str, int, bool, int, int]] = []  # name, market, is_buy, lots, balance
    for name in traders:
        market = BTC if rng.random() < 0.6 else ETH
        is_buy = rng.random() >= 0.1
        notional_usdc = rng.randint(2_000, 40_000)
        leverage_tenths = rng.randint(30, 95)
        per_lot = prices[market.market_id] * market.quote_per_tick_lot
        lots = max(1, notional_usdc * USDC // per_lot)
        balance = lots * per_lot * 10 // leverage_tenths + lots * per_lot // 500
        plans.append((name, market.market_id, is_buy, lots, balance))
    balances = {name: balance for name, _, _, _, balance in plans}
    balances.update(dict.fromkeys(makers, 200_000_000 * USDC))
    chain = ScenarioChain(
        markets_=(BTC, ETH),
        prices=prices,
        balances=balances,
        fund_quote=2_000_000 * USDC,
        liquidation_max_notional_per_block_quote=accounts * 1_500 * USDC,
        on_block=progress,
    )
    run = ScenarioRun("cascade", chain)
    for m, p in prices.items():
        chain.set_price(m, p)
    demand = {(m, b): 0 for m in prices for b in (True, False)}
    for _, m, is_buy, lots, _ in plans:
        demand[(m, is_buy)] += lots
    # Makers: the traders' side at the price, and depth on both sides for liquidations.
    fill_orders = []
    for m, p in prices.items():
        asks = -(-demand[(m, True)] // len(makers))
        bids = -(-demand[(m, False)] // len(makers))
        fill_orders += [PlaceOrder(m, False, p, asks, GTC), PlaceOrder(m, True, p - 1, bids, GTC)]
    depth = {m: max(1, (demand[(m, True)] + demand[(m, False)]) // 2_000) for m in prices}

    def quotes(k: int, around: dict[int, int]) -> list[PlaceOrder]:
        """Maker ``k``'s ladder: 20 levels a side, 0.5% apart, offset by ``k`` ticks."""
        orders: list[PlaceOrder] = []
        for m, p in sorted(around.items()):
            step = p // 200
            for j in range(20):
                orders.append(PlaceOrder(m, True, p - step * (j + 1) - k, depth[m], GTC))
                orders.append(PlaceOrder(m, False, p + step * (j + 1) + k, depth[m], GTC))
        return orders

    txs = []
    for k, mm in enumerate(makers):
        txs += chain.bulk(mm, fill_orders + quotes(k, prices))
    chain.block(txs, "market makers quote (BulkPlace)")
    txs = [
        chain.tx(name, PlaceOrder(m, is_buy, prices[m] - (not is_buy), lots, IOC))
        for name, m, is_buy, lots, _ in plans
    ]
    out = chain.block(txs, f"{accounts} traders open leveraged positions")
    opened = sum(1 for r in out.receipts if r.status == 0)
    opened = sum(1 for name in traders if clearing.get_positions(chain.state, chain.addr(name)))
    chain.check("every trader opened its position", opened == accounts, f"{opened}/{accounts}")
    for m, p in prices.items():
        chain.set_price(m, p * 80 // 100)
    target = {m: p * 80 // 100 for m, p in prices.items()}
    shock_start = len(chain.rows)
    quiet = 0
    gated: list[int] = []
    while quiet < 3 and len(chain.rows) - shock_start < 40:
        # The makers follow the index: cancel everything, quote a new ladder around it.
        index = chain.rows[-1].indexes
        txs = [chain.tx(mm, CancelAll(None)) for mm in makers]
        for k, mm in enumerate(makers):
            txs += chain.bulk(mm, quotes(k, {m: index[m] for m in prices}))
        debt_before = chain.rows[-1].bad_debt_quote
        withdraw = b""
        if debt_before and not gated:
            withdraw = chain.tx("mm-0", Withdraw(USDC, chain.addr("mm-0")))
            txs.append(withdraw)
        out = chain.block(txs, "venues report -20%; makers requote")
        if withdraw:
            gated.append(chain.status_of(out, withdraw))
        row = chain.rows[-1]
        settled = all(row.indexes[m] == target[m] for m in prices)
        quiet = quiet + 1 if settled and row.liquidated_accounts == 0 else 0
    rows = chain.rows[shock_start:]
    active = [r for r in rows if r.liquidated_accounts]
    run.notes.append(
        f"liquidations over {len(active)} blocks: "
        + ", ".join(str(r.liquidated_accounts) for r in active)
    )
    chain.check("the cascade runs over several blocks", len(active) >= 3, f"{len(active)} blocks")
    limit = chain.params.liquidation_max_notional_per_block_quote
    per_block: dict[tuple[int, int], int] = {}
    for height, e in chain.risk_events():
        # The fund's own stops close at the mark by deleveraging, outside the book's limit.
        if isinstance(e, PositionLiquidated) and e.account != FUND:
            qptl = chain.markets[e.market_id].quote_per_tick_lot
            key = (height, e.market_id)
            per_block[key] = per_block.get(key, 0) + e.slice_lots * e.mark_ticks * qptl
    chain.check(
        "no block liquidates more than the per-block limit in a market",
        all(v <= limit for v in per_block.values()),
        f"largest {format_usdc(max(per_block.values(), default=0))} USDC",
    )
    chain.check(
        "the limit was reached (the cascade was spread over blocks)",
        any(v > limit * 9 // 10 for v in per_block.values()),
    )
    under = [
        name
        for name in traders
        if (r := chain.get_risk(chain.addr(name))).maintenance_quote
        and r.equity_quote < r.maintenance_quote
    ]
    chain.check(
        "the cascade resolved: no account is under maintenance",
        not under,
        f"{len(under)} left, e.g. {under[:3]}",
    )
    figures = chain.figures()
    if figures["peak_bad_debt_quote"]:
        chain.check(
            "while bad debt is recorded, a withdrawal is refused (WITHDRAWALS_GATED)",
            gated == [ErrorCode.WITHDRAWALS_GATED],
            f"status {gated}",
        )
    run.notes.append(
        f"bad debt: peak {format_usdc(figures['peak_bad_debt_quote'])} USDC, "
        f"at the end {format_usdc(figures['bad_debt_quote'])} USDC (repaid by the fund)"
    )
    return run


# --------------------------------------------------------------------------------------------
# adl-fairness
# --------------------------------------------------------------------------------------------


def expected_adl_order(
    chain: ScenarioChain,
    state_positions: dict[bytes, tuple[margin.Position, ...]],
    balances: dict[bytes, int],
    market_id: int,
    want_short: bool,
    marks: dict[int, int],
) -> list[bytes]:
    """The ADL ranking recomputed from a state's positions and balances at the given marks,
    independently of ``stf/risk.py`` (with ``liquidation.compute_adl_key``)."""

    def params(m: int) -> margin.MarketRiskParams:
        base = liquidation.get_market_risk_params(chain.state, m)
        return margin.MarketRiskParams(
            marks[m],
            base.quote_per_tick_lot,
            base.initial_margin_ppm,
            base.maintenance_margin_ppm,
            base.funding_index_micro,
            base.tiers,
        )

    ranked: list[tuple[int, bytes]] = []
    for account in sorted(state_positions):
        positions = state_positions[account]
        for p in positions:
            if p.market_id != market_id or (p.size_lots < 0) != want_short:
                continue
            mp = params(market_id)
            value = p.size_lots * mp.mark_ticks * mp.quote_per_tick_lot
            owed = margin.compute_funding_owed(
                p.size_lots, mp.funding_index_micro, p.funding_index_micro
            )
            risk = margin.compute_account_risk(balances.get(account, 0), 0, positions, params)
            notional = sum(
                abs(q.size_lots)
                * params(q.market_id).mark_ticks
                * params(q.market_id).quote_per_tick_lot
                for q in positions
            )
            key = liquidation.compute_adl_key(
                value - p.entry_cost_quote - owed, p.entry_cost_quote, notional, risk.equity_quote
            )
            ranked.append((-key, account))
    ranked.sort()
    return [account for _, account in ranked]


def run_adl_fairness(progress: Progress = None) -> ScenarioRun:
    """Auto-deleveraging closes the highest-ranked positions first and never a flat account.

    ``victim`` holds 960 BTC lots long at 10x; five shorts hold the other side at different
    entry prices and leverage (``s-high`` most leveraged, ``s-late`` entered lower, so with less
    profit); ``long-2`` is long (the same side as the victim); ``flat`` traded and closed;
    ``saver`` never traded. The insurance fund is empty and the book has no bids, so when the
    price falls 8.5% in one block (this scenario's clamp is 10%) the victim's whole position is
    auto-deleveraged. The order of the ``Deleveraged`` events must be the ranking recomputed
    independently from the pre-block state
    (``liquidation.compute_adl_key``), each counterparty used up before the next, and no account
    without a short position may appear.
    """
    balances = {
        "victim": 6_100 * USDC,
        "s-high": 2_000 * USDC,
        "s-mid": 4_000 * USDC,
        "s-low": 12_000 * USDC,
        "s-late": 2_500 * USDC,
        "s-tiny": 5_000 * USDC,
        "long-2": 20_000 * USDC,
        "flat": 1_000 * USDC,
        "saver": 1_000 * USDC,
    }
    chain = ScenarioChain(
        markets_=(BTC,),
        prices={1: 60_000},
        balances=balances,
        oracle_max_move_ppm=100_000,
        on_block=progress,
    )
    run = ScenarioRun("adl-fairness", chain)
    chain.set_price(1, 60_000)
    txs = [
        chain.tx("s-high", PlaceOrder(1, False, 60_000, 300, GTC)),
        chain.tx("s-mid", PlaceOrder(1, False, 60_000, 300, GTC)),
        chain.tx("s-low", PlaceOrder(1, False, 60_000, 300, GTC)),
        chain.tx("s-tiny", PlaceOrder(1, False, 60_000, 10, GTC)),
        chain.tx("flat", PlaceOrder(1, False, 60_000, 50, GTC)),
        chain.tx("victim", PlaceOrder(1, True, 60_000, 960, IOC)),
    ]
    chain.block(txs, "shorts sell to victim at 60,000")
    chain.set_price(1, 59_000)
    chain.block((), "price 59,000")
    txs = [
        chain.tx("s-late", PlaceOrder(1, False, 59_000, 300, GTC)),
        chain.tx("long-2", PlaceOrder(1, True, 59_000, 300, IOC)),
    ]
    chain.block(txs, "s-late sells at 59,000")
    txs = [
        chain.tx("long-2", PlaceOrder(1, False, 59_000, 50, GTC)),
        chain.tx("flat", PlaceOrder(1, True, 59_000, 50, IOC)),
    ]
    chain.block(txs, "flat buys back its short")
    chain.check("flat has no position", chain.position("flat", 1) == 0)
    chain.check("victim is long 960", chain.position("victim", 1) == 960)
    # The shock: the block before the ADL, snapshot the state the ranking reads.
    chain.set_price(1, 54_000)
    positions = dict(chain.state.tables["positions"].data)
    balances_now = dict(chain.state.tables["balances"].data)
    flat_before = {n: collateral.get_balance(chain.state, chain.addr(n)) for n in ("flat", "saver")}
    out = chain.block((), "price falls 8.5% to 54,000")
    events = [e for e in out.block_events.risk if isinstance(e, Deleveraged)]
    marks = chain.rows[-1].marks
    expected = [
        a
        for a in expected_adl_order(chain, positions, balances_now, 1, True, marks)
        if a != chain.addr("victim")
    ]
    got = [e.counterparty for e in events]
    run.notes.append("ADL order: " + ", ".join(chain.name_of(a) for a in got))
    run.notes.append("expected:  " + ", ".join(chain.name_of(a) for a in expected))
    chain.check("auto-deleveraging happened", bool(events))
    chain.check(
        "counterparties come in the independently computed ranking order",
        got == expected[: len(got)],
    )
    used_up = all(
        clearing.get_position_size(chain.state, e.counterparty, 1) == 0 for e in events[:-1]
    )
    chain.check("each counterparty is used up before the next one", used_up)
    keys = [e.rank_key for e in events]
    chain.check("rank keys do not increase", keys == sorted(keys, reverse=True), str(keys))
    names = {chain.name_of(a) for a in got}
    chain.check(
        "no flat, same-side or never-traded account is deleveraged",
        not names & {"flat", "saver", "long-2"},
        ", ".join(sorted(names)),
    )
    flat_after = {n: collateral.get_balance(chain.state, chain.addr(n)) for n in ("flat", "saver")}
    chain.check("flat and saver balances untouched", flat_before == flat_after)
    return run


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "mango",
            "Oracle pump on a thin market to borrow against unrealized profit",
            run_mango.__doc__ or "",
            run_mango,
        ),
        Scenario(
            "jelly",
            "Self-liquidation into the backstop, then a pump",
            run_jelly.__doc__ or "",
            run_jelly,
        ),
        Scenario(
            "yfi",
            "Slow squeeze on a low-liquidity market: fund and ADL, no leak",
            run_yfi.__doc__ or "",
            run_yfi,
        ),
        Scenario(
            "cascade",
            "20% shock across markets, 2,000 leveraged accounts",
            run_cascade.__doc__ or "",
            run_cascade,
        ),
        Scenario(
            "adl-fairness",
            "ADL closes the highest-ranked first, never a flat account",
            run_adl_fairness.__doc__ or "",
            run_adl_fairness,
        ),
    )
}

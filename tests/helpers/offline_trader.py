"""An SDK trader without a node: devnet-0's wallet over the devnet markets, and clients that
keep the raw transactions they are sent (the tests decode and check them)."""

from __future__ import annotations

from strata.client.api import _TraderCore
from strata.client.signing import wallet_from_seed
from strata.node.config import DEVNET_CHAIN_ID, devnet_genesis

MARKETS = devnet_genesis(0).market_infos()
WALLET = wallet_from_seed("devnet-0")


def offline_core() -> _TraderCore:
    return _TraderCore(WALLET, chain_id=DEVNET_CHAIN_ID, markets=MARKETS)


class Sink:
    """A client that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_raw(self, tx: bytes) -> str:
        self.sent.append(tx)
        return "0x" + "00" * 32


class AsyncSink(Sink):
    async def send_raw(self, tx: bytes) -> str:  # type: ignore[override]
        return Sink.send_raw(self, tx)

"""Keys owned by ``accounts`` (the only code that touches them).

=================  ======  ==========================  ======================================
table              prefix  key                         value
=================  ======  ==========================  ======================================
``nonces``         0x10    address (20 bytes)          ``NonceWindow``: floor and recent nonces
``agents``         0x11    agent public key (32 B)     ``AgentRecord``
``account_agents`` 0x12    address (20 bytes)          sorted tuple of the account's agent keys
=================  ======  ==========================  ======================================
"""

from __future__ import annotations

from strata.modules.accounts.records import EMPTY_WINDOW as EMPTY_WINDOW
from strata.modules.accounts.records import AgentRecord as AgentRecord
from strata.modules.accounts.records import NonceWindow as NonceWindow
from strata.state.store import BYTES_KEY, State, Table


def register_tables(state: State) -> None:
    """Create this module's tables in a new state."""
    j = state.journal
    state.add_table(Table("nonces", 0x10, j, BYTES_KEY, NonceWindow))
    state.add_table(Table("agents", 0x11, j, BYTES_KEY, AgentRecord))
    state.add_table(Table("account_agents", 0x12, j, BYTES_KEY, tuple[bytes, ...]))


def get_nonces(state: State, account: bytes) -> NonceWindow:
    window: NonceWindow | None = state.tables["nonces"].get(account)
    return window if window is not None else EMPTY_WINDOW


def set_nonces(state: State, account: bytes, window: NonceWindow) -> None:
    state.tables["nonces"].put(account, window)


def get_agent(state: State, public_key: bytes) -> AgentRecord | None:
    record: AgentRecord | None = state.tables["agents"].get(public_key)
    return record


def set_agent(state: State, public_key: bytes, record: AgentRecord) -> None:
    state.tables["agents"].put(public_key, record)


def delete_agent(state: State, public_key: bytes) -> None:
    state.tables["agents"].delete(public_key)


def get_account_agents(state: State, account: bytes) -> tuple[bytes, ...]:
    agents: tuple[bytes, ...] | None = state.tables["account_agents"].get(account)
    return agents if agents is not None else ()


def set_account_agents(state: State, account: bytes, agents: tuple[bytes, ...]) -> None:
    table = state.tables["account_agents"]
    if agents:
        table.put(account, agents)
    else:
        table.delete(account)

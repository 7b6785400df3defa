"""Transactions: the signed envelope, every action, and the system inputs of a block.

Encoding
--------
Each record is a msgspec ``Struct`` encoded as MessagePack with fields by position
(``array_like``); actions and system inputs are tagged unions whose tag is the first element.
A transaction is one byte string; :func:`decode_transaction` accepts only the canonical bytes
(``encode(decode(b)) == b``) and at most ``MAX_TRANSACTION_BYTES``.

Signing
-------
The signer signs the EIP-712 digest of ``Transaction(account, nonce, keccak256(action bytes))``
under the domain of the chain id and the bridge contract (``core/signatures.py``). A wallet signs
with secp256k1 (65 bytes, ``agent`` is ``None``); an approved agent signs with Ed25519 (64 bytes,
``agent`` is its 32-byte public key).

Units
-----
Prices in ticks, sizes in lots, amounts in quote units (1e-6 USDC), times and nonces in ms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Final, final, get_type_hints

import msgspec

from strata.core.codec import CanonicalDecoder, encode
from strata.core.hashing import native_list_leaf_hash
from strata.core.ordered_merkle import compute_list_leaf_hash
from strata.core.signatures import compute_transaction_digest

MAX_TRANSACTION_BYTES: Final = 16_384
MAX_BULK_ITEMS: Final = 64

Address = Annotated[bytes, msgspec.Meta(min_length=20, max_length=20)]
PublicKey32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
U64 = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=(1 << 32) - 1)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=(1 << 63) - 1)]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=65)]
Signature64 = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
TifCode = Annotated[int, msgspec.Meta(ge=0, le=3)]
NonZero = Annotated[int, msgspec.Meta(ge=-((1 << 63) - 1), le=(1 << 63) - 1)]
"""A signed amount (zero is refused at admission: ``BAD_AMOUNT``)."""


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class _Action(msgspec.Struct, frozen=True, gc=False, array_like=True, forbid_unknown_fields=True):
    pass


@final
class ApproveAgent(_Action, tag=1, frozen=True):
    """Authorize an Ed25519 key to trade for the account until ``valid_until_ms``. Wallet only.

    ``agent_signature`` is the key's own consent: its Ed25519 signature over
    :func:`compute_agent_consent_digest`, so no one can claim a key they do not hold (squatting
    another bot's key would block its owner from approving it).
    """

    public_key: PublicKey32
    valid_until_ms: U64
    agent_signature: Signature64


@final
class RevokeAgent(_Action, tag=2, frozen=True):
    """Revoke an agent key. Wallet only."""

    public_key: PublicKey32


@final
class Transfer(_Action, tag=3, frozen=True):
    """Move quote to another account. Debited at admission, credited in settlement. Wallet only."""

    to: Address
    amount_quote: Positive


@final
class Withdraw(_Action, tag=4, frozen=True):
    """Debit free collateral into a withdrawal record the bridge pays to ``destination``."""

    amount_quote: Positive
    destination: Address


@final
class PlaceOrder(_Action, tag=5, frozen=True):
    """A limit order. A market order is an IOC whose price is the worst price accepted.

    ``expires_at_ms`` makes a resting order good-til-time: the prologue of the first block whose
    timestamp reaches it cancels the order (reason ``EXPIRED``). It must be after the block's
    timestamp (else ``ORDER_EXPIRED``)."""

    market_id: U32
    is_buy: bool
    price_ticks: Positive
    size_lots: Positive
    tif: TifCode = 0
    reduce_only: bool = False
    client_id: U64 | None = None
    expires_at_ms: U64 | None = None


@final
class CancelOrder(_Action, tag=6, frozen=True):
    """Cancel one order by its id or by its client id (exactly one of them)."""

    market_id: U32
    order_id: U64 | None = None
    client_id: U64 | None = None


@final
class CancelAll(_Action, tag=7, frozen=True):
    """Cancel every open order of the account in one market, or in all markets (``None``)."""

    market_id: U32 | None = None


@final
class ModifyOrder(_Action, tag=8, frozen=True):
    """Cancel an order (by id or client id) and place its replacement, which keeps the client
    id and takes a new place in the queue. If the old order is gone, nothing is placed."""

    market_id: U32
    order_id: U64 | None
    client_id: U64 | None
    is_buy: bool
    price_ticks: Positive
    size_lots: Positive
    tif: TifCode = 0
    reduce_only: bool = False


@final
class ScheduleCancel(_Action, tag=12, frozen=True):
    """A dead-man switch: unless renewed (by another ScheduleCancel) or cleared (``at_ms`` of
    ``None``), the prologue of the first block whose timestamp reaches ``at_ms`` cancels every
    open order and trigger of the account. ``at_ms`` must be at least
    ``ChainParams.schedule_cancel_min_delay_ms`` after the block's timestamp
    (else ``SCHEDULE_TOO_SOON``)."""

    at_ms: U64 | None = None


@final
class PlaceTrigger(_Action, tag=13, frozen=True):
    """A stop-loss or take-profit on the mark price, always reduce-only.

    It fires in the prologue of the first block whose mark is at or above
    ``trigger_price_ticks`` (``trigger_above``) or at or below it (otherwise), and then places
    the order ``(is_buy, price_ticks, size_lots, tif)`` for that block's matching, before the
    block's own placements: ``tif`` 1 (IOC, the default) makes it a market order with
    ``price_ticks`` its worst price, 0 (GTC) a limit order that may rest. A long's stop-loss is a
    sell with ``trigger_above=False``; its take-profit a sell with ``trigger_above=True``. A
    trigger never fires while the market's index is stale."""

    market_id: U32
    is_buy: bool
    trigger_price_ticks: Positive
    trigger_above: bool
    price_ticks: Positive
    size_lots: Positive
    tif: TifCode = 1


@final
class CancelTrigger(_Action, tag=14, frozen=True):
    """Cancel one of the account's triggers that has not fired."""

    market_id: U32
    trigger_id: U64


@final
class SetMarginMode(_Action, tag=15, frozen=True):
    """Trade ``market_id`` with isolated margin (``isolated``) or cross margin, which is the
    default. Only without a position in the market (else ``POSITION_OPEN``). See
    ``modules/collateral``."""

    market_id: U32
    isolated: bool


@final
class MoveIsolatedMargin(_Action, tag=16, frozen=True):
    """Move ``amount_quote`` from the balance into the isolated position in ``market_id``
    (negative: out of it, keeping its equity at its initial requirement and its unrealized profit
    in place). Needs an isolated position (else ``NOT_ISOLATED``)."""

    market_id: U32
    amount_quote: NonZero


@final
class BulkPlace(_Action, tag=9, frozen=True):
    """Up to 64 placements under one signature; each order gets its own status."""

    orders: tuple[PlaceOrder, ...]


@final
class BulkCancel(_Action, tag=10, frozen=True):
    """Up to 64 cancels under one signature."""

    cancels: tuple[CancelOrder, ...]


@final
class BulkModify(_Action, tag=11, frozen=True):
    """Up to 64 modifies under one signature."""

    modifies: tuple[ModifyOrder, ...]


Action = (
    ApproveAgent
    | RevokeAgent
    | Transfer
    | Withdraw
    | PlaceOrder
    | CancelOrder
    | CancelAll
    | ModifyOrder
    | BulkPlace
    | BulkCancel
    | BulkModify
    | ScheduleCancel
    | PlaceTrigger
    | CancelTrigger
    | SetMarginMode
    | MoveIsolatedMargin
)


# gc=False: an immutable record of ints, bytes and other records cannot be part of a reference
# cycle, so the cyclic collector need not track it, which makes it cheaper to create and free.
class SignedTransaction(
    msgspec.Struct, frozen=True, gc=False, array_like=True, forbid_unknown_fields=True
):
    """The envelope: who acts, with which nonce, what, and the signature over it."""

    account: Address
    nonce: U64
    action: Action
    agent: PublicKey32 | None
    signature: Signature


class Deposit(msgspec.Struct, frozen=True, array_like=True, tag=1):
    """A deposit from the settlement chain's inbox (``index`` is its position in the inbox)."""

    index: U64
    account: Address
    amount_quote: Positive


class OraclePrice(msgspec.Struct, frozen=True, array_like=True, tag=2):
    """A price observed at ``timestamp_ms``, signed by a key of the genesis oracle set.

    The signature is over the same EIP-712 digest as a transaction, with ``account = signer``,
    ``nonce = timestamp_ms`` and the action bytes of :class:`OracleObservation`.
    """

    market_id: U32
    price_ticks: Positive
    timestamp_ms: U64
    signer: Address
    signature: Signature


class AgentConsent(msgspec.Struct, frozen=True, array_like=True):
    """What an agent key signs to consent to act for ``account`` (its first field is bytes, so
    these bytes can never be mistaken for an action, whose first field is an integer tag)."""

    account: bytes
    public_key: bytes
    valid_until_ms: int


def compute_agent_consent_digest(
    chain_id: int, verifying_contract: bytes, account: bytes, public_key: bytes, valid_until_ms: int
) -> bytes:
    """The digest an agent key signs in :class:`ApproveAgent`: the transaction digest of the
    account, with ``nonce = valid_until_ms`` and the bytes of :class:`AgentConsent`."""
    return compute_transaction_digest(
        chain_id,
        verifying_contract,
        account,
        valid_until_ms,
        encode(AgentConsent(account, public_key, valid_until_ms)),
    )


class OracleObservation(msgspec.Struct, frozen=True, array_like=True):
    """What an oracle key signs."""

    market_id: int
    price_ticks: int
    timestamp_ms: int


SystemInput = Deposit | OraclePrice

TX_DECODER: Final[CanonicalDecoder[SignedTransaction]] = CanonicalDecoder(
    SignedTransaction, MAX_TRANSACTION_BYTES
)
"""What :func:`decode_transaction` decodes with. The executor calls its ``decode`` itself: this
module stays interpreted (it defines Structs), and a call through it per transaction cost the
compiled executor an interpreted frame."""


TX_FIELDS_DECODER: Final[CanonicalDecoder[tuple[object, ...]]] = CanonicalDecoder(
    tuple[tuple(get_type_hints(SignedTransaction, include_extras=True).values())],  # type: ignore[misc]
    MAX_TRANSACTION_BYTES,
)
"""Decodes a transaction into the tuple of its fields (``account, nonce, action, agent,
signature``, the types and constraints of :class:`SignedTransaction`'s fields, in their order):
what the executor unpacks, without a record to build, read and free. (Typed as a tuple of any
length: compiled, a tuple of fixed types is unboxed into a C struct, which boxing back into a list
would build again.) It accepts exactly the bytes
:data:`TX_DECODER` accepts, to the same values: a ``SignedTransaction`` is encoded as the array
of its fields, exactly as this tuple is, and neither takes an array of another length
(``tests/differential/test_tx_fields_decoder.py`` checks both on random and mangled bytes)."""


def decode_transaction(data: bytes) -> SignedTransaction:
    """Decode one transaction from its canonical bytes.

    Raises
    ------
    InvalidTransaction
        ``MALFORMED_TRANSACTION``, ``NON_CANONICAL_ENCODING`` or ``TRANSACTION_TOO_LARGE``.
    """
    return TX_DECODER.decode(data)


def encode_transaction(tx: SignedTransaction) -> bytes:
    return encode(tx)


def encode_action(action: Action) -> bytes:
    """The bytes whose Keccak hash the signer signs."""
    return encode(action)


compute_transaction_hash: Final[Callable[[bytes], bytes]] = (
    compute_list_leaf_hash if native_list_leaf_hash is None else native_list_leaf_hash
)
"""``compute_transaction_hash(data)``, a transaction's id: ``SHA256(0x00 || data)`` over its
canonical bytes, which is its leaf hash in the transactions tree of the block that includes it
(``core/ordered_merkle.py``). A block's transactions root is computed from the ids its receipts
carry, so each transaction is hashed once, not once for its id and again for the root; an
inclusion proof starts from the id. (The hash function itself, not a wrapper: it runs for every
transaction, and this module is interpreted.)"""


def compute_oracle_action_bytes(price: OraclePrice) -> bytes:
    return encode(OracleObservation(price.market_id, price.price_ticks, price.timestamp_ms))


# Tuples, not ``A | B`` unions: a union is built anew on every evaluation, and these run per
# transaction.
CANCEL_ACTIONS = (CancelOrder, CancelAll, BulkCancel, CancelTrigger)
ORDER_ACTIONS = (PlaceOrder, ModifyOrder)
BULK_ACTIONS = (BulkPlace, BulkCancel, BulkModify)


def count_order_operations(transactions: Iterable[bytes]) -> int:
    """Order operations in canonical transactions (a block's, say): one per item of a bulk
    action, one per other transaction (the unit of the benchmarks' and the verifier's events and
    orders per second)."""
    count = 0
    for data in transactions:
        action = decode_transaction(data).action
        if isinstance(action, BulkPlace):
            count += len(action.orders)
        elif isinstance(action, BulkCancel):
            count += len(action.cancels)
        elif isinstance(action, BulkModify):
            count += len(action.modifies)
        else:
            count += 1
    return count


def placements_of(action: Action) -> tuple[PlaceOrder | ModifyOrder, ...]:
    """The orders an action places, in action order (none for cancels and account actions)."""
    if isinstance(action, ORDER_ACTIONS):
        return (action,)
    if isinstance(action, BulkPlace):
        return action.orders
    if isinstance(action, BulkModify):
        return action.modifies
    return ()

"""Transaction digests and signature verification: the one ``verify`` every path shares.

The sequencer, the replayer, the proof path and the SDK tests all call these functions, so a
signature is accepted by all of them or by none (the Nitro high-s divergence lesson).

Accounts
--------
An account is a 20-byte Ethereum address: ``keccak256(X || Y)[12:]`` of its secp256k1 public key
``(X, Y)`` (:func:`address_from_public_key`). An account may also register *agent keys*: Ed25519
public keys (32 bytes) that sign on its behalf. Which agent key belongs to which account is chain
state and is checked by the accounts module, not here.

Digest (EIP-712)
----------------
Every transaction is signed over one 32-byte EIP-712 typed-data digest::

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
        name              = "Strata"
        version           = "1"
        chainId           = the chain id (uint256)
        verifyingContract = the bridge contract address (20 bytes; the zero address until a
                            bridge exists)

    Transaction(address account,uint64 nonce,bytes32 action)
        account = the signing account (20 bytes)
        nonce   = the transaction nonce (uint64)
        action  = keccak256(canonical action bytes); the caller passes the bytes, we hash them

    domainSeparator = hashStruct(EIP712Domain)
    hashStruct(s)   = keccak256(typeHash(s) || encodeData(s))
    typeHash(T)     = keccak256(encodeType(T))        (the type string, UTF-8)
    digest          = keccak256(0x19 || 0x01 || domainSeparator || hashStruct(Transaction))

``encodeData`` packs each member as one 32-byte word: ``uint`` big-endian, ``address``
left-padded with zeros, ``bytes32`` as is, ``string``/``bytes`` as the keccak256 of their
contents, a nested struct as its ``hashStruct``. The building blocks (:func:`encode_type_hash`,
:func:`encode_uint`, :func:`encode_address`, :func:`encode_bytes32`, :func:`encode_string`,
:func:`hash_struct`, :func:`compute_typed_data_digest`) are public so the tests can check them
against the official EIP-712 ``Mail`` example. Keccak is the original Keccak-256 (Ethereum's),
not NIST SHA3-256.

Binding the chain id and the bridge contract into the domain means a signature made for one chain
or one bridge recovers a different (unrelated) address anywhere else: replay across chains,
testnets or bridge deployments fails as a wrong signer.

Wallet signatures (secp256k1 ECDSA, recoverable)
------------------------------------------------
65 bytes ``r || s || v``, ``r`` and ``s`` 32-byte big-endian, ``v`` one byte. Rules, all
consensus-critical:

- ``v`` is 27 or 28 (recovery id 0 or 1). ``0``/``1`` and EIP-155 style values are rejected:
  one encoding per signature. Recovery ids 2 and 3 (``r >= n``) are never valid here.
- ``1 <= r < n`` and ``1 <= s <= n // 2`` (low-s, EIP-2). The high-s twin ``(r, n - s, v ^ 1)``
  of a valid signature is rejected, so a signature has exactly one accepted form.
- Any other length is rejected.

:func:`recover_wallet_address` returns the signer's address, or ``None`` if the signature is
invalid; the caller compares it with the transaction's account. It never raises on input bytes.
A transaction id must still be computed over the unsigned payload and the signer, never over the
signature bytes.

Agent signatures (Ed25519)
--------------------------
Agent keys sign the same 32-byte digest with Ed25519 (RFC 8032, pure, no prehash). The rule set is
**libsodium's** ``crypto_sign_verify_detached`` as shipped in PyNaCl 1.6.2 (pinned in
``pyproject.toml``): ``S`` must be canonical (``S < L``), the public key must be a canonical
encoding and not of small order, ``R`` must not be of small order, and the equation is checked
cofactorless. ``docs/signatures.md`` and ``tests/unit/test_signatures.py`` freeze the accept/reject
bitmap of the ed25519-speccheck vectors; re-run them on every crypto-library upgrade.
"""

from __future__ import annotations

import functools
from typing import Final

import coincurve
import nacl.exceptions
import nacl.signing
import sha3

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group."""

SECP256K1_HALF_N: Final = SECP256K1_N // 2
"""Largest accepted ``s`` (EIP-2 low-s rule): ``s <= n // 2``."""

ADDRESS_LENGTH: Final = 20
DIGEST_LENGTH: Final = 32
WALLET_SIGNATURE_LENGTH: Final = 65
AGENT_PUBLIC_KEY_LENGTH: Final = 32
AGENT_SIGNATURE_LENGTH: Final = 64

ZERO_ADDRESS: Final = bytes(ADDRESS_LENGTH)
"""The verifying contract until a bridge is deployed."""

DOMAIN_NAME: Final = "Strata"
DOMAIN_VERSION: Final = "1"

EIP712_DOMAIN_TYPE: Final = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSACTION_TYPE: Final = "Transaction(address account,uint64 nonce,bytes32 action)"

_UNCOMPRESSED_PREFIX: Final = b"\x04"
_UNCOMPRESSED_LENGTH: Final = 65
_V_OFFSET: Final = 27


# --- Keccak and EIP-712 building blocks -------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    """Return the 32-byte Keccak-256 (Ethereum's, not NIST SHA3-256) of ``data``."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def encode_type_hash(type_string: str) -> bytes:
    """Return ``typeHash = keccak256(encodeType)`` of a full EIP-712 type string.

    ``type_string`` is the already-encoded type, referenced struct types appended in name order,
    e.g. ``"Mail(Person from,Person to,string contents)Person(string name,address wallet)"``.
    """
    return keccak256(type_string.encode("utf-8"))


def encode_uint(value: int, bits: int = 256) -> bytes:
    """Encode a ``uint<bits>`` member as one 32-byte big-endian word.

    Raises ``ValueError`` if ``bits`` is not a multiple of 8 in ``[8, 256]`` or ``value`` is
    outside ``[0, 2**bits)``.
    """
    if bits % 8 != 0 or not 8 <= bits <= 256:
        raise ValueError(f"invalid uint width: {bits}")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"value out of range for uint{bits}")
    return value.to_bytes(32, "big")


def encode_address(address: bytes) -> bytes:
    """Encode an ``address`` member: 20 bytes left-padded with zeros to 32.

    Raises ``ValueError`` if ``address`` is not 20 bytes.
    """
    if len(address) != ADDRESS_LENGTH:
        raise ValueError("address must be 20 bytes")
    return bytes(12) + address


def encode_bytes32(value: bytes) -> bytes:
    """Encode a ``bytes32`` member as is. Raises ``ValueError`` if it is not 32 bytes."""
    if len(value) != 32:
        raise ValueError("bytes32 must be 32 bytes")
    return bytes(value)


def encode_string(value: str) -> bytes:
    """Encode a ``string`` member: keccak256 of its UTF-8 bytes."""
    return keccak256(value.encode("utf-8"))


def encode_bytes(value: bytes) -> bytes:
    """Encode a dynamic ``bytes`` member: keccak256 of its contents."""
    return keccak256(value)


def hash_struct(type_hash: bytes, *encoded_members: bytes) -> bytes:
    """Return ``hashStruct = keccak256(typeHash || encodeData)``.

    ``encoded_members`` are the 32-byte words of the members in declaration order, each made by
    one of the ``encode_*`` helpers (or a nested :func:`hash_struct`). Raises ``ValueError`` if
    any word is not 32 bytes.
    """
    if len(type_hash) != 32 or any(len(word) != 32 for word in encoded_members):
        raise ValueError("every EIP-712 word must be 32 bytes")
    return keccak256(type_hash + b"".join(encoded_members))


def compute_typed_data_digest(domain_separator: bytes, struct_hash: bytes) -> bytes:
    """Return ``keccak256(0x19 || 0x01 || domainSeparator || hashStruct(message))``.

    Raises ``ValueError`` if either input is not 32 bytes.
    """
    if len(domain_separator) != 32 or len(struct_hash) != 32:
        raise ValueError("domain separator and struct hash must be 32 bytes")
    return keccak256(b"\x19\x01" + domain_separator + struct_hash)


def compute_eip712_domain_separator(
    name: str, version: str, chain_id: int, verifying_contract: bytes
) -> bytes:
    """Return ``hashStruct`` of an ``EIP712Domain(name, version, chainId, verifyingContract)``.

    Raises ``ValueError`` if ``chain_id`` is not a uint256 or ``verifying_contract`` is not
    20 bytes.
    """
    return hash_struct(
        encode_type_hash(EIP712_DOMAIN_TYPE),
        encode_string(name),
        encode_string(version),
        encode_uint(chain_id, 256),
        encode_address(verifying_contract),
    )


# --- Strata digests ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def compute_domain_separator(chain_id: int, verifying_contract: bytes) -> bytes:
    """Return Strata's EIP-712 domain separator for ``chain_id`` and the bridge contract.

    Name ``"Strata"``, version ``"1"``; ``verifying_contract`` is the 20-byte bridge address
    (:data:`ZERO_ADDRESS` until a bridge exists). Cached per input. Raises ``ValueError`` if
    ``chain_id`` is not a uint256 or ``verifying_contract`` is not 20 bytes.
    """
    return compute_eip712_domain_separator(
        DOMAIN_NAME, DOMAIN_VERSION, chain_id, bytes(verifying_contract)
    )


_TRANSACTION_TYPE_HASH: Final = encode_type_hash(TRANSACTION_TYPE)
"""``keccak256`` of :data:`TRANSACTION_TYPE`, once (every signature check needs it)."""


def compute_transaction_hash_struct(account: bytes, nonce: int, action_bytes: bytes) -> bytes:
    """Return ``hashStruct(Transaction(account, nonce, keccak256(action_bytes)))``.

    Raises ``ValueError`` if ``account`` is not 20 bytes or ``nonce`` is not a uint64.
    """
    return hash_struct(
        _TRANSACTION_TYPE_HASH,
        encode_address(account),
        encode_uint(nonce, 64),
        encode_bytes32(keccak256(action_bytes)),
    )


def compute_transaction_digest(
    chain_id: int, verifying_contract: bytes, account: bytes, nonce: int, action_bytes: bytes
) -> bytes:
    """Return the 32-byte EIP-712 digest a transaction's signer signs.

    ``action_bytes`` are the canonical encoding of the transaction's action; they enter the
    digest as ``keccak256(action_bytes)``. Raises ``ValueError`` if ``chain_id`` is not a uint256,
    ``verifying_contract`` or ``account`` is not 20 bytes, or ``nonce`` is not a uint64 (these are
    caller bugs: a decoded transaction has already been checked).
    """
    return compute_typed_data_digest(
        compute_domain_separator(chain_id, bytes(verifying_contract)),
        compute_transaction_hash_struct(account, nonce, action_bytes),
    )


# --- secp256k1 wallet signatures ---------------------------------------------------------------


def address_from_public_key(uncompressed: bytes) -> bytes:
    """Return the 20-byte address of a 65-byte uncompressed secp256k1 public key (``0x04||X||Y``).

    Raises ``ValueError`` if the key is not 65 bytes starting with ``0x04``. The point is not
    checked to be on the curve; keys come from :func:`recover_wallet_address` or a wallet.
    """
    if len(uncompressed) != _UNCOMPRESSED_LENGTH or uncompressed[:1] != _UNCOMPRESSED_PREFIX:
        raise ValueError("public key must be 65 bytes, uncompressed (0x04 prefix)")
    return keccak256(uncompressed[1:])[12:]


def is_canonical_wallet_signature(signature: bytes) -> bool:
    """Return whether ``signature`` is a well-formed 65-byte ``r || s || v`` under our rules.

    True iff it is 65 bytes, ``1 <= r < n``, ``1 <= s <= n // 2`` and ``v`` is 27 or 28. It does
    not say the signature recovers to any key.
    """
    if len(signature) != WALLET_SIGNATURE_LENGTH:
        return False
    r = int.from_bytes(signature[0:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    return 1 <= r < SECP256K1_N and 1 <= s <= SECP256K1_HALF_N and v in (27, 28)


def recover_wallet_address(digest: bytes, signature: bytes) -> bytes | None:
    """Return the 20-byte address that signed ``digest``, or ``None`` if the signature is invalid.

    ``signature`` is 65 bytes ``r || s || v`` checked by :func:`is_canonical_wallet_signature`
    (``v`` in {27, 28}, ``r`` in ``[1, n)``, low ``s`` in ``[1, n // 2]``). Also ``None`` if
    ``digest`` is not 32 bytes or no public key recovers. Never raises on its inputs. A valid
    signature over another digest recovers *some* other address: always compare the result with
    the expected account.
    """
    if len(digest) != DIGEST_LENGTH or not is_canonical_wallet_signature(signature):
        return None
    recoverable = bytes(signature[:64]) + bytes((signature[64] - _V_OFFSET,))
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            recoverable, bytes(digest), hasher=None
        )
    except ValueError:
        # libsecp256k1 found no point with x = r, or the recovered key is the point at infinity.
        return None
    uncompressed: bytes = public_key.format(compressed=False)
    return address_from_public_key(uncompressed)


# --- Ed25519 agent signatures -------------------------------------------------------------------


def verify_agent_signature(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid Ed25519 signature of ``digest`` by ``public_key``.

    ``public_key`` is 32 bytes, ``digest`` 32 bytes, ``signature`` 64 bytes ``R || S``; any other
    length gives ``False``. The rule set is libsodium's (PyNaCl 1.6.2): canonical ``S < L``,
    small-order ``A`` and ``R`` rejected, non-canonical ``A`` rejected, cofactorless equation.
    Never raises on its inputs.
    """
    if (
        len(public_key) != AGENT_PUBLIC_KEY_LENGTH
        or len(digest) != DIGEST_LENGTH
        or len(signature) != AGENT_SIGNATURE_LENGTH
    ):
        return False
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(bytes(digest), bytes(signature))
    except nacl.exceptions.BadSignatureError:
        return False
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        # Key rejected by libsodium at construction, or malformed input.
        return False
    return True

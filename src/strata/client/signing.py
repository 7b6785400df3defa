"""Signing helpers for wallets (secp256k1) and agent keys (Ed25519); ring 2, never in consensus.

The signatures made here are exactly the ones ring 0 accepts
(:mod:`strata.core.signatures`): a wallet signs the 32-byte EIP-712 transaction digest and returns
65 bytes ``r || s || v`` with ``v`` in {27, 28} and low ``s``; an agent key signs the same digest
with Ed25519 and returns 64 bytes.

:func:`wallet_from_seed` and :func:`agent_from_seed` derive deterministic keys from a label, for
tests, fixtures and demos only: anyone who knows the label knows the key.
"""

from __future__ import annotations

import hashlib

import coincurve
import nacl.signing

from strata.core.signatures import (
    DIGEST_LENGTH,
    SECP256K1_N,
    address_from_public_key,
)
from strata.stf.transactions import ApproveAgent, compute_agent_consent_digest

_PRIVATE_KEY_LENGTH = 32
_V_OFFSET = 27


class Wallet:
    """A secp256k1 account key: its 20-byte :attr:`address` and deterministic signing (RFC 6979)."""

    __slots__ = ("_key", "address", "public_key")

    def __init__(self, private_key: bytes) -> None:
        """Load a 32-byte big-endian private key in ``[1, n - 1]``; else ``ValueError``."""
        if len(private_key) != _PRIVATE_KEY_LENGTH:
            raise ValueError("private key must be 32 bytes")
        if not 1 <= int.from_bytes(private_key, "big") < SECP256K1_N:
            raise ValueError("private key out of range [1, n - 1]")
        self._key = coincurve.PrivateKey(bytes(private_key))
        self.public_key: bytes = self._key.public_key.format(compressed=False)
        """The 65-byte uncompressed public key ``0x04 || X || Y``."""
        self.address: bytes = address_from_public_key(self.public_key)
        """The 20-byte Ethereum address."""

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest; return 65 bytes ``r || s || v``, ``v`` in {27, 28}, low ``s``.

        Raises ``ValueError`` if ``digest`` is not 32 bytes.
        """
        if len(digest) != DIGEST_LENGTH:
            raise ValueError("digest must be 32 bytes")
        rsid: bytes = self._key.sign_recoverable(bytes(digest), hasher=None)
        recovery_id = rsid[64]
        if recovery_id > 1:
            # Needs r >= n, probability about 2**-127; ring 0 rejects such signatures.
            raise RuntimeError("recovery id above 1; ring 0 would reject this signature")
        return rsid[:64] + bytes((recovery_id + _V_OFFSET,))

    def __repr__(self) -> str:
        return f"Wallet(address=0x{self.address.hex()})"


class AgentKey:
    """An Ed25519 agent key: its 32-byte :attr:`public_key` and signing of digests."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        """Load a 32-byte Ed25519 seed (RFC 8032 private key); else ``ValueError``."""
        if len(seed) != _PRIVATE_KEY_LENGTH:
            raise ValueError("seed must be 32 bytes")
        self._key = nacl.signing.SigningKey(bytes(seed))
        self.public_key: bytes = bytes(self._key.verify_key)
        """The 32-byte Ed25519 public key."""

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest; return the 64-byte signature ``R || S``.

        Raises ``ValueError`` if ``digest`` is not 32 bytes.
        """
        if len(digest) != DIGEST_LENGTH:
            raise ValueError("digest must be 32 bytes")
        signature: bytes = self._key.sign(bytes(digest)).signature
        return signature

    def approve_for(
        self,
        account: bytes,
        valid_until_ms: int,
        chain_id: int,
        bridge_address: bytes = bytes(20),
    ) -> ApproveAgent:
        """The ``ApproveAgent`` action that ``account``'s wallet signs to approve this key,
        carrying this key's consent (its signature over the consent digest)."""
        digest = compute_agent_consent_digest(
            chain_id, bridge_address, account, self.public_key, valid_until_ms
        )
        return ApproveAgent(self.public_key, valid_until_ms, self.sign_digest(digest))

    def __repr__(self) -> str:
        return f"AgentKey(public_key=0x{self.public_key.hex()})"


def wallet_from_seed(label: str) -> Wallet:
    """Return a deterministic test wallet: private key ``sha256(label)``.

    If that is outside ``[1, n - 1]`` (probability about 2**-128), try
    ``sha256(label || ":" || counter)`` for counter 1, 2, ... Never use for real funds.
    """
    candidate = hashlib.sha256(label.encode("utf-8")).digest()
    counter = 0
    while not 1 <= int.from_bytes(candidate, "big") < SECP256K1_N:
        counter += 1
        candidate = hashlib.sha256(f"{label}:{counter}".encode()).digest()
    return Wallet(candidate)


def agent_from_seed(label: str) -> AgentKey:
    """Return a deterministic test agent key: Ed25519 seed ``sha256(label)``.

    Every 32-byte string is a valid Ed25519 seed, so no retry is needed. Never use for real funds.
    """
    return AgentKey(hashlib.sha256(label.encode("utf-8")).digest())

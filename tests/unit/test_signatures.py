"""Signature scheme: EIP-712 digests, secp256k1 recovery rules, Ed25519 rule set (test plan §7)."""

from __future__ import annotations

import json
from pathlib import Path

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.client.signing import AgentKey, Wallet, agent_from_seed, wallet_from_seed
from strata.core.signatures import (
    EIP712_DOMAIN_TYPE,
    SECP256K1_HALF_N,
    SECP256K1_N,
    TRANSACTION_TYPE,
    ZERO_ADDRESS,
    address_from_public_key,
    compute_domain_separator,
    compute_eip712_domain_separator,
    compute_transaction_digest,
    compute_typed_data_digest,
    encode_address,
    encode_bytes32,
    encode_string,
    encode_type_hash,
    encode_uint,
    hash_struct,
    is_canonical_wallet_signature,
    keccak256,
    recover_wallet_address,
    verify_agent_signature,
)

SPECCHECK_CASES = (
    Path(__file__).resolve().parents[1] / "vectors" / "ed25519-speccheck" / "cases.json"
)
SECP256K1_P = 2**256 - 2**32 - 977
ED25519_L = 2**252 + 27742317777372353535851937790883648493

CHAIN_ID = 31337
BRIDGE = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
ACTION = b'{"order":{"market":1,"side":"buy","price_ticks":100,"size_lots":5}}'


def _addr(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string.removeprefix("0x"))


def _split(signature: bytes) -> tuple[int, int, int]:
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return r, s, signature[64]


def _join(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return wallet_from_seed("alice")


@pytest.fixture(scope="module")
def digest(wallet: Wallet) -> bytes:
    return compute_transaction_digest(CHAIN_ID, BRIDGE, wallet.address, 7, ACTION)


# --- EIP-712 building blocks against the official "Mail" example ------------------------------


def test_keccak256_is_ethereum_keccak_not_nist_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_eip712_mail_example() -> None:
    """The EIP-712 specification's example, built only from our public building blocks."""
    person_type = "Person(string name,address wallet)"
    mail_type = "Mail(Person from,Person to,string contents)" + person_type

    def hash_person(name: str, wallet_hex: str) -> bytes:
        return hash_struct(
            encode_type_hash(person_type), encode_string(name), encode_address(_addr(wallet_hex))
        )

    domain_separator = hash_struct(
        encode_type_hash(EIP712_DOMAIN_TYPE),
        encode_string("Ether Mail"),
        encode_string("1"),
        encode_uint(1, 256),
        encode_address(_addr("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")),
    )
    mail_hash = hash_struct(
        encode_type_hash(mail_type),
        hash_person("Cow", "CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        hash_person("Bob", "bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
        encode_string("Hello, Bob!"),
    )
    assert encode_type_hash(mail_type).hex() == (
        "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
    )
    assert domain_separator.hex() == (
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    )
    assert mail_hash.hex() == "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    assert compute_typed_data_digest(domain_separator, mail_hash).hex() == (
        "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    )
    # The generic domain helper is the same construction.
    assert domain_separator == compute_eip712_domain_separator(
        "Ether Mail", "1", 1, _addr("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC")
    )


def test_transaction_digest_is_composed_from_the_building_blocks(wallet: Wallet) -> None:
    assert TRANSACTION_TYPE == "Transaction(address account,uint64 nonce,bytes32 action)"
    domain_separator = compute_eip712_domain_separator("Strata", "1", CHAIN_ID, BRIDGE)
    assert compute_domain_separator(CHAIN_ID, BRIDGE) == domain_separator
    message_hash = hash_struct(
        encode_type_hash(TRANSACTION_TYPE),
        encode_address(wallet.address),
        encode_uint(7, 64),
        encode_bytes32(keccak256(ACTION)),
    )
    expected = keccak256(b"\x19\x01" + domain_separator + message_hash)
    assert compute_transaction_digest(CHAIN_ID, BRIDGE, wallet.address, 7, ACTION) == expected


GOLDEN_TRANSACTION_DIGEST = "6c15a2f8809a69681db5b443620e9d7df5a42e76cfd295456fcc549a5d89eb2a"


def test_transaction_digest_golden_vector() -> None:
    """Frozen: changing the scheme must change this test on purpose."""
    account = _addr("2c7536E3605D9C16a7a3D7b1898e529396a65c23")
    digest = compute_transaction_digest(1, ZERO_ADDRESS, account, 1, b"\x01\x02\x03")
    assert digest.hex() == GOLDEN_TRANSACTION_DIGEST


@pytest.mark.parametrize(
    ("chain_id", "contract", "account", "nonce"),
    [
        (-1, BRIDGE, BRIDGE, 0),
        (2**256, BRIDGE, BRIDGE, 0),
        (1, BRIDGE[:19], BRIDGE, 0),
        (1, BRIDGE, BRIDGE + b"\x00", 0),
        (1, BRIDGE, BRIDGE, 2**64),
        (1, BRIDGE, BRIDGE, -1),
    ],
)
def test_transaction_digest_rejects_out_of_range_fields(
    chain_id: int, contract: bytes, account: bytes, nonce: int
) -> None:
    with pytest.raises(ValueError):
        compute_transaction_digest(chain_id, contract, account, nonce, ACTION)


# --- secp256k1 wallet signatures --------------------------------------------------------------


def test_known_private_key_address() -> None:
    key = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
    assert Wallet(key).address == _addr("2c7536E3605D9C16a7a3D7b1898e529396a65c23")


def test_sign_and_recover(wallet: Wallet, digest: bytes) -> None:
    signature = wallet.sign_digest(digest)
    assert len(signature) == 65
    _r, s, v = _split(signature)
    assert v in (27, 28)
    assert s <= SECP256K1_HALF_N
    assert is_canonical_wallet_signature(signature)
    assert recover_wallet_address(digest, signature) == wallet.address
    assert address_from_public_key(wallet.public_key) == wallet.address


def test_wrong_digest_recovers_another_address(wallet: Wallet, digest: bytes) -> None:
    signature = wallet.sign_digest(digest)
    other = recover_wallet_address(keccak256(b"another digest"), signature)
    assert other is not None
    assert other != wallet.address


def test_high_s_twin_is_rejected(wallet: Wallet, digest: bytes) -> None:
    r, s, v = _split(wallet.sign_digest(digest))
    twin = _join(r, SECP256K1_N - s, 55 - v)
    # The twin is a real malleation: plain ECDSA recovery yields the same key...
    raw = coincurve.PublicKey.from_signature_and_message(
        twin[:64] + bytes((twin[64] - 27,)), digest, hasher=None
    )
    assert address_from_public_key(raw.format(compressed=False)) == wallet.address
    # ...and our rules refuse it (EIP-2 low-s).
    assert not is_canonical_wallet_signature(twin)
    assert recover_wallet_address(digest, twin) is None


@pytest.mark.parametrize("v", [0, 1, 2, 3, 26, 29, 35, 36, 37, 38, 255])
def test_v_outside_27_28_is_rejected(wallet: Wallet, digest: bytes, v: int) -> None:
    signature = wallet.sign_digest(digest)
    assert recover_wallet_address(digest, signature[:64] + bytes((v,))) is None


def test_flipped_v_recovers_another_address_or_none(wallet: Wallet, digest: bytes) -> None:
    r, s, v = _split(wallet.sign_digest(digest))
    assert recover_wallet_address(digest, _join(r, s, 55 - v)) != wallet.address


def _first_r_with_no_curve_point() -> int:
    x = 1
    while pow((x**3 + 7) % SECP256K1_P, (SECP256K1_P - 1) // 2, SECP256K1_P) == 1:
        x += 1
    return x


@pytest.mark.parametrize(
    ("r_value", "s_value"),
    [
        (0, 1),
        (1, 0),
        (0, 0),
        (SECP256K1_N, 1),
        (SECP256K1_N + 1, 1),
        (2**256 - 1, 1),
        (1, SECP256K1_N),
        (1, SECP256K1_N - 1),
        (1, SECP256K1_HALF_N + 1),
        (1, 2**256 - 1),
    ],
)
def test_out_of_range_r_s_rejected(digest: bytes, r_value: int, s_value: int) -> None:
    for v in (27, 28):
        signature = _join(r_value, s_value, v)
        assert not is_canonical_wallet_signature(signature)
        assert recover_wallet_address(digest, signature) is None


def test_boundary_s_is_canonical() -> None:
    assert is_canonical_wallet_signature(_join(1, SECP256K1_HALF_N, 27))
    assert is_canonical_wallet_signature(_join(SECP256K1_N - 1, 1, 28))


def test_r_not_an_x_coordinate_gives_none(digest: bytes) -> None:
    signature = _join(_first_r_with_no_curve_point(), 1, 27)
    assert is_canonical_wallet_signature(signature)
    assert recover_wallet_address(digest, signature) is None


def test_truncated_or_extended_signatures_rejected(wallet: Wallet, digest: bytes) -> None:
    signature = wallet.sign_digest(digest)
    for bad in (b"", signature[:64], signature[:-1], signature[1:], signature + b"\x00"):
        assert recover_wallet_address(digest, bad) is None
    for bad_digest in (b"", digest[:31], digest + b"\x00"):
        assert recover_wallet_address(bad_digest, signature) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=70), st.binary(min_size=0, max_size=40))
def test_recover_never_raises(signature: bytes, digest: bytes) -> None:
    result = recover_wallet_address(digest, signature)
    assert result is None or len(result) == 20


def test_wallet_rejects_out_of_range_keys() -> None:
    for key in (bytes(32), SECP256K1_N.to_bytes(32, "big"), b"\x01" * 31):
        with pytest.raises(ValueError):
            Wallet(key)


def test_seeded_keys_are_deterministic_and_distinct() -> None:
    assert wallet_from_seed("alice").address == wallet_from_seed("alice").address
    assert wallet_from_seed("alice").address != wallet_from_seed("bob").address
    assert agent_from_seed("alice").public_key == agent_from_seed("alice").public_key
    assert agent_from_seed("alice").public_key != agent_from_seed("bob").public_key


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=1, max_value=SECP256K1_N - 1),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_wallet_round_trip(secret: int, digest: bytes, seed: bytes) -> None:
    wallet = Wallet(secret.to_bytes(32, "big"))
    signature = wallet.sign_digest(digest)
    assert is_canonical_wallet_signature(signature)
    assert recover_wallet_address(digest, signature) == wallet.address
    agent = AgentKey(seed)
    assert verify_agent_signature(agent.public_key, digest, agent.sign_digest(digest))


# --- replay across chains and bridges (test plan §7, Wintermute/Optimism) ---------------------


def test_replay_other_chain(wallet: Wallet) -> None:
    on_chain_1 = compute_transaction_digest(1, BRIDGE, wallet.address, 7, ACTION)
    on_chain_2 = compute_transaction_digest(2, BRIDGE, wallet.address, 7, ACTION)
    signature = wallet.sign_digest(on_chain_1)
    assert recover_wallet_address(on_chain_1, signature) == wallet.address
    replayed = recover_wallet_address(on_chain_2, signature)
    assert replayed is not None
    assert replayed != wallet.address


def test_replay_other_verifying_contract(wallet: Wallet) -> None:
    contract_x = _addr("00000000000000000000000000000000000000aa")
    contract_y = _addr("00000000000000000000000000000000000000bb")
    at_x = compute_transaction_digest(CHAIN_ID, contract_x, wallet.address, 7, ACTION)
    at_y = compute_transaction_digest(CHAIN_ID, contract_y, wallet.address, 7, ACTION)
    signature = wallet.sign_digest(at_x)
    assert recover_wallet_address(at_x, signature) == wallet.address
    assert recover_wallet_address(at_y, signature) != wallet.address


def test_every_field_is_bound(wallet: Wallet) -> None:
    base = (CHAIN_ID, BRIDGE, wallet.address, 7, ACTION)
    variants = [
        (CHAIN_ID, ZERO_ADDRESS, wallet.address, 7, ACTION),
        (CHAIN_ID, BRIDGE, wallet_from_seed("bob").address, 7, ACTION),
        (CHAIN_ID, BRIDGE, wallet.address, 8, ACTION),
        (CHAIN_ID, BRIDGE, wallet.address, 7, ACTION + b" "),
    ]
    digests = {compute_transaction_digest(*base)} | {
        compute_transaction_digest(*variant) for variant in variants
    }
    assert len(digests) == 1 + len(variants)


# --- Ed25519 agent signatures -----------------------------------------------------------------


def test_agent_sign_and_verify(digest: bytes) -> None:
    agent = agent_from_seed("alice-agent")
    signature = agent.sign_digest(digest)
    assert len(signature) == 64
    assert verify_agent_signature(agent.public_key, digest, signature)
    assert not verify_agent_signature(agent.public_key, keccak256(digest), signature)
    assert not verify_agent_signature(agent_from_seed("eve").public_key, digest, signature)
    flipped = bytes((signature[0] ^ 1,)) + signature[1:]
    assert not verify_agent_signature(agent.public_key, digest, flipped)


def test_agent_s_plus_l_malleation_rejected(digest: bytes) -> None:
    agent = agent_from_seed("alice-agent")
    signature = agent.sign_digest(digest)
    s_value = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s_value + ED25519_L).to_bytes(32, "little")
    assert not verify_agent_signature(agent.public_key, digest, malleated)


def test_agent_wrong_lengths_rejected(digest: bytes) -> None:
    agent = agent_from_seed("alice-agent")
    signature = agent.sign_digest(digest)
    public_key = agent.public_key
    assert not verify_agent_signature(public_key[:31], digest, signature)
    assert not verify_agent_signature(public_key + b"\x00", digest, signature)
    assert not verify_agent_signature(public_key, digest[:31], signature)
    assert not verify_agent_signature(public_key, digest, signature[:63])
    assert not verify_agent_signature(public_key, digest, signature + b"\x00")


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=30, max_size=34),
    st.binary(min_size=30, max_size=34),
    st.binary(min_size=62, max_size=66),
)
def test_agent_verify_never_raises(public_key: bytes, digest: bytes, signature: bytes) -> None:
    assert verify_agent_signature(public_key, digest, signature) in (True, False)


# Frozen accept/reject bitmap of the ed25519-speccheck cases (novifinancial/ed25519-speccheck,
# cases 0-9) under libsodium's rule set as used by PyNaCl 1.6.2 (crypto_sign_verify_detached):
# S must be canonical (S < L), A canonical and not of small order, R not of small order, and the
# equation [S]B = R + [k mod L]A checked cofactorless. Consensus-critical: if a library upgrade
# changes any entry, that is a fork, not a test to update. docs/signatures.md explains each case.
SPECCHECK_EXPECTED = (
    False,  # 0: S = 0, small-order A, small-order R         -> small-order A
    False,  # 1: small-order A, mixed-order R                 -> small-order A
    False,  # 2: mixed-order A, small-order R                 -> small-order R
    True,  # 3: mixed-order A and R, cofactorless holds        -> accepted
    False,  # 4: mixed-order A and R, only cofactored holds   -> cofactorless equation fails
    False,  # 5: mixed-order A, only cofactored holds         -> cofactorless equation fails
    False,  # 6: S >= L                                        -> non-canonical S
    False,  # 7: S >> L                                        -> non-canonical S
    False,  # 8: non-canonical small-order R, no equation holds -> small-order R
    False,  # 9: non-canonical small-order R, equation holds  -> small-order R
)


def test_ed25519_speccheck_bitmap() -> None:
    cases = json.loads(SPECCHECK_CASES.read_text())
    observed = tuple(
        verify_agent_signature(
            bytes.fromhex(case["pub_key"]),
            bytes.fromhex(case["message"]),
            bytes.fromhex(case["signature"]),
        )
        for case in cases
    )
    assert observed == SPECCHECK_EXPECTED

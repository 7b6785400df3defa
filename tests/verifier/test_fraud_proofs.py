"""Fraud proofs on a small chain: built by the witness recorder, checked from nothing else.

A chain with trades, cancels (by order id and by client id), a bulk placement, a cancel-all,
transfers, a withdrawal, deposits (system inputs) and oracle prices. For each block: a header
claiming a wrong state root is proven wrong; the same builder on the honest block gives a proof
that does not hold; a proof with an altered or missing witness entry, a book left out, another
parent, or a wrong correct root is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from strata.client.signing import wallet_from_seed
from strata.core.hashing import sha256
from strata.core.merkle import compute_root_from_pairs
from strata.state.store import State
from strata.stf.block import Block, Header, compute_header_hash
from strata.stf.genesis import Allocation, GenesisConfig, InitialPrice, make_genesis
from strata.stf.state_root import iter_state_leaves
from strata.stf.transactions import (
    BulkPlace,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    Transfer,
    Withdraw,
)
from strata.stf.transition import copy_state
from strata.verifier.fraud_proof import (
    FraudProof,
    FraudProofFormatError,
    WitnessEntry,
    build_fraud_proof,
    decode_fraud_proof,
    encode_fraud_proof,
    main,
    verify_fraud_proof,
)
from strata.verifier.witness import BOOKS, Recording, Switch, WatchedDict, _RecordingWatch
from tests.helpers.chain import BTC, ETH, GENESIS_MS, make_chain, sign

BALANCE = 1_000_000_000_000
LIE = sha256(b"a wrong state root")

Step = tuple[State, Header, Block]


def _scenario() -> tuple[GenesisConfig, list[Step]]:
    chain = make_chain(balance_quote=BALANCE)
    genesis = GenesisConfig(
        params=chain.params,
        timestamp_ms=GENESIS_MS,
        markets=(BTC, ETH),
        allocations=tuple(Allocation(w.address, BALANCE) for w in chain.wallets.values()),
        prices=(InitialPrice(1, 500_000), InitialPrice(2, 30_000)),
    )
    _, genesis_header = make_genesis(genesis)
    assert genesis_header.state_root == compute_root_from_pairs(iter_state_leaves(chain.state))
    steps: list[Step] = []
    parent = genesis_header
    alice, bob, carol = chain.addr("alice"), chain.addr("bob"), chain.addr("carol")

    def step(txs: list[bytes], system: list[Any] | None = None) -> None:
        nonlocal parent
        pre = copy_state(chain.state)
        chain.block(txs, system or [])
        block, output = chain.blocks[-1]
        assert not output.rejected and all(r.status == 0 for r in output.receipts)
        assert len(block.transactions) == len(txs)
        steps.append((pre, parent, block))
        parent = block.header

    step(
        [
            chain.tx("alice", PlaceOrder(1, True, 499_000, 3, client_id=11)),
            chain.tx("bob", PlaceOrder(2, False, 30_500, 100)),
            chain.tx("carol", PlaceOrder(1, True, 498_000, 2)),
        ],
        [chain.price(1, 500_100), chain.price(2, 30_010), Deposit(0, carol, 5_000_000)],
    )
    step(
        [
            chain.tx("bob", PlaceOrder(1, False, 499_000, 2, client_id=7)),
            chain.tx("carol", Transfer(alice, 1_000_000)),
        ]
    )
    step(
        [
            chain.tx("alice", CancelOrder(1, client_id=11)),
            chain.tx("bob", CancelOrder(2, order_id=1)),
            chain.tx("carol", Withdraw(2_000_000, b"\x22" * 20)),
        ],
        [Deposit(1, bob, 7_000_000), chain.price(1, 500_200)],
    )
    step(
        [
            chain.tx(
                "alice",
                BulkPlace(
                    tuple(PlaceOrder(2, True, 29_000 + i, 10, client_id=i) for i in range(5))
                ),
            ),
            chain.tx("bob", PlaceOrder(2, False, 29_004, 20)),
            chain.tx("carol", CancelAll()),
        ]
    )
    step([])
    return genesis, steps


@pytest.fixture(scope="module")
def chain() -> tuple[GenesisConfig, list[Step]]:
    return _scenario()


def _tamper(block: Block, **fields: Any) -> Block:
    return msgspec.structs.replace(block, header=msgspec.structs.replace(block.header, **fields))


def _prove(genesis: GenesisConfig, step: Step, block: Block | None = None) -> FraudProof:
    pre, parent, honest = step
    proof = build_fraud_proof(genesis, pre, parent, honest if block is None else block)
    assert decode_fraud_proof(encode_fraud_proof(proof)) == proof
    return proof


def _refused(proof: FraudProof, reason: str) -> None:
    verdict = verify_fraud_proof(proof)
    assert not verdict.proven, verdict
    assert reason in verdict.reason, verdict.reason


def test_a_wrong_state_root_is_proven_at_every_block(
    chain: tuple[GenesisConfig, list[Step]],
) -> None:
    genesis, steps = chain
    for step in steps:
        honest = step[2]
        proof = _prove(genesis, step, _tamper(honest, state_root=LIE))
        verdict = verify_fraud_proof(proof)
        assert verdict.proven, verdict.reason
        assert verdict.kind == "state root"
        assert verdict.height == honest.header.height
        assert verdict.claimed_root == LIE
        assert verdict.correct_root == honest.header.state_root == proof.correct_post_root
        assert verdict.parent_hash == compute_header_hash(step[1])


def test_the_builder_on_a_correct_block_gives_a_proof_that_does_not_hold(
    chain: tuple[GenesisConfig, list[Step]],
) -> None:
    genesis, steps = chain
    for step in steps:
        proof = _prove(genesis, step)
        assert proof.correct_post_root == proof.claimed_post_root
        _refused(proof, "the block is correct")


def test_the_witness_covers_books_and_past_orders(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[3], _tamper(steps[3][2], state_root=LIE))
    assert proof.books == (1, 2)  # client ids are checked in every market's book
    absent = [e for e in proof.witness if e.value is None and e.key[0] == 0x70]
    assert absent  # orders filled or canceled before: proven absent, so the book is complete


def test_an_altered_witness_value_is_refused(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[1], _tamper(steps[1][2], state_root=LIE))
    assert verify_fraud_proof(proof).proven
    for index, entry in enumerate(proof.witness):
        value = b"\x00" if entry.value is None else entry.value + b"\x00"
        witness = list(proof.witness)
        witness[index] = WitnessEntry(entry.key, value, entry.proof)
        altered = msgspec.structs.replace(proof, witness=tuple(witness))
        _refused(altered, "the witness does not match the pre-state root")


def test_a_missing_witness_entry_is_refused(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    for step in steps[:4]:
        proof = _prove(genesis, step, _tamper(step[2], state_root=LIE))
        for index in range(len(proof.witness)):
            witness = proof.witness[:index] + proof.witness[index + 1 :]
            _refused(msgspec.structs.replace(proof, witness=witness), "incomplete witness")


def test_a_book_left_out_is_refused(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[3], _tamper(steps[3][2], state_root=LIE))
    for market_id in proof.books:
        books = tuple(m for m in proof.books if m != market_id)
        _refused(msgspec.structs.replace(proof, books=books), "incomplete witness")
    _refused(msgspec.structs.replace(proof, books=(*proof.books, 99)), "incomplete witness")


def test_another_parent_root_is_refused(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[1], _tamper(steps[1][2], state_root=LIE))
    other = msgspec.structs.replace(proof.parent, state_root=steps[2][1].state_root)
    # The block names its parent by hash: another parent header is refused outright.
    _refused(msgspec.structs.replace(proof, parent=other), "does not extend the parent")
    # A block re-pointed at that parent: the witness is not proven under its root.
    block = msgspec.msgpack.decode(proof.block, type=Block)
    repointed = _tamper(block, parent_hash=compute_header_hash(other))
    forged = msgspec.structs.replace(proof, parent=other, block=msgspec.msgpack.encode(repointed))
    _refused(forged, "the witness does not match the pre-state root")
    # The parent of another height.
    _refused(msgspec.structs.replace(proof, parent=steps[0][1]), "does not extend the parent")


def test_the_correct_root_must_be_what_execution_gives(
    chain: tuple[GenesisConfig, list[Step]],
) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[1], _tamper(steps[1][2], state_root=LIE))
    _refused(msgspec.structs.replace(proof, correct_post_root=LIE), "is not what re-execution")
    _refused(msgspec.structs.replace(proof, claimed_post_root=bytes(32)), "not the block header")


def test_an_invalid_block_is_proven_and_changes_nothing(
    chain: tuple[GenesisConfig, list[Step]],
) -> None:
    genesis, steps = chain
    _, parent, honest = steps[1]
    mallory = wallet_from_seed("mallory")
    alice = wallet_from_seed("alice").address
    forged = sign(mallory, PlaceOrder(1, True, 400_000, 1), 1, genesis.params, account=alice)
    block = msgspec.structs.replace(honest, transactions=(*honest.transactions, forged))
    verdict = verify_fraud_proof(_prove(genesis, steps[1], block))
    assert verdict.proven and verdict.kind == "invalid block", verdict.reason
    assert "INVALID_TRANSACTION_IN_BLOCK" in verdict.reason
    assert verdict.correct_root == parent.state_root


def test_a_wrong_receipts_root_is_proven(chain: tuple[GenesisConfig, list[Step]]) -> None:
    genesis, steps = chain
    honest = steps[1][2]
    verdict = verify_fraud_proof(_prove(genesis, steps[1], _tamper(honest, receipts_root=LIE)))
    assert verdict.proven and verdict.kind == "receipts root", verdict.reason
    assert verdict.correct_root == honest.header.state_root


def test_hostile_proofs_are_refused_without_crashing(
    chain: tuple[GenesisConfig, list[Step]],
) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[1], _tamper(steps[1][2], state_root=LIE))
    first = proof.witness[0]
    bad_proof = (WitnessEntry(first.key, first.value, b"\x07"), *proof.witness[1:])
    _refused(msgspec.structs.replace(proof, witness=bad_proof), "does not decode")
    twice = (first, *proof.witness)
    _refused(msgspec.structs.replace(proof, witness=twice), "twice")
    _refused(msgspec.structs.replace(proof, block=b"\x90"), "does not decode")
    _refused(msgspec.structs.replace(proof, version=2), "version")
    other_chain = msgspec.structs.replace(
        genesis, params=msgspec.structs.replace(genesis.params, chain_id=1)
    )
    _refused(msgspec.structs.replace(proof, genesis=other_chain), "another chain")


def test_the_file_format_and_the_command(
    chain: tuple[GenesisConfig, list[Step]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis, steps = chain
    proof = _prove(genesis, steps[1], _tamper(steps[1][2], state_root=LIE))
    data = encode_fraud_proof(proof)
    for bad in (b"XXXX" + data[4:], data + b"\x00", data[:-1], b""):
        with pytest.raises(FraudProofFormatError):
            decode_fraud_proof(bad)
    path = tmp_path / "proof.bin"
    path.write_bytes(data)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    height = steps[1][2].header.height
    assert out.startswith(f"fraud proven at height {height}: claimed 0x{LIE.hex()}, correct 0x")
    path.write_bytes(encode_fraud_proof(_prove(genesis, steps[1])))
    assert main([str(path), "--json"]) == 1
    assert '"proven": false' in capsys.readouterr().out
    path.write_bytes(data[:100])
    assert main([str(path)]) == 2
    assert main([str(tmp_path / "missing.bin")]) == 2


def test_a_watched_dict_records_hits_misses_writes_and_iteration() -> None:
    recording = Recording()
    switch = Switch()
    data = WatchedDict({1: "a", 2: "b"}, _RecordingWatch("t", switch, recording))
    assert data.get(1) == "a" and data.get(3) is None and 4 not in data and data[2] == "b"
    data.setdefault(5, "e")
    data.pop(6, None)
    data[7] = "g"
    del data[7]
    assert recording.keys["t"] == {1, 2, 3, 4, 5, 6, 7} and not recording.whole
    switch.active = False
    assert data.get(8) is None and sorted(data) == [1, 2, 5]
    assert 8 not in recording.keys["t"] and not recording.whole
    switch.active = True
    assert sorted(data) == [1, 2, 5]
    assert recording.whole == {"t"}
    assert BOOKS == "books"

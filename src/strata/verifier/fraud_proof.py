"""Fraud proofs: a disputed block with the pre-state it touches, checkable from nothing else.

A verifier that finds a block whose header does not match execution (``strata verify``) writes a
:class:`FraudProof`: the chain's genesis configuration, the parent header, the block's bytes, the
*witness* (every committed key the block reads or writes, with its pre-state value or ``None``
and a Merkle proof under the parent's state root), the markets whose books the witness holds
whole, and the claimed and correct post-state roots. :func:`verify_fraud_proof` re-executes the
block over the witness alone and says whether the block is wrong, and how; ``strata verify-proof
FILE`` is its command line. The design and its limits are in ``docs/fraud-proofs.md``.

Trust anchors: a proof is judged relative to its genesis (the verdict carries its header hash)
and its parent header (the verdict carries its hash); a settlement contract would check both
against what it holds. Everything else is checked: the block must extend the parent, every
witness entry must be proven under the parent's state root, and re-execution may read nothing
the witness does not cover (``verifier/witness.py``).

File format: ``b"STFP"`` then the canonical msgpack of the :class:`FraudProof` (``core.codec``);
:func:`decode_fraud_proof` accepts exactly the canonical bytes.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from strata.core.codec import encode
from strata.core.errors import ChainError, ErrorCode, InvalidBlock
from strata.core.merkle import (
    IncompleteProofsError,
    SparseMerkleProof,
    compute_path,
    compute_root_from_proofs,
    decode_proof,
    encode_proof,
    verify_proof,
)
from strata.state.smt import MemoryNodeSource, SparseMerkleTree
from strata.state.store import ChainTip, State
from strata.stf.block import Block, Header, compute_header_hash, decode_block
from strata.stf.genesis import GenesisConfig, make_genesis
from strata.stf.state_root import iter_state_leaves
from strata.stf.transition import apply_block
from strata.verifier.witness import (
    IncompleteWitness,
    Switch,
    WitnessError,
    collect_changes_unwatched,
    compute_witness_keys,
    load_partial_state,
    record_block,
)

FRAUD_PROOF_MAGIC: Final = b"STFP"
FRAUD_PROOF_VERSION: Final = 1
MAX_FRAUD_PROOF_BYTES: Final = 256 * 1024 * 1024

ROOT_CODES: Final = {
    ErrorCode.BAD_STATE_ROOT: "state root",
    ErrorCode.BAD_TRANSACTIONS_ROOT: "transactions root",
    ErrorCode.BAD_RECEIPTS_ROOT: "receipts root",
    ErrorCode.BAD_WITHDRAWALS_ROOT: "withdrawals root",
    ErrorCode.BAD_GAS_USED: "gas used",
}
"""The commitments of a header that ``apply_block`` compares with execution."""


class WitnessEntry(msgspec.Struct, frozen=True, array_like=True):
    """One committed key of the pre-state: its value (``None``: absent) and its proof
    (``core.merkle.encode_proof``) under the parent header's state root."""

    key: bytes
    value: bytes | None
    proof: bytes


class FraudProof(msgspec.Struct, frozen=True, array_like=True, kw_only=True):
    """Everything needed to re-execute a disputed block statelessly."""

    version: int
    genesis: GenesisConfig
    """The chain's genesis: the parameters ``apply_block`` runs with and the listed markets."""
    parent: Header
    """The header of the block before the disputed one (its state root is the pre-state's)."""
    block: bytes
    """The disputed block's canonical bytes."""
    books: tuple[int, ...]
    """Markets whose books the witness holds whole (ascending)."""
    witness: tuple[WitnessEntry, ...]
    """Sorted by key, each key once."""
    claimed_post_root: bytes
    """The block header's state root."""
    correct_post_root: bytes
    """The state root honest execution gives; the parent's root if the block is invalid."""


class FraudProofFormatError(ValueError):
    """Bytes that are not a fraud proof (wrong magic, too large, not canonical msgpack)."""


_DECODER = msgspec.msgpack.Decoder(FraudProof)


def encode_fraud_proof(proof: FraudProof) -> bytes:
    """The file bytes of ``proof``: ``b"STFP"`` and its canonical msgpack."""
    return FRAUD_PROOF_MAGIC + encode(proof)


def decode_fraud_proof(data: bytes) -> FraudProof:
    """The inverse of :func:`encode_fraud_proof`; raises :class:`FraudProofFormatError` on
    anything else (including a non-canonical encoding of a proof)."""
    if len(data) > MAX_FRAUD_PROOF_BYTES:
        raise FraudProofFormatError(f"{len(data)} bytes > {MAX_FRAUD_PROOF_BYTES}")
    if not data.startswith(FRAUD_PROOF_MAGIC):
        raise FraudProofFormatError("not a fraud proof (bad magic)")
    body = data[len(FRAUD_PROOF_MAGIC) :]
    try:
        proof = _DECODER.decode(body)
    except msgspec.DecodeError as error:
        raise FraudProofFormatError(f"not a fraud proof: {error}") from None
    if encode(proof) != body:
        raise FraudProofFormatError("not the canonical encoding of a fraud proof")
    return proof


# -- Building (the prover) -------------------------------------------------------------------------


def build_fraud_proof(
    genesis: GenesisConfig, pre_state: State, parent: Header, block: Block
) -> FraudProof:
    """The fraud proof of ``block`` on ``pre_state`` (the full state after ``parent``).

    Re-executes the block on a watched copy (``witness.record_block``), proves every touched key
    under the pre-state root, and adds the few extra keys the post-state root needs to be
    computable from proofs alone (``core.merkle.IncompleteProofsError``: a subtree left alone by
    deletes must be known to be a single leaf or not). Works on a correct block too: the proof
    then says so when checked. ``pre_state`` is not modified.

    Raises
    ------
    WitnessError
        If ``pre_state`` is not the state of ``parent`` (root or tip), or the block touches state
        whose completeness a witness cannot prove.
    """
    leaves = dict(iter_state_leaves(pre_state))
    tree = SparseMerkleTree(MemoryNodeSource())
    tree.apply(leaves)
    pre_root = tree.root
    if pre_root != parent.state_root:
        raise WitnessError("the pre-state's root is not the parent header's state root")
    if pre_state.tip.header_hash != compute_header_hash(parent):
        raise WitnessError("the pre-state's tip is not the parent header")
    recording = record_block(pre_state, block, genesis.params, tree)
    keys, books = compute_witness_keys(pre_state, recording)
    error = recording.error
    if recording.post_root is None or (error is not None and error.code not in ROOT_CODES):
        correct = pre_root  # an invalid block changes nothing
    else:
        correct = recording.post_root
    if recording.changes:
        keys.update(recording.changes)  # new resting orders: ids the block assigned
        _add_openings(keys, leaves, pre_root, tree, recording.changes, correct)
    witness = tuple(
        WitnessEntry(key, leaves.get(key), encode_proof(tree.prove(key, pre_root)))
        for key in sorted(keys)
    )
    return FraudProof(
        version=FRAUD_PROOF_VERSION,
        genesis=genesis,
        parent=parent,
        block=encode(block),
        books=tuple(books),
        witness=witness,
        claimed_post_root=block.header.state_root,
        correct_post_root=correct,
    )


def _add_openings(
    keys: set[bytes],
    leaves: dict[bytes, bytes],
    pre_root: bytes,
    tree: SparseMerkleTree,
    changes: dict[bytes, bytes | None],
    post_root: bytes,
) -> None:
    """Add to ``keys`` the keys whose proofs open the subtrees that the post-state root needs
    (one per subtree ``compute_root_from_proofs`` asks about), until it computes ``post_root``."""
    by_path = sorted((int.from_bytes(compute_path(key), "big"), key) for key in leaves)
    points = [point for point, _ in by_path]
    proven = {key: (leaves.get(key), tree.prove(key, pre_root)) for key in keys}
    for _ in range(len(changes) + 1):
        try:
            root = compute_root_from_proofs(pre_root, proven, changes)
        except IncompleteProofsError as missing:
            shift = 256 - missing.depth
            start = int.from_bytes(missing.path, "big") >> shift << shift
            index = bisect.bisect_left(points, start)
            if index == len(points) or points[index] >> shift != start >> shift:
                raise WitnessError(f"no key under the subtree to open: {missing}") from None
            key = by_path[index][1]
            keys.add(key)
            proven[key] = (leaves[key], tree.prove(key, pre_root))
            continue
        if root != post_root:
            raise WitnessError("the root from proofs differs from the tree's (a bug)")
        return
    raise WitnessError("too many subtrees to open (a bug)")


# -- Checking (anyone) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FraudVerdict:
    """What checking a fraud proof found.

    ``proven`` is true when the block is wrong: ``kind`` then says how (``"state root"``,
    another commitment of :data:`ROOT_CODES`, or ``"invalid block"``) and ``reason`` in words;
    otherwise ``reason`` says why the proof does not hold.
    """

    proven: bool
    reason: str
    kind: str | None = None
    height: int | None = None
    claimed_root: bytes | None = None
    correct_root: bytes | None = None
    genesis_hash: bytes | None = None
    parent_hash: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        def show(value: bytes | None) -> str | None:
            return None if value is None else "0x" + value.hex()

        return {
            "proven": self.proven,
            "kind": self.kind,
            "reason": self.reason,
            "height": self.height,
            "claimed_root": show(self.claimed_root),
            "correct_root": show(self.correct_root),
            "genesis_hash": show(self.genesis_hash),
            "parent_hash": show(self.parent_hash),
        }


class _ProofCommitment:
    """The partial state's commitment: the post-state root from the witness's proofs and the
    block's changes (``core.merkle.compute_root_from_proofs``)."""

    def __init__(
        self,
        pre_root: bytes,
        proven: dict[bytes, tuple[bytes | None, SparseMerkleProof]],
        switch: Switch,
    ) -> None:
        self.pre_root = pre_root
        self.proven = proven
        self.switch = switch
        self.root: bytes | None = None

    def compute_root(self, state: State) -> bytes:
        changes = collect_changes_unwatched(state, self.switch)
        self.root = compute_root_from_proofs(self.pre_root, self.proven, changes)
        return self.root


def verify_fraud_proof(proof: FraudProof) -> FraudVerdict:
    """Check ``proof`` from nothing else: is its block wrong, given its genesis and parent?

    The block is proven wrong when, re-executed over the witness, it is invalid (an
    ``InvalidBlock`` other than a root mismatch: the correct post root is then the parent's), or
    a commitment of its header differs from execution while the recomputed state root equals
    ``correct_post_root``. The proof does not hold when the block checks out, when the proof is
    inconsistent (a witness entry not proven under the parent's root, a block that does not extend
    the parent, a claimed root that is not the header's, a correct root that is not what
    execution gives) or when re-execution needs state the witness does not cover. Never raises.
    """
    try:
        return _verify(proof)
    except Exception as error:  # a hostile proof must not crash the checker
        return FraudVerdict(False, f"the proof does not check out: {type(error).__name__}: {error}")


def _verify(proof: FraudProof) -> FraudVerdict:
    if proof.version != FRAUD_PROOF_VERSION:
        return FraudVerdict(False, f"unknown fraud proof version {proof.version}")
    genesis = proof.genesis
    params = genesis.params
    try:
        _, genesis_header = make_genesis(genesis)
    except (ChainError, ValueError) as error:
        return FraudVerdict(False, f"the genesis does not check out: {error}")
    genesis_hash = compute_header_hash(genesis_header)
    parent = proof.parent
    parent_hash = compute_header_hash(parent)

    def refuse(reason: str, height: int | None = None) -> FraudVerdict:
        return FraudVerdict(
            False,
            reason,
            height=height,
            claimed_root=proof.claimed_post_root,
            genesis_hash=genesis_hash,
            parent_hash=parent_hash,
        )

    if parent.chain_id != params.chain_id:
        return refuse("the parent header is of another chain")
    try:
        block = decode_block(proof.block)
    except InvalidBlock as error:
        return refuse(f"the block does not decode: {error.detail}")
    header = block.header
    height = header.height
    if height != parent.height + 1 or header.parent_hash != parent_hash:
        return refuse("the block does not extend the parent header", height)
    if proof.claimed_post_root != header.state_root:
        return refuse("the claimed post root is not the block header's state root", height)

    # (a) every witness entry is proven under the parent's state root
    pre_root = parent.state_root
    proven: dict[bytes, tuple[bytes | None, SparseMerkleProof]] = {}
    for entry in proof.witness:
        if entry.key in proven:
            return refuse(f"the witness holds key {entry.key.hex()} twice", height)
        try:
            merkle_proof = decode_proof(entry.proof)
        except ValueError as error:
            return refuse(f"a witness proof does not decode: {error}", height)
        if not verify_proof(pre_root, entry.key, entry.value, merkle_proof):
            return refuse("the witness does not match the pre-state root", height)
        proven[entry.key] = (entry.value, merkle_proof)

    # (b) a state holding only the witness, guarded against reading past it
    tip = ChainTip(parent.height, parent.timestamp_ms, parent_hash)
    try:
        state, switch = load_partial_state(
            ((key, value) for key, (value, _) in proven.items()),
            proof.books,
            (market.market_id for market in genesis.markets),
            tip,
        )
    except IncompleteWitness as error:
        return refuse(f"incomplete witness: {error}", height)
    except InvalidBlock as error:
        return refuse(f"the witness does not decode: {error.detail}", height)
    commitment = _ProofCommitment(pre_root, proven, switch)
    state.commitment = commitment

    # (c) re-execute
    try:
        apply_block(state, block, params)
    except (IncompleteWitness, IncompleteProofsError) as error:
        return refuse(f"incomplete witness: {error}", height)
    except InvalidBlock as error:
        refused = error
    else:
        return refuse(
            "the block is correct: re-execution gives every root its header claims", height
        )

    # (d) the block is wrong: say how, and hold the proof to the root it names
    what = ROOT_CODES.get(refused.code)
    if what is None:
        kind = "invalid block"
        reason = f"the block is invalid: {refused.code.name} {refused.detail}"
        correct = pre_root  # an invalid block changes nothing
    else:
        assert commitment.root is not None  # apply_block compares roots after computing them
        kind = what
        reason = f"the header's {what} is wrong: {refused.detail}"
        correct = commitment.root
    if proof.correct_post_root != correct:
        return refuse(
            f"the proof's correct post root 0x{proof.correct_post_root.hex()} is not what "
            f"re-execution gives (0x{correct.hex()}; {reason})",
            height,
        )
    return FraudVerdict(
        True,
        reason,
        kind=kind,
        height=height,
        claimed_root=proof.claimed_post_root,
        correct_root=correct,
        genesis_hash=genesis_hash,
        parent_hash=parent_hash,
    )


# -- Command line ----------------------------------------------------------------------------------


def write_fraud_proof(path: Path, proof: FraudProof) -> None:
    """Write ``proof`` to ``path`` (through a temporary file, so a reader never sees half)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(encode_fraud_proof(proof))
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    """``strata verify-proof FILE [--json]``: 0 when the proof holds, 1 when it does not, 2 when
    the file cannot be read as a fraud proof."""
    parser = argparse.ArgumentParser(
        prog="strata verify-proof",
        description="Check a fraud proof statelessly: re-execute its block over its witness.",
    )
    parser.add_argument("file", type=Path, help="a fraud proof written by strata verify")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    try:
        proof = decode_fraud_proof(args.file.read_bytes())
    except (OSError, FraudProofFormatError) as error:
        print(f"error: {args.file}: {error}", file=sys.stderr)
        return 2
    verdict = verify_fraud_proof(proof)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2))
    elif verdict.proven:
        assert verdict.claimed_root is not None and verdict.correct_root is not None
        print(
            f"fraud proven at height {verdict.height}: claimed 0x{verdict.claimed_root.hex()}, "
            f"correct 0x{verdict.correct_root.hex()}"
        )
        print(f"  {verdict.reason}")
        _print_anchors(verdict)
    else:
        print(f"not proven: {verdict.reason}")
        _print_anchors(verdict)
    return 0 if verdict.proven else 1


def _print_anchors(verdict: FraudVerdict) -> None:
    if verdict.genesis_hash is not None and verdict.parent_hash is not None:
        print(f"  genesis 0x{verdict.genesis_hash.hex()}, parent 0x{verdict.parent_hash.hex()}")

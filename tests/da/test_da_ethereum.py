"""The ``ethereum`` DA adapter against a real Anvil node (``node_modules/.bin/anvil``).

One Anvil serves the module (each test posts to its own inbox address, so tests do not see one
another's batches); the tests that stop or rewind a node start their own. The poster is Anvil's
first dev account; transactions are mined as they arrive (Anvil's automine).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from strata.adapters.da_ethereum import (
    BLOB_PAYLOAD_BYTES,
    BYTES_PER_BLOB,
    DEFAULT_MAX_DATA_BYTES,
    MAX_BLOBS_PER_TX,
    PROOF_BYTES,
    SCAN_BATCH_BLOCKS,
    EthereumDa,
    blob_capacity,
    blobs_needed,
    decode_blobs,
    encode_blobs,
    encode_marker,
)
from strata.da.batch import ZERO_HASH, batch_hash, decode_batch, encode_batch, seal_batch
from strata.da.derive import derive_blocks
from strata.ports.da import DaClient, DaError, DaReference, DaUnavailable
from strata.stf.block import Block
from strata.stf.transactions import PlaceOrder
from tests.helpers.anvil import DEV_ADDRESSES, DEV_KEYS, Anvil, is_anvil_installed, run_anvil
from tests.helpers.chain import CHAIN_ID, make_chain

pytestmark = pytest.mark.skipif(
    not is_anvil_installed(),
    reason="anvil is not installed: `make setup` runs `npm ci` (node_modules/.bin/anvil)",
)

POSTER_KEY, OTHER_KEY = DEV_KEYS
POSTER, OTHER = DEV_ADDRESSES
_inbox_numbers = itertools.count(1)


def new_inbox() -> bytes:
    """A fresh keyless inbox address (``0xff00…00NN``) per test."""
    return bytes([0xFF]) + next(_inbox_numbers).to_bytes(19, "big")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    with run_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log") as node:
        yield node


@pytest.fixture(scope="module")
def chain_blocks() -> list[Block]:
    """130 blocks of a real chain, some with orders in them."""
    chain = make_chain()
    for height in range(1, 131):
        txs = []
        if height % 3 == 0:
            txs.append(chain.tx("alice", PlaceOrder(1, True, 400_000 + height, 1)))
        if height % 4 == 0:
            txs.append(chain.tx("bob", PlaceOrder(1, False, 600_000 + height, 2)))
        chain.block(txs)
    return [block for block, _output in chain.blocks]


def seal_all(blocks: Sequence[Block], sizes: Sequence[int]) -> list[bytes]:
    """Encoded batches 0, 1, ... of ``blocks`` taken ``sizes[i % len(sizes)]`` at a time."""
    out: list[bytes] = []
    parent = ZERO_HASH
    start = 0
    for index in itertools.count():
        if start >= len(blocks):
            break
        size = sizes[index % len(sizes)]
        batch = seal_batch(CHAIN_ID, index, parent, blocks[start : start + size])
        out.append(encode_batch(batch))
        parent = batch_hash(batch)
        start += size
    return out


def w3_of(url: str) -> Web3:
    return Web3(Web3.HTTPProvider(url))


def send_raw(url: str, key: bytes, to: bytes, data: bytes) -> bytes:
    """Send ``data`` to ``to`` bypassing the adapter (its checks); the mined tx hash."""
    w3 = w3_of(url)
    sender = Account.from_key(key).address
    tx = {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "to": Web3.to_checksum_address(to),
        "value": 0,
        "data": data,
        "gas": w3.eth.estimate_gas(
            {"from": sender, "to": Web3.to_checksum_address(to), "data": data}
        ),
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 10 * 10**9,
    }
    signed = Account.sign_transaction(tx, key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 1
    return bytes(tx_hash)


def nonce_of(url: str, address: bytes) -> int:
    return w3_of(url).eth.get_transaction_count(Web3.to_checksum_address(address))


def rpc(url: str, method: str, *params: object) -> object:
    response = w3_of(url).provider.make_request(method, list(params))  # type: ignore[arg-type]
    assert "error" not in response, response
    return response["result"]


def poster(url: str, inbox: bytes, **kw: object) -> EthereumDa:
    return EthereumDa(url, inbox, POSTER_KEY, **kw)  # type: ignore[arg-type]


def reader(url: str, inbox: bytes, **kw: object) -> EthereumDa:
    return EthereumDa(url, inbox, None, poster_address=POSTER, **kw)  # type: ignore[arg-type]


# -- round trip ---------------------------------------------------------------------------------


def test_post_get_list_round_trip(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    da: DaClient = poster(anvil.url, inbox)
    batches = seal_all(chain_blocks[:12], sizes=(3, 1, 4, 4))
    refs = [da.post(index, data) for index, data in enumerate(batches)]

    w3 = w3_of(anvil.url)
    for index, (ref, data) in enumerate(zip(refs, batches, strict=True)):
        batch = decode_batch(data)
        assert ref.layer == "ethereum"
        assert ref.batch_index == index
        assert ref.batch_hash == batch_hash(batch)
        assert (ref.first_height, ref.last_height) == (
            batch.header.first_height,
            batch.header.last_height,
        )
        tx = w3.eth.get_transaction(HexBytes(ref.locator))  # the locator is the transaction's hash
        assert bytes(tx["input"]) == data
        assert tx["to"] == Web3.to_checksum_address(inbox)
        assert da.get(ref) == data

    assert [(r.first_height, r.last_height) for r in refs] == [(1, 3), (4, 4), (5, 8), (9, 12)]
    assert da.list() == refs
    # A reader, given only the node, the inbox and the poster's address, sees the same.
    assert reader(anvil.url, inbox).list() == refs
    assert da.list(4, 5) == refs[1:3]
    assert da.list(9) == refs[3:]
    assert da.list(13) == []
    assert da.list(1, 1) == refs[:1]

    proof = da.prove(refs[2])
    assert proof is not None and len(proof) == PROOF_BYTES
    receipt = w3.eth.get_transaction_receipt(HexBytes(refs[2].locator))
    assert proof == bytes(receipt["blockHash"]) + receipt["transactionIndex"].to_bytes(8, "big")


def test_get_refuses_a_reference_that_does_not_check_out(
    anvil: Anvil, chain_blocks: list[Block]
) -> None:
    inbox = new_inbox()
    da = poster(anvil.url, inbox)
    first, second = seal_all(chain_blocks[:2], sizes=(1,))
    ref0 = da.post(0, first)
    ref1 = da.post(1, second)
    for bad in (
        DaReference("ethereum", 0, bytes(32), 1, 1, ref0.locator),  # another batch hash
        DaReference("ethereum", 0, ref0.batch_hash, 1, 1, ref1.locator),  # another transaction
        DaReference("ethereum", 0, ref0.batch_hash, 1, 1, "0x" + "ab" * 32),  # no transaction
        DaReference("ethereum", 0, ref0.batch_hash, 1, 1, "12"),  # not a hash
        DaReference("file", 0, ref0.batch_hash, 1, 1, ref0.locator),  # another layer
    ):
        with pytest.raises(DaError) as caught:
            da.get(bad)
        assert not isinstance(caught.value, DaUnavailable)
    # The right batch, posted to the inbox by someone else, is not a posting.
    foreign = send_raw(anvil.url, OTHER_KEY, inbox, first)
    with pytest.raises(DaError, match="not sent by the poster"):
        da.get(DaReference("ethereum", 0, ref0.batch_hash, 1, 1, "0x" + foreign.hex()))
    # Nor is the right batch sent by the poster elsewhere.
    elsewhere = send_raw(anvil.url, POSTER_KEY, new_inbox(), first)
    with pytest.raises(DaError, match="not sent to the inbox"):
        da.get(DaReference("ethereum", 0, ref0.batch_hash, 1, 1, "0x" + elsewhere.hex()))
    assert da.prove(DaReference("ethereum", 0, ref0.batch_hash, 1, 1, "0x" + "ab" * 32)) is None


# -- idempotence and conflicts ------------------------------------------------------------------


def test_repost_is_idempotent_and_sends_nothing(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    batches = seal_all(chain_blocks[:6], sizes=(2,))
    da = poster(anvil.url, inbox)
    refs = [da.post(index, data) for index, data in enumerate(batches)]

    nonce = nonce_of(anvil.url, POSTER)
    head = w3_of(anvil.url).eth.block_number
    assert da.post(1, batches[1]) == refs[1]
    # A restarted poster (an empty map: it scans the chain) adopts what is there.
    restarted = poster(anvil.url, inbox)
    assert [restarted.post(index, data) for index, data in enumerate(batches)] == refs
    assert nonce_of(anvil.url, POSTER) == nonce  # no second transaction
    assert w3_of(anvil.url).eth.block_number == head
    assert restarted.list() == refs
    assert restarted.stats.duplicates == 0


def test_conflicting_post_is_refused(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    (ours,) = seal_all(chain_blocks[:3], sizes=(3,))
    (theirs,) = seal_all(chain_blocks[:2], sizes=(2,))  # another batch 0
    da = poster(anvil.url, inbox)
    ref = da.post(0, ours)
    nonce = nonce_of(anvil.url, POSTER)
    with pytest.raises(DaError, match="already posted with another batch"):
        da.post(0, theirs)
    with pytest.raises(DaError, match="already posted with another batch"):
        poster(anvil.url, inbox).post(0, theirs)
    assert nonce_of(anvil.url, POSTER) == nonce
    assert da.list() == [ref]
    # A batch whose header says another index is a caller's mistake, not the layer's.
    with pytest.raises(ValueError, match="index 0, not 1"):
        da.post(1, ours)
    with pytest.raises(ValueError, match="not a batch"):
        da.post(0, b"STB1 not a batch")


def test_read_only_and_oversized(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    (data,) = seal_all(chain_blocks[:1], sizes=(1,))
    with pytest.raises(DaError, match="read-only"):
        reader(anvil.url, inbox).post(0, data)
    with pytest.raises(DaError, match="seal smaller batches"):
        poster(anvil.url, inbox, max_data_bytes=len(data) - 1).post(0, data)
    with pytest.raises(ValueError, match="poster_address"):
        EthereumDa(anvil.url, inbox, None)
    with pytest.raises(ValueError, match="not the address of poster_key"):
        EthereumDa(anvil.url, inbox, POSTER_KEY, poster_address=OTHER)
    assert reader(anvil.url, inbox).list() == []


# -- what else reaches the inbox ----------------------------------------------------------------


def test_garbage_and_strangers_are_skipped_and_counted(
    anvil: Anvil, chain_blocks: list[Block]
) -> None:
    inbox = new_inbox()
    batches = seal_all(chain_blocks[:8], sizes=(2,))
    (other_zero,) = seal_all(chain_blocks[:1], sizes=(1,))
    da = poster(anvil.url, inbox)

    send_raw(anvil.url, POSTER_KEY, inbox, b"")  # empty calldata
    send_raw(anvil.url, POSTER_KEY, inbox, b"\x00\x01 random bytes \xff" * 20)
    send_raw(anvil.url, POSTER_KEY, inbox, b"STB1" + b"\x28\xb5\x2f\xfd" + b"junk")
    send_raw(anvil.url, POSTER_KEY, inbox, batches[0][:-3])  # a truncated batch
    send_raw(anvil.url, OTHER_KEY, inbox, other_zero)  # a valid batch 0 from a stranger
    refs = [da.post(0, batches[0]), da.post(1, batches[1])]
    send_raw(anvil.url, POSTER_KEY, inbox, batches[1])  # a second copy of batch 1
    send_raw(anvil.url, POSTER_KEY, inbox, other_zero)  # another batch at index 0
    refs += [da.post(2, batches[2]), da.post(3, batches[3])]

    fresh = reader(anvil.url, inbox)
    for client in (da, fresh):
        assert client.list() == refs
        stats = client.stats
        assert (stats.batches, stats.invalid, stats.foreign) == (4, 4, 1)
        assert (stats.duplicates, stats.conflicts) == (1, 1)
        assert [client.get(ref) for ref in refs] == batches[:4]


def test_batches_out_of_chain_order_are_listed_by_index(
    anvil: Anvil, chain_blocks: list[Block]
) -> None:
    inbox = new_inbox()
    batches = seal_all(chain_blocks[:4], sizes=(1,))
    da = poster(anvil.url, inbox)
    posted = {index: da.post(index, batches[index]) for index in (2, 0, 3, 1)}
    assert reader(anvil.url, inbox).list() == [posted[index] for index in range(4)]


# -- confirmations and reorganisations ----------------------------------------------------------


def test_confirmations(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    (data,) = seal_all(chain_blocks[:2], sizes=(2,))
    da = poster(anvil.url, inbox, confirmations=3)
    ref = da.post(0, data)
    assert da.list() == []  # mined, not yet 3 blocks deep
    nonce = nonce_of(anvil.url, POSTER)
    assert da.post(0, data) == ref  # still idempotent: post looks in the unconfirmed blocks
    assert nonce_of(anvil.url, POSTER) == nonce
    rpc(anvil.url, "anvil_mine", 2)
    assert da.list() == []
    rpc(anvil.url, "anvil_mine", 1)
    assert da.list() == [ref]


def test_reorganisation_is_followed(tmp_path: Path, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    (ours,) = seal_all(chain_blocks[:2], sizes=(2,))
    (theirs,) = seal_all(chain_blocks[:1], sizes=(1,))
    with run_anvil(tmp_path / "anvil.log") as node:
        rpc(node.url, "anvil_mine", 5)
        da = poster(node.url, inbox, from_block=3)
        snapshot = rpc(node.url, "evm_snapshot")
        first = da.post(0, ours)
        assert da.list() == [first]
        assert rpc(node.url, "evm_revert", snapshot) is True
        rpc(node.url, "anvil_mine", 3)  # a longer chain without the posting
        assert da.list() == []
        second = da.post(0, theirs)  # index 0 is free again on this chain
        assert second.batch_hash != first.batch_hash
        assert da.list() == [second]
        assert da.stats.scanned_to_block == w3_of(node.url).eth.block_number


# -- the node goes away -------------------------------------------------------------------------


def test_node_down_is_unavailable(tmp_path: Path, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    first, second = seal_all(chain_blocks[:2], sizes=(1,))
    with run_anvil(tmp_path / "anvil.log") as node:
        da = poster(node.url, inbox, rpc_timeout_s=2.0)
        ref = da.post(0, first)
        node.stop()
        for call in (
            lambda: da.post(1, second),
            lambda: da.post(0, first),
            lambda: da.get(ref),
            lambda: da.list(),
            lambda: da.prove(ref),
            lambda: reader(node.url, inbox).list(),
        ):
            with pytest.raises(DaUnavailable):
                call()


def test_nothing_listening_is_unavailable(chain_blocks: list[Block]) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (data,) = seal_all(chain_blocks[:1], sizes=(1,))
    da = poster(f"http://127.0.0.1:{port}", new_inbox(), rpc_timeout_s=2.0)
    with pytest.raises(DaUnavailable):
        da.post(0, data)
    with pytest.raises(DaUnavailable):
        da.list()


# -- a long run ---------------------------------------------------------------------------------


def test_over_a_hundred_blocks_posted_and_read_back_in_order(
    anvil: Anvil, chain_blocks: list[Block]
) -> None:
    inbox = new_inbox()
    batches = seal_all(chain_blocks, sizes=(1, 2, 3, 5, 8, 1, 1))
    assert len(chain_blocks) >= 100
    start_block = w3_of(anvil.url).eth.block_number + 1
    da = poster(anvil.url, inbox, from_block=start_block)
    refs: list[DaReference] = []
    for index, data in enumerate(batches):
        refs.append(da.post(index, data))
        if index % 10 == 9:  # empty Ethereum blocks between postings: scans cross batch requests
            rpc(anvil.url, "anvil_mine", SCAN_BATCH_BLOCKS + 7)

    fresh = reader(anvil.url, inbox, from_block=start_block)
    listed = fresh.list()
    assert listed == refs
    assert [ref.batch_index for ref in listed] == list(range(len(batches)))
    assert listed[0].first_height == 1 and listed[-1].last_height == len(chain_blocks)
    for before, after in itertools.pairwise(listed):
        assert after.first_height == before.last_height + 1
    read = [decode_batch(fresh.get(ref)) for ref in listed]
    derived = list(derive_blocks(chain_blocks[0].header.parent_hash, read))
    assert derived == chain_blocks
    assert fresh.stats.scanned_to_block == w3_of(anvil.url).eth.block_number
    assert (fresh.stats.invalid, fresh.stats.foreign, fresh.stats.duplicates) == (0, 0, 0)


# -- EIP-4844 blobs -----------------------------------------------------------------------------
#
# The module's Anvil runs its default hardfork (Osaka), which takes type-3 transactions in the
# network form with cell proofs. Loading the KZG trusted setup (once per process) and Anvil's
# first blob transaction take a few seconds; each further blob about 0.3 s (its cell proofs).


def blob_poster(url: str, inbox: bytes, **kw: object) -> EthereumDa:
    return EthereumDa(url, inbox, POSTER_KEY, blobs=True, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def big_blocks() -> list[Block]:
    """80 blocks of 30 orders each: sealed whole, a batch of over one blob (126,976 bytes)."""
    chain = make_chain()
    for height in range(1, 81):
        chain.block(
            [
                chain.tx(who, PlaceOrder(1, who == "alice", 400_000 + 50 * height + i, 1))
                for i in range(15)
                for who in ("alice", "bob")
            ]
        )
    return [block for block, _output in chain.blocks]


def test_blob_payload_encoding_is_strict() -> None:
    for length in (0, 1, 31, BLOB_PAYLOAD_BYTES - 4, BLOB_PAYLOAD_BYTES - 3, 300_000):
        data = bytes((7 * i + 3) % 256 for i in range(length))
        blobs = encode_blobs(data)
        assert len(blobs) == blobs_needed(length) == max(1, -(-(length + 4) // BLOB_PAYLOAD_BYTES))
        assert all(len(blob) == BYTES_PER_BLOB and blob[0::32] == bytes(4096) for blob in blobs)
        assert decode_blobs(blobs) == data
    assert blob_capacity(MAX_BLOBS_PER_TX) == 761_852
    (one,) = encode_blobs(b"batch")
    with pytest.raises(ValueError, match="first byte"):
        decode_blobs([b"\x01" + one[1:]])  # a field element at or over the modulus
    with pytest.raises(ValueError, match="padding"):
        decode_blobs([one[:-1] + b"\x01"])
    with pytest.raises(ValueError, match="past the blobs' end"):
        decode_blobs([one[:1] + b"\xff" + one[2:]])
    with pytest.raises(ValueError, match="not the fewest"):
        decode_blobs([one, bytes(BYTES_PER_BLOB)])
    with pytest.raises(ValueError, match="not 131072"):
        decode_blobs([one[:-32]])
    with pytest.raises(ValueError, match="no blobs"):
        decode_blobs([])


def test_blob_post_list_get_round_trip(anvil: Anvil, chain_blocks: list[Block]) -> None:
    inbox = new_inbox()
    da = blob_poster(anvil.url, inbox)
    assert da.posting_mode is None  # not probed: no I/O before the first call
    assert da.max_data_bytes == DEFAULT_MAX_DATA_BYTES
    batches = seal_all(chain_blocks[:12], sizes=(3, 1, 4, 4))
    refs = [da.post(index, data) for index, data in enumerate(batches)]
    mode: str | None = da.posting_mode  # (a property: no narrowing from the check above)
    assert (mode, da.blob_fallback_reason) == ("blobs", None)
    assert da.max_data_bytes == blob_capacity(MAX_BLOBS_PER_TX)

    w3 = w3_of(anvil.url)
    for ref, data in zip(refs, batches, strict=True):
        tx = w3.eth.get_transaction(HexBytes(ref.locator))
        assert tx["type"] == 3 and len(tx["blobVersionedHashes"]) == 1
        marker = bytes(tx["input"])
        assert len(marker) == 64 and marker.startswith(b"STBB")
        assert marker[12:44] == ref.batch_hash
        assert int.from_bytes(marker[60:], "big") == len(data)
        receipt = dict(w3.eth.get_transaction_receipt(HexBytes(ref.locator)))
        assert receipt["blobGasUsed"] == 131_072
    assert [(r.first_height, r.last_height) for r in refs] == [(1, 3), (4, 4), (5, 8), (9, 12)]
    assert [ref.batch_index for ref in refs] == [0, 1, 2, 3]
    assert da.list() == refs
    assert da.list(4, 5) == refs[1:3]
    fresh = reader(anvil.url, inbox)  # a plain reader: no option needed to read blobs
    assert fresh.list() == refs
    assert [fresh.get(ref) for ref in refs] == batches  # byte-identical
    assert (fresh.stats.batches, fresh.stats.blob_batches, fresh.stats.invalid) == (4, 4, 0)
    assert da.prove(refs[0]) is not None

    # Idempotent: the same instance, and a restarted poster, send nothing.
    nonce = nonce_of(anvil.url, POSTER)
    assert da.post(2, batches[2]) == refs[2]
    restarted = blob_poster(anvil.url, inbox)
    assert [restarted.post(index, data) for index, data in enumerate(batches)] == refs
    (other_zero,) = seal_all(chain_blocks[:2], sizes=(2,))
    with pytest.raises(DaError, match="already posted with another batch"):
        restarted.post(0, other_zero)
    assert nonce_of(anvil.url, POSTER) == nonce


def test_a_batch_over_several_blobs(anvil: Anvil, big_blocks: list[Block]) -> None:
    inbox = new_inbox()
    batches = seal_all(big_blocks, sizes=(1, 79))
    assert len(batches[1]) > BLOB_PAYLOAD_BYTES > DEFAULT_MAX_DATA_BYTES  # too big for calldata
    with pytest.raises(DaError, match="seal smaller batches"):
        poster(anvil.url, inbox).post(1, batches[1])
    with pytest.raises(DaError, match="seal smaller batches"):
        blob_poster(anvil.url, inbox, max_blobs=1).post(1, batches[1])

    da = blob_poster(anvil.url, inbox)
    refs = [da.post(index, data) for index, data in enumerate(batches)]
    tx = w3_of(anvil.url).eth.get_transaction(HexBytes(refs[1].locator))
    assert len(tx["blobVersionedHashes"]) == blobs_needed(len(batches[1])) == 2
    fresh = reader(anvil.url, inbox)
    assert fresh.list() == refs
    read = [fresh.get(ref) for ref in refs]
    assert read == batches
    derived = derive_blocks(big_blocks[0].header.parent_hash, [decode_batch(b) for b in read])
    assert list(derived) == big_blocks


def test_a_blob_that_does_not_check_out_is_refused(
    anvil: Anvil, chain_blocks: list[Block], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = new_inbox()
    first, second = seal_all(chain_blocks[:5], sizes=(2, 3))
    da = blob_poster(anvil.url, inbox)
    ref = da.post(0, first)
    real_blobs = da.fetch_blobs(bytes.fromhex(ref.locator[2:]))
    assert decode_blobs(real_blobs) == first
    (other_blob,) = encode_blobs(second)
    flipped = bytearray(real_blobs[0])
    flipped[1000] ^= 0x01
    for answer, reason in (
        ([bytes(flipped)], "does not match its versioned hash"),  # one bit flipped
        ([other_blob], "does not match its versioned hash"),  # a valid blob, another one
        ([b"\xff" * BYTES_PER_BLOB], "not a valid blob"),  # not field elements
        ([real_blobs[0], real_blobs[0]], "2 blobs, not 1"),
        ([real_blobs[0][:-1]], "not a valid blob"),
    ):
        monkeypatch.setattr(EthereumDa, "fetch_blobs", lambda self, tx_hash, a=answer: a)
        with pytest.raises(DaError, match=reason) as caught:
            reader(anvil.url, inbox).get(ref)
        assert not isinstance(caught.value, DaUnavailable)
    monkeypatch.undo()
    assert reader(anvil.url, inbox).get(ref) == first

    # Postings whose blobs match their hashes but not their marker: listed (the marker is the
    # poster's word), refused by get.
    lying = reader(anvil.url, inbox)
    # another batch in the blobs (the marker's length is the blobs' one)
    ref1 = lying_post(da, 1, second, blobs=encode_blobs(first), length=len(first))
    with pytest.raises(DaError, match="holds another batch"):
        lying.get(ref1)
    other_inbox = new_inbox()
    da2 = blob_poster(anvil.url, other_inbox)
    ref_len = lying_post(da2, 0, first, length=len(first) + 1)  # a length that is not the batch's
    with pytest.raises(DaError, match="the marker says"):
        reader(anvil.url, other_inbox).get(ref_len)
    # A marker without blobs, and a malformed one, are not postings.
    send_raw(anvil.url, POSTER_KEY, inbox, encode_marker(2, bytes(32), 6, 6, 100))
    send_raw(anvil.url, POSTER_KEY, inbox, b"STBB" + bytes(10))
    assert lying.list() == [ref, ref1]
    assert (lying.stats.invalid, lying.stats.blob_batches) == (2, 2)


def lying_post(
    da: EthereumDa, index: int, data: bytes, *, blobs: list[bytes] | None = None, length: int = -1
) -> DaReference:
    """A blob posting whose marker describes ``data`` but whose blobs (or length) differ:
    sent through the adapter's own signing, bypassing its checks."""
    batch = decode_batch(data)
    marker = encode_marker(
        index,
        batch_hash(batch),
        batch.header.first_height,
        batch.header.last_height,
        len(data) if length < 0 else length,
    )
    tx_hash = da._send_blobs(marker, blobs if blobs is not None else encode_blobs(data))
    return DaReference(
        "ethereum",
        index,
        batch_hash(batch),
        batch.header.first_height,
        batch.header.last_height,
        "0x" + tx_hash.hex(),
    )


def test_calldata_and_blob_postings_mix_in_index_order(
    anvil: Anvil, chain_blocks: list[Block]
) -> None:
    inbox = new_inbox()
    batches = seal_all(chain_blocks[:10], sizes=(2, 3))
    calldata, blobs = poster(anvil.url, inbox), blob_poster(anvil.url, inbox)
    posted = {
        3: blobs.post(3, batches[3]),
        0: calldata.post(0, batches[0]),
        1: blobs.post(1, batches[1]),
        2: calldata.post(2, batches[2]),
    }
    nonce = nonce_of(anvil.url, POSTER)
    assert blobs.post(0, batches[0]) == posted[0]  # idempotent across the two forms
    assert calldata.post(1, batches[1]) == posted[1]
    assert nonce_of(anvil.url, POSTER) == nonce
    fresh = reader(anvil.url, inbox)
    listed = fresh.list()
    assert listed == [posted[index] for index in range(4)]
    types = [w3_of(anvil.url).eth.get_transaction(HexBytes(r.locator))["type"] for r in listed]
    assert types == [2, 3, 2, 3]
    read = [fresh.get(ref) for ref in listed]
    assert read == batches
    derived = derive_blocks(chain_blocks[0].header.parent_hash, [decode_batch(b) for b in read])
    assert list(derived) == chain_blocks[:10]
    assert (fresh.stats.batches, fresh.stats.blob_batches) == (4, 2)


def test_blobs_fall_back_to_calldata_on_a_node_without_them(
    tmp_path: Path, chain_blocks: list[Block], caplog: pytest.LogCaptureFixture
) -> None:
    inbox = new_inbox()
    (data,) = seal_all(chain_blocks[:3], sizes=(3,))
    with run_anvil(tmp_path / "anvil.log", "--hardfork", "shanghai") as node:
        da = blob_poster(node.url, inbox)
        with caplog.at_level("WARNING", logger="strata.da"):
            ref = da.post(0, data)
        assert da.posting_mode == "calldata"
        assert da.blob_fallback_reason and "before Cancun" in da.blob_fallback_reason
        assert any("posting calldata" in record.getMessage() for record in caplog.records)
        assert da.max_data_bytes == DEFAULT_MAX_DATA_BYTES
        tx = w3_of(node.url).eth.get_transaction(HexBytes(ref.locator))
        assert tx["type"] == 2 and bytes(tx["input"]) == data
        assert reader(node.url, inbox).list() == [ref]


def test_open_da_spells_blob_posting(tmp_path: Path) -> None:
    from strata.adapters.da_open import open_da

    key_file = tmp_path / "poster.key"
    key_file.write_text(POSTER_KEY.hex())
    url, inbox = "http://127.0.0.1:1", "0x" + "ab" * 20
    for spec, poster_, blobs in (
        (f"ethereum+blobs:{url},{inbox},{key_file}", True, True),
        (f"ethereum:{url},{inbox},{key_file}", True, False),
        (f"ethereum+blobs:{url},{inbox},0x{POSTER.hex()}", False, True),
    ):
        da = open_da(spec, poster=poster_)
        assert isinstance(da, EthereumDa)
        assert (da.blobs, da.poster_address) == (blobs, POSTER)
    with pytest.raises(ValueError, match="unknown DA"):
        open_da(f"ethereum+calldata:{url},{inbox},0x{POSTER.hex()}")
    with pytest.raises(ValueError, match=r"ethereum\+blobs:URL"):
        open_da(f"ethereum+blobs:{url},{inbox}")


def test_devnet_posts_blobs_and_strata_verify_rederives_from_them(
    anvil: Anvil, tmp_path: Path
) -> None:
    """The node's ``--da ethereum+blobs:...`` posts its batches as blobs; ``strata verify
    --da ethereum:URL,INBOX,POSTER`` reads them back and checks every root."""
    import json
    import subprocess
    import sys

    key_file = tmp_path / "poster.key"
    key_file.write_text(POSTER_KEY.hex())
    inbox = new_inbox()
    start_block = w3_of(anvil.url).eth.block_number + 1
    data_dir = tmp_path / "chain"
    strata = [sys.executable, "-m", "strata.cli.main"]
    devnet = subprocess.run(
        [
            *strata,
            "devnet",
            "--data-dir",
            str(data_dir),
            "--rpc-port",
            "0",
            "--demo",
            "--block-time-ms",
            "20",
            "--exit-after-blocks",
            "30",
            "--da-batch-blocks",
            "10",
            "--da",
            f"ethereum+blobs:{anvil.url},0x{inbox.hex()},{key_file}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert devnet.returncode == 0, devnet.stderr[-3000:]
    assert "posting batches as EIP-4844 blobs" in devnet.stderr + devnet.stdout
    stats = reader(anvil.url, inbox, from_block=start_block)
    assert len(stats.list()) >= 3
    assert stats.stats.blob_batches == stats.stats.batches
    done = subprocess.run(
        [
            *strata,
            "verify",
            "--da",
            f"ethereum:{anvil.url},0x{inbox.hex()},0x{POSTER.hex()}",
            "--genesis",
            str(data_dir / "genesis.json"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads(done.stdout)
    assert done.returncode == 0, (summary, done.stderr[-2000:])
    assert summary["mismatches"] == 0
    assert summary["blocks_checked"] >= 30
    assert summary["batches"] == stats.stats.batches

"""The state commitment pipelined apart from execution: state roots computed in another process.

A block's header commits to its state root, which a sparse Merkle tree update computes from the
entries the block changed (``stf/commitment.py``). That update is a large, separate piece of
Python work: at 200,000 keys, 4,000 changes cost ~150 ms, three quarters of it walking and
hashing the tree (``docs/node.md``, "Execution pipelined apart from the commitment"). Nothing of
the next block's execution reads the root (``stf/transition.py``: :func:`execute_block` and
:func:`seal_block`), so block ``N + 1`` can execute while ``N``'s root is computed elsewhere.

:class:`CommitmentProcess` is that elsewhere: a worker process (``spawn``) holding a replica of
the node's tree, its live table loaded from the node's at start. Per block the node sends the
changes (:meth:`IncrementalCommitment.take_changes`, key -> value or ``None``); the worker applies
them to its tree and answers the new root with the update's new nodes and stale hashes, packed
(``state/packed.py``: :func:`pack_update`, no Python object per node crosses). The node moves its
own tree to that root with them (:meth:`SparseMerkleTree.adopt_packed`, array operations), so
its tree, checkpoints and proofs stay exactly as if it had applied the changes itself, and seals
the block. Answers come back in the order the changes went.

The worker computes with the same code the node would (``SparseMerkleTree.apply``); the roots
are the serial chain's (``tests/differential/test_commitment_process.py``). A worker that dies
raises :class:`CommitmentWorkerDied` when its answer is read: the block waiting for it is not
sealed, so nothing of it is committed.

What it costs: a second copy of the tree's live table (~110 bytes a node) in the worker, and the
hand-over of each block's changes and nodes (measured in ``docs/node.md``).
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

import msgspec

from strata.state.packed import RECORD_BYTES, PackedNodes, pack_update
from strata.state.smt import MemoryNodeSource, SparseMerkleTree

PIPE_BYTES = 1 << 20
"""Each way's pipe buffer (Linux's default ceiling for a user, ``/proc/sys/fs/pipe-max-size``)."""
_CACHE_NODES = 1 << 16
"""The worker tree's cache of hot nodes (as the node's, ``adapters/chain_store.py``)."""
_RELOAD = b"R"
"""A message that starts the worker over from a tree sent next (its root, then its records); a
msgpack list of changes never starts with this byte."""
_FAILED = b"E"
"""The first byte of a worker's last message when an update raised (then its traceback)."""
_ENCODE = msgspec.msgpack.Encoder().encode
_CHANGES = msgspec.msgpack.Decoder(list[tuple[bytes, bytes | None]])
_ANSWER = msgspec.msgpack.Decoder(tuple[bytes, bytes, bytes])


class CommitmentWorkerDied(RuntimeError):
    """The commitment process died or failed; the block waiting for its root is not sealed."""


def _widen(conn: Connection) -> None:
    """Let a pipe hold a block's message without its writer waiting for the reader: Linux's
    pipes hold 64 KB unless asked. (Over ``multiprocessing``'s default socket pair, a block's
    changes, a few hundred KB under bulk load, kept the node waiting 12-20 ms a block for the
    worker to read them: measured.)"""
    with contextlib.suppress(AttributeError, OSError):  # elsewhere than Linux, or over its limit
        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _load(root: bytes, rows: bytes) -> SparseMerkleTree:
    """A tree at ``root`` over the live table's records ``rows`` (``PackedNodes.rows``)."""
    live = PackedNodes(len(rows) // RECORD_BYTES)
    live.load_rows(rows)
    return SparseMerkleTree(MemoryNodeSource(), root, _CACHE_NODES, live=live)


def _serve(
    conn: Connection,
    answers: Connection,
    initializer: Callable[[int], object] | None,
    initarg: int,
) -> None:
    """The worker: load the tree, then answer each block's changes until told to stop."""
    if initializer is not None:
        initializer(initarg)
    try:
        root = conn.recv_bytes()
        rows = conn.recv_bytes()
    except (EOFError, OSError):
        return
    tree = _load(root, rows)
    del rows
    while True:
        try:
            message = conn.recv_bytes()
            if message == _RELOAD:
                tree = _load(conn.recv_bytes(), conn.recv_bytes())
                continue
        except (EOFError, OSError):
            return
        if not message:  # stop
            return
        try:
            update = tree.apply(dict(_CHANGES.decode(message)))
            tree.take_released()  # the worker keeps no history: the node's store does
            tree.mark_persisted()
            nodes, stale = pack_update(update.new_nodes, update.stale_nodes)
            answer = _ENCODE((update.root, nodes, stale))
        except Exception:  # a bug, never user input: the node's next read says what
            with contextlib.suppress(OSError):
                answers.send_bytes(_FAILED + traceback.format_exc().encode())
            return
        try:
            answers.send_bytes(answer)
        except OSError:  # the node has gone
            return


class CommitmentProcess:
    """A worker process computing the roots of ``tree``'s next updates (see the module
    docstring). ``tree`` must have a live table holding its whole current tree (a node's
    store's tree does). ``initializer(initarg)`` runs first in the worker (the node's: name it,
    end with the node)."""

    def __init__(
        self,
        tree: SparseMerkleTree,
        initializer: Callable[[int], object] | None = None,
        initarg: int = 0,
    ) -> None:
        live = tree.live
        if live is None:
            raise ValueError("the commitment process needs a tree with a live table")
        context = multiprocessing.get_context("spawn")
        child, self._conn = context.Pipe(duplex=False)  # to the worker
        self._answers, answers = context.Pipe(duplex=False)  # from it
        _widen(self._conn)
        _widen(answers)
        self._process: Any = context.Process(
            target=_serve,
            args=(child, answers, initializer, initarg),
            name="strata-commit",
            daemon=True,
        )
        self._process.start()
        child.close()
        answers.close()
        self.in_flight = 0
        """Changes sent whose answer has not been read."""
        self.broken: str | None = None
        self._send(tree.root)
        self._send(live.rows())

    def reload(self, tree: SparseMerkleTree) -> None:
        """Start the worker over from ``tree`` (as if it had been started with it), with no
        changes in flight. Tests run one worker through many chains this way."""
        live = tree.live
        if live is None or self.in_flight:
            raise ValueError("reload needs a tree with a live table and nothing in flight")
        self._send(_RELOAD)
        self._send(tree.root)
        self._send(live.rows())

    @property
    def pid(self) -> int:
        """The worker's process id (tests kill it)."""
        pid: int = self._process.pid
        return pid

    def fileno(self) -> int:
        """The connection's descriptor: readable when an answer has come (an event loop waits
        on it)."""
        return self._answers.fileno()

    def _send(self, data: bytes) -> None:
        if self.broken is not None:
            raise CommitmentWorkerDied(self.broken)
        try:
            self._conn.send_bytes(data)
        except (OSError, ValueError) as error:
            self._died(error)

    def _died(self, error: BaseException) -> NoReturn:
        self.broken = f"the commitment process (pid {self.pid}) died: {type(error).__name__}"
        raise CommitmentWorkerDied(self.broken) from error

    def submit(self, changes: dict[bytes, bytes | None]) -> None:
        """Send one block's changes (the worker applies them after those sent before)."""
        self._send(_ENCODE(list(changes.items())))
        self.in_flight += 1

    def ready(self) -> bool:
        """Whether the oldest answer can be read without waiting."""
        return self.in_flight > 0 and self._answers.poll()

    def result(self) -> tuple[bytes, bytes, bytes]:
        """Wait for the oldest answer: the root, the update's packed new nodes and its packed
        stale hashes (for :meth:`SparseMerkleTree.adopt_packed`).

        Raises
        ------
        CommitmentWorkerDied
            If the worker died or failed (it then stays broken).
        """
        if self.broken is not None:
            raise CommitmentWorkerDied(self.broken)
        if self.in_flight == 0:
            raise ValueError("no changes in flight")
        try:
            data = self._answers.recv_bytes()
        except (EOFError, OSError) as error:
            self._died(error)
        if data.startswith(_FAILED):
            self.broken = f"the commitment process failed: {data[1:].decode()}"
            raise CommitmentWorkerDied(self.broken)
        self.in_flight -= 1
        return _ANSWER.decode(data)

    def close(self) -> None:
        """Stop the worker (after the update it is computing, if any)."""
        with contextlib.suppress(OSError, ValueError):
            self._conn.send_bytes(b"")
        self._conn.close()
        self._answers.close()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

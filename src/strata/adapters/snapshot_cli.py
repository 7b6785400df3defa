"""``strata snapshot``: export the state at a height to a file, or create a node's store from one.

::

    strata snapshot export --data-dir DIR --height H FILE
    strata snapshot import --data-dir DIR FILE

The chain database lives in ``DIR/chain``. Export reads a stopped node's store (it writes nothing
to it) and writes ``FILE`` atomically (a temporary file renamed at the end); ``--height``
defaults to the tip and must be within the retained window. Import refuses an existing database,
checks the file's checksum and that its entries hash to the header's state root, and only then
writes ``DIR/chain``; the node continues from the block after the snapshot's height. The format
is in ``strata.adapters.chain_store``; operator notes in ``docs/storage.md``.

Exit status: 0 on success, 2 on a usage error or a refused store or file (the message on stderr
says why). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from strata.adapters.chain_store import ChainStore, StoreError
from strata.stf.block import compute_header_hash

USAGE = """usage: strata snapshot export --data-dir DIR [--height H] FILE
       strata snapshot import --data-dir DIR FILE"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="strata snapshot", usage=USAGE, add_help=False)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    export = commands.add_parser("export", usage=USAGE, add_help=False)
    export.add_argument("--data-dir", type=Path, required=True)
    export.add_argument("--height", type=int, default=None)
    export.add_argument("file", type=Path)
    imported = commands.add_parser("import", usage=USAGE, add_help=False)
    imported.add_argument("--data-dir", type=Path, required=True)
    imported.add_argument("file", type=Path)
    return parser


def _progress(verb: str) -> Callable[[int], None]:
    shown = [0]

    def report(count: int) -> None:
        if count - shown[0] >= 100_000 or count < shown[0]:
            print(f"snapshot {verb}: {count} entries", file=sys.stderr, flush=True)
            shown[0] = count

    return report


def _export(data_dir: Path, height: int | None, file: Path) -> int:
    store = ChainStore.open(data_dir / "chain")
    try:
        if height is None:
            height = store.tip.height
        print(f"snapshot export: height {height} from {data_dir / 'chain'}", file=sys.stderr)
        temporary = file.with_name(file.name + ".partial")
        report = _progress("export")
        try:
            with open(temporary, "wb") as out:
                count = store.export_snapshot(height, out, progress=report)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, file)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        header = store.get_header(height)
    finally:
        store.close(checkpoint=False)
    print(
        f"snapshot export: wrote {file}: height {height}, {count} entries, state root "
        f"{header.state_root.hex()}, header hash {compute_header_hash(header).hex()}",
        file=sys.stderr,
    )
    return 0


def _import(data_dir: Path, file: Path) -> int:
    print(f"snapshot import: reading {file}", file=sys.stderr)
    report = _progress("import")
    with open(file, "rb") as source:
        store = ChainStore.import_snapshot(data_dir / "chain", source, progress=report)
    header = store.get_header(store.tip.height)
    store.close()
    print(
        f"snapshot import: {data_dir / 'chain'} is at height {header.height}, state root "
        f"{header.state_root.hex()}, header hash {compute_header_hash(header).hex()} "
        "(check the header hash against a trusted source, e.g. the settlement chain)",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``strata snapshot ...`` (``argv`` without the program name; a leading ``snapshot``
    is accepted). Returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["snapshot"]:
        args_list = args_list[1:]
    try:
        args = _parser().parse_args(args_list)
    except _UsageError as error:
        print(f"error: {error}\n{USAGE}", file=sys.stderr)
        return 2
    try:
        if args.command == "export":
            return _export(args.data_dir, args.height, args.file)
        return _import(args.data_dir, args.file)
    except StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

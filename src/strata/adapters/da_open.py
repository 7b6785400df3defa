"""Open a DA client from its command-line spelling (``--da``, the node's ``da`` setting)."""

from __future__ import annotations

from pathlib import Path

from strata.ports.da import DaClient


def _address(text: str) -> bytes:
    data = bytes.fromhex(text.removeprefix("0x"))
    if len(data) != 20:
        raise ValueError(f"{text!r} is not a 20-byte address")
    return data


def open_da(spec: str, default_dir: Path | None = None, *, poster: bool = False) -> DaClient:
    """``file`` (``default_dir``), ``file:DIR``, or ``ethereum:URL,INBOX_ADDRESS,X`` where ``X``
    is the poster's address (a reader) or, with ``poster=True``, a file holding the poster's
    private key in hex. ``ethereum+blobs:URL,INBOX_ADDRESS,X`` posts batches as EIP-4844 blobs
    where the node supports them (calldata otherwise); a reader reads both forms with either
    spelling.

    Raises ``ValueError`` for a spelling it does not know.
    """
    kind, _, rest = spec.partition(":")
    if kind == "file":
        from strata.adapters.da_file import FileDa

        if rest:
            return FileDa(Path(rest))
        if default_dir is None:
            raise ValueError("--da file needs a directory: file:DIR")
        return FileDa(default_dir)
    if kind in ("ethereum", "ethereum+blobs"):
        from strata.adapters.da_ethereum import EthereumDa

        blobs = kind == "ethereum+blobs"
        parts = rest.split(",")
        if len(parts) == 2 and not poster:
            raise ValueError(
                f"--da {kind}:URL,INBOX_ADDRESS needs the sequencer's poster address too "
                f"({kind}:URL,INBOX_ADDRESS,POSTER_ADDRESS): batches are not signed, so a reader "
                "accepts only the sequencer's postings to the inbox, never anyone else's"
            )
        if len(parts) != 3:
            raise ValueError(
                f"--da {kind}:URL,INBOX_ADDRESS,POSTER (address, or key file for a poster)"
            )
        url, inbox, who = parts
        if poster:
            key = bytes.fromhex(Path(who).read_text().strip().removeprefix("0x"))
            return EthereumDa(url, _address(inbox), key, blobs=blobs)
        return EthereumDa(url, _address(inbox), None, poster_address=_address(who), blobs=blobs)
    raise ValueError(
        f"unknown DA {spec!r}: use file, file:DIR, ethereum:URL,INBOX,POSTER"
        " or ethereum+blobs:URL,INBOX,POSTER"
    )

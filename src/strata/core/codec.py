"""The single canonical binary encoding for everything hashed or signed.

Everything that is hashed, signed or committed is a msgspec ``Struct`` encoded as MessagePack with
``array_like=True`` (fields by position, no names). msgspec always writes an integer in its
shortest form and a struct's fields in declaration order, so one value has one encoding. A decoder
that accepted a longer form of the same value would let two byte strings stand for one transaction;
:func:`decode_canonical` therefore re-encodes what it decoded and rejects any input that does not
come back byte for byte (``encode(decode(b)) == b``).
"""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar

import msgspec

from strata.core.errors import ErrorCode, InvalidTransaction

T = TypeVar("T")

_ENCODE: Final = msgspec.msgpack.Encoder().encode
"""The bound method, once: compiled, a ``Final`` is a C variable, where ``encoder.encode`` would
be a method lookup on every call."""


def encode(value: object) -> bytes:
    """Canonical bytes of ``value`` (a msgspec Struct, or a tuple/int/bytes of them)."""
    return _ENCODE(value)


class CanonicalDecoder(Generic[T]):
    """Decodes one type strictly and canonically.

    Raises
    ------
    InvalidTransaction
        ``MALFORMED_TRANSACTION`` when the bytes do not decode as the type (``error_code`` lets
        other kinds of record reuse this with their own code), ``NON_CANONICAL_ENCODING`` when
        they decode but are not the canonical encoding of what they decode to, and
        ``TRANSACTION_TOO_LARGE`` past ``max_size`` bytes.
    """

    def __init__(self, type_: Any, max_size: int) -> None:
        decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)
        self._decode = decoder.decode
        self._max_size = max_size

    def decode(self, data: bytes) -> T:
        value = self.decode_known_canonical(data)
        if _ENCODE(value) != data:
            raise InvalidTransaction(ErrorCode.NON_CANONICAL_ENCODING, "not the canonical bytes")
        return value

    def decode_known_canonical(self, data: bytes) -> T:
        """:meth:`decode` of bytes this decoder has already accepted (the executor's signature
        check decodes every transaction before execution): the same value, without encoding it
        again to compare. Raises as :meth:`decode` when the bytes do not decode; bytes that
        decode but were never accepted could pass here non-canonical, so only a caller that holds
        :meth:`decode`'s verdict on these very bytes may use it."""
        if len(data) > self._max_size:
            raise InvalidTransaction(
                ErrorCode.TRANSACTION_TOO_LARGE, f"{len(data)} bytes > {self._max_size}"
            )
        try:
            return self._decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a subclass
            raise InvalidTransaction(ErrorCode.MALFORMED_TRANSACTION, str(exc)) from None

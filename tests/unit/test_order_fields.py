"""Admission reads a transaction's and an order's fields at once (``msgspec.structs.astuple``)
and unpacks them by position (``transition.SignedFields``, ``PlaceFields``, ``ModifyFields``,
``CancelFields``): the positions must stay the classes' field order, and the types their fields'
types. A field added, removed or moved in ``stf/transactions.py`` fails here before it could mix
up a price and a size."""

from __future__ import annotations

import typing

import msgspec
import pytest

from strata.stf.transactions import Action, CancelOrder, ModifyOrder, PlaceOrder, SignedTransaction
from strata.stf.transition import CancelFields, ModifyFields, PlaceFields, SignedFields

PLACE_NAMES = (
    "market_id",
    "is_buy",
    "price_ticks",
    "size_lots",
    "tif",
    "reduce_only",
    "client_id",
    "expires_at_ms",
)
SIGNED_NAMES = ("account", "nonce", "action", "agent", "signature")
CANCEL_NAMES = ("market_id", "order_id", "client_id")
MODIFY_NAMES = (
    "market_id",
    "order_id",
    "client_id",
    "is_buy",
    "price_ticks",
    "size_lots",
    "tif",
    "reduce_only",
)


def _plain(annotation: object) -> object:
    """A field's type without its constraints: ``Annotated[int, ...]`` -> ``int``, and
    ``Annotated[int, ...] | None`` -> ``int | None``."""
    if annotation == Action:
        return annotation
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if args and type(None) in args:
        inner = [_plain(a) for a in args if a is not type(None)]
        assert len(inner) == 1
        return inner[0] | None  # type: ignore[operator]
    return annotation


@pytest.mark.parametrize(
    ("cls", "fields", "names"),
    [
        (PlaceOrder, PlaceFields, PLACE_NAMES),
        (ModifyOrder, ModifyFields, MODIFY_NAMES),
        (SignedTransaction, SignedFields, SIGNED_NAMES),
        (CancelOrder, CancelFields, CANCEL_NAMES),
    ],
)
def test_field_tuples_follow_the_classes(cls: type, fields: object, names: tuple[str, ...]) -> None:
    assert cls.__struct_fields__ == names  # type: ignore[attr-defined]
    hints = typing.get_type_hints(cls, include_extras=True)
    assert tuple(_plain(hints[name]) for name in names) == typing.get_args(fields)


def test_astuple_puts_each_value_where_admission_reads_it() -> None:
    place = PlaceOrder(7, True, 101, 5, 3, False, 42, 1_700_000_000_000)
    by_name = dict(zip(PLACE_NAMES, msgspec.structs.astuple(place), strict=True))
    assert by_name == {name: getattr(place, name) for name in PLACE_NAMES}
    modify = ModifyOrder(7, 9, None, False, 99, 4, 1, True)
    by_name = dict(zip(MODIFY_NAMES, msgspec.structs.astuple(modify), strict=True))
    assert by_name == {name: getattr(modify, name) for name in MODIFY_NAMES}
    cancel = CancelOrder(7, None, 12)
    by_name = dict(zip(CANCEL_NAMES, msgspec.structs.astuple(cancel), strict=True))
    assert by_name == {name: getattr(cancel, name) for name in CANCEL_NAMES}
    signed = SignedTransaction(bytes(20), 5, place, None, bytes(65))
    by_name = dict(zip(SIGNED_NAMES, msgspec.structs.astuple(signed), strict=True))
    assert by_name == {name: getattr(signed, name) for name in SIGNED_NAMES}

"""An interpreted copy of a ring-0 module, for the tests that replace one of its functions.

With ring 0 compiled (``strata/compiled.py``), a compiled module calls the functions it imports
directly, so patching its attributes changes nothing. A test that needs the rules with one step
replaced runs a fresh copy of the module's source, under another name, whose globals are looked
up on every call (the modules it imports stay as they are).
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from strata.compiled import SOURCE_ROOT


def interpreted_copy(module: ModuleType) -> ModuleType:
    """Execute ``module``'s source anew as ``<name>__interpreted`` and return it."""
    source = SOURCE_ROOT / (module.__name__.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(f"{module.__name__}__interpreted", source)
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    return copy

"""Strata: a modular execution layer for on-chain derivatives."""

from strata.compiled import install as _install_compiled

# Ring 0 runs compiled by mypyc when `make setup` built it and its sources are unchanged
# (strata/compiled.py); otherwise, interpreted. Either way the same source is the spec.
_install_compiled()

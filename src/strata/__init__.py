"""Strata: a modular execution layer for on-chain derivatives."""

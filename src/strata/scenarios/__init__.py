"""Incident scenarios on the real engine, and the story of an account's liquidations.

``strata scenario list|run NAME [--json]`` runs the built-in scenarios of ``library.py`` on a
:class:`~strata.scenarios.harness.ScenarioChain` (genesis, signed transactions and oracle
prices, ``build_block`` checked by ``apply_block`` on a second state, the invariants after every
block). ``strata explain ACCOUNT --height H --data-dir DIR`` or ``--scenario NAME`` tells, from
the risk events alone, why and how an account was liquidated (``explain.py``).

Ring 2: it signs with real keys and prints; it never runs inside a node. Only ``strata.cli``
imports it.
"""

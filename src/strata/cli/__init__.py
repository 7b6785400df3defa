"""The ``strata`` command line (ring 2)."""

"""Ring 0 primitives with no chain state: units, errors, encoding, signatures, Merkle."""

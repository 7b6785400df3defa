"""Ring 0 modules: each owns one key prefix of the state (see each README.md)."""

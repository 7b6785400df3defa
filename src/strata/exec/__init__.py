"""Ring 1 executors: strategies behind the ``apply_block`` contract (serial now, parallel later)."""

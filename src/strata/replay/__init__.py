"""Ring 2 replay tools: ``strata replay-book``."""

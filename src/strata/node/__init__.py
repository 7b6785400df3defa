"""Ring 2: the sequencer node, its API server and its stages."""

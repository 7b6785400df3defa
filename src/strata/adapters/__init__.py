"""Ring 2 adapters: the implementations of the ports (storage now; DA and settlement later)."""

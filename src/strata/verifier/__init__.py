"""Ring 2: the verifier (re-derives the chain from DA alone) and fraud proofs."""

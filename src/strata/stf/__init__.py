"""The state transition function: ``apply_block(pre_state, block, params) -> BlockOutput``."""

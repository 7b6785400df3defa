"""Ring 0 state: a typed keyspace with one table per module, a journal, and the state root."""

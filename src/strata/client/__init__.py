"""Ring 2 client helpers: key handling and signing for wallets, agents, tools and tests."""

"""The ledger: the single source of truth for every stage transition."""

"""The stages of a skill's life. Each public function is one ledger transaction (or a few, clearly named)."""

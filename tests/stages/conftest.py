"""Builder recordings of the chain tests' member skills: their tests run inside the verify gate, not here."""

collect_ignore = ["chain_recordings"]

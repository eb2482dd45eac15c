"""Integrity: the ledger audit, kavi.lock, provenance attestations and `kavi doctor`."""

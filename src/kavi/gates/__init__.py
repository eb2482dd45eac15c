"""Verification gates: each judges a candidate in a sandbox and returns a :class:`GateResult`."""

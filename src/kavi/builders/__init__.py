"""Builders: whatever writes a candidate (a person, a recording, a coding agent)."""

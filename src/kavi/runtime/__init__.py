"""Running TRUSTED skills: hash before import, execute the verified bytes, validate both sides, enforce
the declared side effects.

Kept empty on purpose: ``python -m kavi.runtime.guard`` imports this package on the start-up path of
every isolated child, so nothing here may import more than the standard library.
"""

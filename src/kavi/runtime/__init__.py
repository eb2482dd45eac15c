"""Running TRUSTED skills: the loader, side-effect enforcement and the guard launcher.

Kept empty on purpose: ``python -m kavi.runtime.guard`` imports this package on the start-up path of
every isolated child, so nothing here may import more than the standard library.
"""

"""Sandboxes: workspace copies for builds, fresh folders for verification, the isolated executor."""

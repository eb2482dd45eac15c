"""Recorded builds that `kavi demo` plays back through the replay builder (package data, not code kavi runs)."""

"""The command line: a thin Typer layer over the core. The only place that knows about exit codes."""

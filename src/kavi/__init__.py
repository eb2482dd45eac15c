"""kavi: a governed skill forge.

The package is layered: ``cli`` sits on top of ``stages``, which orchestrate ``builders``, ``gates``,
``sandbox``, ``runtime`` and ``ledger``. Nothing below ``cli`` imports typer or rich.
"""

__version__ = "0.1.0"

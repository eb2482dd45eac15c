"""`kavi serve` and `kavi mcp`: TRUSTED skills over HTTP and MCP, every call the same governed run as the CLI.

Above ``stages/`` like ``cli/``: it calls the same stage functions and owns no rule of its own. How a call
executes is one seam, :class:`kavi.server.runner.Runner`; the API and the MCP tools never know which runner
they hold (today the cold path behind `kavi run-skill`, later a warm zygote).
"""

"""The ``harness`` command line, the top layer: it parses options, calls the layers below and turns
their errors into messages and exit codes."""

from harness.cli.main import app

__all__ = ["app"]

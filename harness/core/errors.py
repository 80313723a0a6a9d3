"""Bad input found after the suite validated: a pool or cluster the runs cannot fit, a cluster
that cannot be reached, a results folder that cannot hold the run. Every command turns an
``InputError`` into exit 2 with its one-line message (``harness.cli.common``)."""

from __future__ import annotations


class InputError(ValueError):
    """Input the harness cannot run with; the message names the field, file or option."""

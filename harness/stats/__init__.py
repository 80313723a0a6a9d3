"""Statistics as pure functions over arrays and tables: estimates with intervals, the paired
hierarchical bootstrap and its decisions, the over-optimisation frontier. Imports ``core`` and
``suite`` (values only); never ``run``, ``report`` or torch."""

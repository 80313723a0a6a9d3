"""The suite: its schema (strict pydantic, every bound in ``bounds``), its cross-field rules, file
loading with overrides and sweeps, and ``resolve`` — the suite made concrete into a frozen value the
runs receive. Imports ``core`` and ``world`` (definitions only); never torch, never ``run`` or
``report``."""

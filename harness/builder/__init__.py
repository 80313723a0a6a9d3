"""Building the tiny world on first use: its tokenizer, base policy and reward models trained,
its data and tasks written, its card measured, the result cached (or copied from the build shipped
with the package). Imports ``evaluation``, ``world``, ``core`` and ``methods``."""

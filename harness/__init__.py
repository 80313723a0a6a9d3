"""A benchmark and evaluation harness for LLM alignment methods."""

__version__ = "0.1.0"

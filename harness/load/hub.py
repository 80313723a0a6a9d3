"""Preference pairs and prompts from a hub dataset (or a local folder laid out like one), through
``datasets.load_dataset``: parsed, counted and dropped as ``harness.load.data`` does for files."""

from __future__ import annotations

from collections.abc import Iterable

from harness.load.data import (
    DataUnavailableError,
    LoadReport,
    PromptFormat,
    check_format,
    parse_pairs,
    parse_prompts,
)
from methods.base import PreferencePair


def hub_records(
    name: str,
    split: str,
    data_dir: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> Iterable[object]:
    """The rows of ``datasets.load_dataset(name, data_dir=..., split=..., revision=...)``.

    ``name`` may also be a local folder laid out like a hub dataset. Any failure to load becomes
    a :class:`DataUnavailableError` (the original exception is chained): ``datasets`` raises many
    unrelated types for "offline", "unknown dataset", "no such split" or "no such revision".
    """
    import datasets  # heavy; only the hub loaders need it

    label = _hub_label(name, data_dir, split, revision)
    try:
        dataset = datasets.load_dataset(
            name, data_dir=data_dir, split=split, revision=revision, cache_dir=cache_dir
        )
    except Exception as error:  # any failure to load: see the docstring
        raise DataUnavailableError(label, _hub_reason(error)) from error
    if not isinstance(dataset, datasets.Dataset | datasets.IterableDataset):
        raise DataUnavailableError(label, f"expected one split, got {type(dataset).__name__}")
    return dataset


def _hub_label(name: str, data_dir: str | None, split: str, revision: str | None) -> str:
    label = f"{name}/{data_dir}" if data_dir else name
    label += f"[{split}]"
    return f"{label}@{revision}" if revision else label


def _hub_reason(error: Exception) -> str:
    import datasets

    first_line = f"{type(error).__name__}: {error}".splitlines()[0]
    if datasets.config.HF_HUB_OFFLINE:
        return (
            f"{first_line} (note: HF_HUB_OFFLINE is set, so only cached or local datasets "
            "load; a local file source needs no hub)"
        )
    return first_line


def load_pairs_hub(
    name: str,
    split: str,
    data_dir: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
) -> tuple[list[PreferencePair], LoadReport]:
    """Preference pairs from a hub dataset with HH ``chosen``/``rejected`` columns.

    Example: ``load_pairs_hub("Anthropic/hh-rlhf", "test", data_dir="harmless-base")``.
    """
    records = hub_records(name, split, data_dir, revision, cache_dir)
    return parse_pairs(records, _hub_label(name, data_dir, split, revision), limit)


def load_prompts_hub(
    name: str,
    split: str,
    format: PromptFormat,
    data_dir: str | None = None,
    revision: str | None = None,
    limit: int | None = None,
    cache_dir: str | None = None,
) -> tuple[list[str], LoadReport]:
    """Prompts from a hub dataset (see :func:`parse_prompts` for ``format``)."""
    check_format(format)  # before the (slow) download
    records = hub_records(name, split, data_dir, revision, cache_dir)
    return parse_prompts(records, format, _hub_label(name, data_dir, split, revision), limit)

"""What the regression gate refuses to compare (``GateInputError``, exit 2): values outside the
range their metric can take, a baseline metric that is not a number, and two sides made under
different settings (budget, data, models or world, training decoding, evaluation), which are
refused unless asked for (``harness check --allow-mismatch``): a difference between such sides is
not the method's."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.rules import MAX_TOLERANCE
from harness.report.results import suite_json_path

# the range each gated metric can take (a win-rate is a fraction; a delta, of two fractions)
RANGES = {"winrate.": (0.0, 1.0), "capability_delta.": (-1.0, 1.0), "capability.": (0.0, 1.0)}
# suite fields that are not settings of the comparison: which variants and seeds, the pool, and
# the candidate's own tolerance (never used)
NOT_SETTINGS = ("name", "methods", "seeds", "resources")
IGNORED_SETTINGS = ("eval.lm_eval.tolerance",)


class GateInputError(ValueError):
    """Input the gate cannot compare; the message says what and where."""


def check_values(long: pd.DataFrame, side: str) -> None:
    """``GateInputError`` naming the first value of a gated metric that is missing (NaN), not
    finite or outside its range. An interval end may be missing, or beyond the range by up to the
    range's width (a normal-approximation interval of an accuracy of 0.97 reaches 1.03), but not
    infinite or further out."""
    for prefix, (low, high) in RANGES.items():
        rows = long[long["metric"].str.startswith(prefix)]
        width = high - low
        for column in ("value", "ci_low", "ci_high"):
            values = rows[column]
            lo, hi = (low, high) if column == "value" else (low - width, high + width)
            bad = ~values.between(lo, hi)
            if column != "value":
                bad &= values.notna()
            if bad.any():
                row = rows[bad].iloc[0]
                raise GateInputError(
                    f"{side}: {row['metric']} of {row['variant']} (seed {row['seed']}) has"
                    f" {column} {row[column]}, outside [{lo:g}, {hi:g}]"
                )


def check_tolerance(tolerance: float, where: str) -> float:
    if not isinstance(tolerance, int | float) or not 0 <= tolerance <= MAX_TOLERANCE:
        raise GateInputError(
            f"{where}: a tolerance is a number in [0, {MAX_TOLERANCE}], got {tolerance}"
        )
    return float(tolerance)


def nan_metric(variant: str, metric: str) -> GateInputError:
    return GateInputError(
        f"baseline: {metric} of {variant} is not a number (NaN): nothing to gate against"
    )


def suite_dump(path: Path) -> dict[str, Any] | None:
    """The ``suite.json`` beside a results dir or table, or None when there is none."""
    file = suite_json_path(path)
    if not file.exists():
        return None
    try:
        dump = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GateInputError(f"{file}: unreadable suite file ({exc})") from None
    if not isinstance(dump, dict):
        raise GateInputError(f"{file}: not a suite (a {type(dump).__name__})")
    return dump


def settings_differences(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """Each setting that differs between two suites, ``path: baseline vs candidate``."""
    flat_b, flat_c = _flat(base), _flat(cand)
    keys = sorted(
        k
        for k in {*flat_b, *flat_c}
        if k.split(".")[0] not in NOT_SETTINGS and k not in IGNORED_SETTINGS
    )
    missing = object()
    out = []
    for key in keys:
        b, c = flat_b.get(key, missing), flat_c.get(key, missing)
        if b != c and not (_nan(b) and _nan(c)):
            shown = ["-" if v is missing else json.dumps(v)[:40] for v in (b, c)]
            out.append(f"{key} {shown[0]} vs {shown[1]}")
    return out


def _nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _flat(dump: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dump.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out

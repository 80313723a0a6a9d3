"""``sweep:`` in a suite's variant: one variant per value of a parameter, or per combination of
the values of several (their product), before the suite is validated.

    - {method: dpo, params: {lr: 2.0e-4}, sweep: {beta: [0.05, 0.1, 0.5]}}

becomes three variants, ``dpo-beta0p05``, ``dpo-beta0p1`` and ``dpo-beta0p5``, each with
``lr: 2.0e-4`` and its own ``beta``. A name is the variant's ``name`` (default: its method) and,
per swept parameter in the order written, ``-<parameter><value>``: a number in its shortest form
with ``p`` for the decimal point (``0.05`` -> ``0p05``, ``2.0e-4`` -> ``2e-4``; a name holds no
``.``, which would split a ``-o methods.<name>...`` override), any other value after a ``-``
(``dpo-pairs-online``). Errors name the ``sweep`` field: a parameter the method does not have,
one also set in ``params``, an empty or repeated list of values, a value the parameter does not
take, names that come out alike, invalid or too many variants.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from methods import REGISTRY

Loc = tuple[str | int, ...]
Issue = tuple[Loc, Any, str]
_NAME = re.compile(r"[a-z0-9_-]{1,64}")


def expand_methods(data: Any, max_variants: int) -> tuple[Any, list[Issue]]:
    """``data`` (a raw suite mapping) with every variant that has a ``sweep`` replaced by its
    variants, and the problems found (locations in the suite as written). A variant whose sweep
    has a problem stays, without its sweep, so that its other fields are still checked. The
    variants are counted before any is made: sweeps that give more than ``max_variants`` are
    refused unexpanded (a few lines of YAML can ask for millions)."""
    methods = data.get("methods") if isinstance(data, dict) else None
    if not isinstance(methods, list) or not any(_swept(m) for m in methods):
        return data, []
    count = sum(_count(entry) for entry in methods)
    if count > max_variants:
        bases = [_without_sweep(entry) for entry in methods]
        return {**data, "methods": bases}, [
            (("methods",), count, f"sweeps give more than {max_variants}")
        ]
    expanded: list[Any] = []
    issues: list[Issue] = []
    for i, entry in enumerate(methods):
        if not _swept(entry):
            expanded.append(entry)
            continue
        variants, problems = _expand(i, entry)
        expanded += variants
        issues += problems
    return {**data, "methods": expanded}, issues


def _count(entry: Any) -> int:
    """The variants ``entry`` gives: the product of its swept lists' lengths (an empty or
    malformed list counts as one value, its error reported by ``_check``)."""
    sweep = entry.get("sweep") if _swept(entry) else None
    if not isinstance(sweep, dict):
        return 1
    return math.prod(max(len(v), 1) if isinstance(v, list) else 1 for v in sweep.values())


def _without_sweep(entry: Any) -> Any:
    return {k: v for k, v in entry.items() if k != "sweep"} if _swept(entry) else entry


def _swept(entry: Any) -> bool:
    return isinstance(entry, dict) and "sweep" in entry


def _expand(i: int, entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Issue]]:
    """The variants of ``entry`` (the i-th of the suite), or ``[entry]`` without its sweep and
    the problems of that sweep."""
    base = _without_sweep(entry)
    method, sweep = entry.get("method"), entry["sweep"]
    if not isinstance(method, str) or method not in REGISTRY:  # the schema names it
        return [base], []
    loc: Loc = ("methods", i, str(method), "sweep")
    if not isinstance(sweep, dict) or not sweep:
        return [base], [(loc, sweep, "a mapping of parameters to lists of values to sweep")]
    given = base.get("params")
    params: dict[str, Any] = given if isinstance(given, dict) else {}
    issues = [
        issue for key, values in sweep.items() for issue in _check(loc, method, key, values, params)
    ]
    if issues:
        return [base], issues
    keys = list(sweep)
    prefix = str(base.get("name") or method)
    variants = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        name = prefix + "".join(_part(k, v) for k, v in zip(keys, combo, strict=True))
        variants.append(
            {**base, "name": name, "params": {**params, **dict(zip(keys, combo, strict=True))}}
        )
    named = _name_issues(loc, [v["name"] for v in variants])
    return ([base], named) if named else (variants, [])


def _check(loc: Loc, method: str, key: Any, values: Any, params: dict[str, Any]) -> list[Issue]:
    """What is wrong with sweeping ``key`` of ``method`` over ``values``, if anything."""
    fields = REGISTRY[method].params.model_fields
    where = (*loc, str(key))
    if key not in fields:
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        tip = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(fields) or "none"
        return [(where, key, f"{method} has no parameter '{key}'{tip} (parameters: {known})")]
    if key in params:
        return [(where, key, f"'{key}' is both swept and set in params: give it in one place")]
    if not isinstance(values, list) or not values:
        return [(where, values, "a non-empty list of values")]
    issues: list[Issue] = []
    for j, value in enumerate(values):
        if value in values[:j]:
            issues.append(((*where, j), value, "duplicate value"))
            continue
        try:
            REGISTRY[method].params.model_validate({key: value})
        except ValidationError as exc:
            messages = "; ".join(e["msg"] for e in exc.errors() if e["loc"][:1] == (key,))
            issues.append(((*where, j), value, messages or str(exc)))
    return issues


def _part(key: str, value: Any) -> str:
    """``-<key><value>`` of a variant's name (``-<key>-<value>`` when the value is a word)."""
    text = _token(value)
    return f"-{key}{text}" if text[:1].isdigit() else f"-{key}-{text}"


def _token(value: Any) -> str:
    """A value as a name's characters: numbers short, ``p`` for the decimal point."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float) and math.isfinite(value):
        exact = Decimal(repr(value)).normalize()  # the shortest digits that read back as value
        text = format(exact, "e" if value and not 1e-2 <= abs(value) < 1e4 else "f")
    elif isinstance(value, list):
        text = "_".join(_token(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^a-z0-9_-]", "_", text.lower().replace(".", "p").replace("+", ""))


def _name_issues(loc: Loc, names: list[str]) -> list[Issue]:
    """Names that are not valid variant names, or that two values share."""
    issues: list[Issue] = []
    for j, name in enumerate(names):
        if len(name) > 64:
            msg = "gives a variant name longer than 64 characters; give the variant a short `name`"
            issues.append((loc, name, msg))
        elif not _NAME.fullmatch(name):
            issues.append((loc, name, "gives an invalid variant name: is the variant's name one?"))
        elif name in names[:j]:
            issues.append((loc, name, "two values give this one variant name"))
    return issues

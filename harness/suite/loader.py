"""Reading a suite file: safe YAML, ``key=value`` overrides, validation against the schema of
``harness.suite.schema``, and errors that name the file, the field, what was given and what was
expected (every problem at once, as ``SuiteError``)."""

from __future__ import annotations

import copy
import difflib
import re
import reprlib
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from harness.suite.bounds import MAX_SUITE_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from harness.suite.rules import Loc
from harness.suite.schema import VARIANTS, ModelRef, Suite
from methods import REGISTRY, did_you_mean

# --- errors --------------------------------------------------------------------------------------


class SpecIssue(NamedTuple):
    file: str
    field: str
    given: str
    expected: str

    def __str__(self) -> str:
        given = f" (given: {self.given})" if self.given else ""
        return f"{self.file}: {self.field}: {self.expected}{given}"


class SuiteError(ValueError):
    """A suite that cannot run; ``errors`` lists every problem found."""

    def __init__(self, errors: list[SpecIssue]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 4, 4, 50, 50


def _short(value: Any, limit: int = 60) -> str:
    """A bounded repr: a deep or aliased value is never expanded in full."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field_path(loc: Loc) -> str:
    out = ""
    for i, seg in enumerate(loc):
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif i == 2 and loc[0] == "methods" and seg in VARIANTS:
            out += f"({seg})"
        else:
            out += f".{seg}" if out else str(seg)
    return out or "(suite)"


def _keys_at(loc: Loc) -> list[str]:
    """The keys the schema allows at ``loc`` (a mapping's location), or [] if unknown."""
    tp: Any = Suite
    if len(loc) >= 3 and loc[0] == "methods" and loc[2] in VARIANTS:
        tp, loc = VARIANTS[str(loc[2])], loc[3:]
    elif len(loc) >= 3 and loc[:2] == ("models", "judges"):
        tp, loc = ModelRef, loc[3:]
    for seg in loc:
        if isinstance(seg, int):
            continue
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)) or seg not in tp.model_fields:
            return []
        tp = tp.model_fields[seg].annotation
        while get_origin(tp) in (Union, types.UnionType, list):
            tp = next(a for a in get_args(tp) if a is not type(None))
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unknown_key_message(loc: Loc) -> str:
    allowed = _keys_at(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    is_params = len(loc) >= 4 and loc[0] == "methods" and loc[3] == "params"
    if is_params and not allowed:
        return f"unknown key: {loc[2]} takes no parameters"
    what = f"parameters of {loc[2]}" if is_params else "allowed"
    return f"unknown key ({what}: {', '.join(allowed)})" if allowed else "unknown key"


def _issue(file: str, err: Any) -> SpecIssue:
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    given, msg = _short(err["input"]), err["msg"]
    if kind == "suite" and err["input"] is None:
        given = ""
    if kind == "missing":
        given, msg = "(missing)", "required"
    elif kind == "extra_forbidden":
        msg = _unknown_key_message(loc)
    elif kind == "union_tag_invalid":
        loc, tag = (*loc, "method"), ctx.get("tag")
        hint = did_you_mean(str(tag))
        msg = f"unknown method '{tag}'" + (f"; did you mean '{hint}'?" if hint else "")
        msg += f" (known: {', '.join(REGISTRY)})"
        given = repr(tag)
    elif kind == "union_tag_not_found":
        loc, given, msg = (*loc, "method"), "(missing)", f"required: one of {', '.join(REGISTRY)}"
    elif _is_type_error(kind, msg) and (hint := yaml11_hint(err["input"])):
        msg += f"; {hint}"
    return SpecIssue(file, _field_path(loc), given, msg)


def _is_type_error(kind: str, msg: str) -> bool:
    """A number or boolean field given something else (``suite``: a swept value's error)."""
    types_ = ("int_type", "float_type", "bool_type", "int_parsing", "float_parsing")
    return kind in types_ or (kind == "suite" and "should be a valid" in msg)


# --- loading -------------------------------------------------------------------------------------


# libyaml's parser where PyYAML has it (many times faster than PyYAML's own, and it refuses to
# nest deeper than 1,000 levels), with the resolver and safe constructors of ``yaml.SafeLoader``.
_Base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """A safe loader that rejects duplicate keys, unhashable keys, documents that expand
    beyond ``MAX_YAML_VALUES`` values or ``MAX_YAML_DEPTH`` levels, and reads plain numbers,
    booleans and nulls as YAML 1.2 does (its core schema, below). Merge keys (``<<: *defaults``)
    work as in YAML 1.1."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {}  # below

    def construct_document(self, node: yaml.Node) -> Any:
        _check_size(node)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may be overridden by the mapping's own
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # a list or mapping as a key
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_size(root: yaml.Node) -> None:
    """Raise when ``root``, aliases expanded, holds too many values or nests too deeply (counted
    once per distinct node, so the check itself stays small)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), aliases expanded

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_YAML_DEPTH:
            raise _too_big(f"nested deeper than {MAX_YAML_DEPTH} levels", node)
        if id(node) in sizes:
            return sizes[id(node)]
        values, deepest = 1, 0
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        for child in children:
            n, d = measure(child, depth + 1)
            values, deepest = values + n, max(deepest, d + 1)
            if values > MAX_YAML_VALUES:
                raise _too_big(f"expands to more than {MAX_YAML_VALUES:,} values (aliases?)", node)
        sizes[id(node)] = (values, deepest)
        return values, deepest

    measure(root, 0)


def _too_big(problem: str, node: yaml.Node) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


# YAML 1.2's core schema: what a plain scalar reads as (the first characters it may start with).
# Anything else is text, YAML 1.1's sexagesimal ``1:30`` (90), octal ``010`` (8), ``1_000``,
# ``0b101`` and ``yes``/``no``/``on``/``off`` included; a number or boolean field given such
# text says what to write (``yaml11_hint``). ``010`` is text too, not YAML 1.2's 10: YAML 1.1
# reads it as 8, so a suite says which it means.
_CORE_SCHEMA = [
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("int", r"[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+)"  # with . or e
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        list("-+.0123456789"),
    ),
    ("merge", r"<<", ["<"]),
]
for _tag, _pattern, _first in _CORE_SCHEMA:
    _Loader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), _first
    )


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """A YAML 1.2 integer: decimal, ``0o`` octal or ``0x`` hexadecimal."""
    text = loader.construct_scalar(node)
    try:
        return int(text, 0)
    except ValueError:  # an explicit ``!!int`` on other text
        problem = f"{text!r} is not a YAML 1.2 integer"
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def yaml11_hint(text: Any) -> str | None:
    """What to write instead of ``text`` when YAML 1.1 reads it as a number or boolean and a suite
    (YAML 1.2) as text, e.g. "1:30 is a YAML 1.1 sexagesimal number (90); write 90"."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        ours, theirs = _parse_yaml(text), yaml.load(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if not isinstance(ours, str) or not isinstance(theirs, bool | int | float):
        return None
    plain = str(theirs).lower() if isinstance(theirs, bool) else repr(theirs)
    if isinstance(theirs, bool):
        what = "boolean"
    elif ":" in text:
        what = "sexagesimal number"
    elif re.fullmatch(r"[-+]?0[0-9_]+", text):
        decimal = int(text.replace("_", ""), 10)
        if decimal != theirs:
            both = f"{plain} in YAML 1.1 (octal), {decimal} in YAML 1.2"
            return f"{text} is {both}; write {plain} or {decimal}"
        what = "number"
    elif "b" in text.lower():
        what = "binary number"
    else:
        what = "number"
    return f"{text} is a YAML 1.1 {what} ({plain}); write {plain}"


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe


def _read(path: Path) -> dict[str, Any]:
    file = str(path)
    try:
        if not path.is_file():
            what = "is a directory, not a suite file" if path.is_dir() else "file not found"
            raise SuiteError([SpecIssue(file, "(file)", "", what)])
        size = path.stat().st_size
    except OSError as exc:  # a name too long, a symlink loop...
        raise SuiteError([SpecIssue(file, "(file)", "", f"cannot read: {exc.strerror}")]) from None
    if size > MAX_SUITE_BYTES:
        msg = f"{size:,} bytes; a suite file is at most {MAX_SUITE_BYTES:,}"
        raise SuiteError([SpecIssue(file, "(file)", "", msg)])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {exc.start}"
        raise SuiteError([SpecIssue(file, where, "", "not UTF-8 text (a suite is YAML)")]) from None
    except OSError as exc:
        raise SuiteError([SpecIssue(file, "(file)", "", f"cannot read: {exc.strerror}")]) from None
    if bad := yaml.reader.Reader.NON_PRINTABLE.search(text):  # a NUL, an escape...
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - text.rfind("\n", 0, bad.start())
        where, char = f"line {line}, column {column}", f"#x{ord(bad.group()):04x}"
        msg = f"malformed YAML: special characters are not allowed ({char})"
        raise SuiteError([SpecIssue(file, where, "", msg)])
    try:
        raw = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
        problem = getattr(exc, "problem", None) or str(exc)
        if "maximum nesting depth" in problem:  # libyaml's own bound, beyond ours
            problem = f"nested deeper than {MAX_YAML_DEPTH} levels"
        raise SuiteError([SpecIssue(file, where, "", f"malformed YAML: {problem}")]) from None
    except RecursionError:
        msg = f"malformed YAML: nested deeper than {MAX_YAML_DEPTH} levels"
        raise SuiteError([SpecIssue(file, "(yaml)", "", msg)]) from None
    if not isinstance(raw, dict):
        given = type(raw).__name__ if raw is not None else "an empty file"
        msg = "the top level must be a mapping of suite fields (name, world or models, ...)"
        raise SuiteError([SpecIssue(file, "(top level)", given, msg)])
    return raw


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in ``raw`` (in place); lists of named dicts are indexed by name. Each
    mapping or list on the way is replaced by a copy before it is changed, so a YAML alias of it
    elsewhere (``params: *p``) keeps the value it had."""
    key, eq, text = override.partition("=")
    parts = key.strip().split(".")
    if not eq or not all(parts):
        raise ValueError("an override is key=value, e.g. budget.rounds=2")
    try:
        value = _parse_yaml(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ValueError(f"value is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ValueError(f"value nested deeper than {MAX_YAML_DEPTH} levels") from None
    node: Any = raw
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "(top level)"
        slot: Any
        if isinstance(node, dict):
            slot = part
        elif isinstance(node, list):
            slot = _list_index(node, part, where)
        else:
            raise ValueError(f"'{where}' is {_short(node)}, not a mapping or list")
        if depth == len(parts) - 1:
            node[slot] = value
        else:
            child = node.get(slot) if isinstance(node, dict) else node[slot]
            # a missing or empty (`key:`) mapping is created; any other is copied, not shared
            node[slot] = {} if child is None and isinstance(node, dict) else copy.copy(child)
            node = node[slot]


def _list_index(items: list[Any], part: str, where: str) -> int:
    if re.fullmatch(r"-?\d+", part):
        if -len(items) <= int(part) < len(items):
            return int(part)
        raise ValueError(f"index {part} out of range: '{where}' has {len(items)} items")
    names = [(m.get("name") or m.get("method")) if isinstance(m, dict) else None for m in items]
    if part in names:
        return names.index(part)
    known = [str(n) for n in names if n is not None]
    close = difflib.get_close_matches(part, known, n=1)
    tip = f"; did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"no item named '{part}' in '{where}'{tip} (names: {', '.join(known)})")


def load_suite(path: str | Path, overrides: Sequence[str] = ()) -> Suite:
    """Read, override and validate a suite file; ``SuiteError`` lists every problem found."""
    path = Path(path)
    raw = _read(path)  # a fresh mapping: overrides change it, copying what they change below
    issues: list[SpecIssue] = []
    for override in overrides:
        try:
            apply_override(raw, override)
        except ValueError as exc:
            key = override.partition("=")[0] if "=" in override else override
            issues.append(SpecIssue("(override)", key, repr(override), str(exc)))
    try:
        suite = Suite.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        issues += [_issue(str(path), err) for err in exc.errors()]
        raise SuiteError(issues) from None
    if issues:
        raise SuiteError(issues)
    return suite

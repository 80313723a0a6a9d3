"""Data loading: HH-format preference pairs and prompts, from local JSONL files (from the hub:
``harness.load.hub``).

The HH text format (Anthropic HH-RLHF, and the embedded tiny world) writes a dialogue as
``\\n\\nHuman: ...\\n\\nAssistant: ...``, possibly over several turns. A record holds a ``chosen``
and a ``rejected`` dialogue that share every turn but the last assistant response.

Every loader returns ``(items, LoadReport)``. A bad record never stops a load: it is dropped and
counted under a :class:`DropReason`, so ``report.kept + sum(report.dropped.values())`` is the
number of records looked at. Failing to reach the data at all (missing file, hub unreachable)
raises :class:`DataUnavailableError`, which names the source and says why.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from harness.suite.bounds import (
    MAX_DATA_BYTES,
    MAX_DATA_LINES,
    MAX_GZIP_RATIO,
    MAX_JSON_DEPTH,
    MAX_RECORD_BYTES,
)
from harness.suite.loader import SpecIssue
from harness.suite.schema import Suite
from methods.base import PreferencePair

HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"

PromptFormat = Literal["hh", "prompt"]
PROMPT_FORMATS: tuple[str, ...] = ("hh", "prompt")


class DropReason(str, Enum):
    """Why a record was left out; the value is the key used in ``LoadReport.dropped``."""

    MALFORMED_RECORD = "malformed_record"  # bad or too deeply nested JSON, not an object, no field
    NO_ASSISTANT_TURN = "no_assistant_turn"  # no "\n\nAssistant:" in a dialogue
    PROMPT_MISMATCH = "prompt_mismatch"  # chosen and rejected disagree before their last reply
    EMPTY_RESPONSE = "empty_response"  # a final response that is empty or whitespace only
    IDENTICAL_RESPONSES = "identical_responses"  # chosen == rejected (ignoring edge whitespace)
    DUPLICATE_PROMPT = "duplicate_prompt"  # a prompt already kept (prompt loaders, "hh" format)
    EMPTY_PROMPT = "empty_prompt"  # a "prompt" field that is empty or whitespace only
    TOO_LONG = "too_long"  # a line longer than MAX_RECORD_BYTES (no prompt or pair is that long)


class HHFormatError(ValueError):
    """A text that is not an HH dialogue (it has no ``\\n\\nAssistant:`` turn)."""


class DataUnavailableError(RuntimeError):
    """The data could not be reached at all (missing file, hub offline or unknown dataset)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"data source {name!r} is unavailable: {reason}")
        self.name, self.reason = name, reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # rebuilt as itself across processes
        return type(self), (self.name, self.reason)


class DataTooLargeError(DataUnavailableError):
    """A data file beyond the bounds of ``harness.suite.bounds`` (its bytes, decompressed, or its
    lines): refused where it crosses them, naming the line, before it keeps anything busy."""


@dataclass
class LoadReport:
    """What a load kept and what it dropped, by reason."""

    source: str
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Records looked at (a load with a ``limit`` stops early and looks at fewer)."""
        return self.kept + sum(self.dropped.values())

    def drop(self, reason: DropReason) -> None:
        self.dropped[reason.value] += 1

    def as_dict(self) -> dict[str, Any]:
        """``{"source", "kept", "dropped": {reason: count}}``, for a run's provenance."""
        return {"source": self.source, "kept": self.kept, "dropped": dict(self.dropped)}

    def summary(self) -> str:
        """One line, e.g. ``x.jsonl: kept 2,300 of 2,312 (dropped prompt_mismatch 5, ...)``."""
        head = f"{self.source}: kept {self.kept:,} of {self.total:,}"
        if not self.dropped:
            return f"{head} (dropped none)"
        parts = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.dropped.items()))
        return f"{head} (dropped {parts})"


# --- the HH text format ----------------------------------------------------------------------


def normalize_hh(text: str) -> str:
    """Restore the leading ``\\n\\n`` some HH records lack before their first ``Human:``."""
    if text.startswith("Human:"):
        return "\n\n" + text
    return text


def split_hh(text: str) -> tuple[str, str]:
    """Split an HH dialogue into ``(prompt, response)`` at its LAST ``\\n\\nAssistant:``.

    The prompt is everything up to and including that marker (so it ends in ``"Assistant:"``,
    ready for generation); the response is the rest, kept verbatim with the leading space HH puts
    after the colon (``" Sure, ..."``). So ``prompt + response`` is the (normalised) text, and a
    policy scored on ``prompt + response`` sees exactly the tokens of the original dialogue.
    A text starting ``"Human:"`` is first given its missing leading ``"\\n\\n"``.

    Raises :class:`HHFormatError` when the text has no assistant turn.
    """
    text = normalize_hh(text)
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        raise HHFormatError("no '\\n\\nAssistant:' turn in the text")
    end = cut + len(ASSISTANT)
    return text[:end], text[end:]


def pair_from_hh(chosen_text: str, rejected_text: str) -> PreferencePair | DropReason:
    """Build a pair from two HH dialogues, or say why the record must be dropped.

    Checks, in order: both have an assistant turn; both prompts are equal; neither response is
    empty or whitespace; the responses differ once their edge whitespace is stripped (a pair
    that differs only in trailing spaces teaches nothing).
    """
    try:
        prompt, chosen = split_hh(chosen_text)
        rejected_prompt, rejected = split_hh(rejected_text)
    except HHFormatError:
        return DropReason.NO_ASSISTANT_TURN
    if prompt != rejected_prompt:
        return DropReason.PROMPT_MISMATCH
    if not chosen.strip() or not rejected.strip():
        return DropReason.EMPTY_RESPONSE
    if chosen.strip() == rejected.strip():
        return DropReason.IDENTICAL_RESPONSES
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected)


# --- records -> items --------------------------------------------------------------------------


def _string_fields(record: object, *names: str) -> tuple[str, ...] | None:
    """The named fields of a record if it is a mapping holding all of them as strings."""
    if not isinstance(record, Mapping):
        return None
    strings = [value for value in (record.get(name) for name in names) if isinstance(value, str)]
    return tuple(strings) if len(strings) == len(names) else None


def _pair_from_record(record: object) -> PreferencePair | DropReason:
    if record is _TOO_LONG:
        return DropReason.TOO_LONG
    fields = _string_fields(record, "chosen", "rejected")
    if fields is None:
        return DropReason.MALFORMED_RECORD
    return pair_from_hh(*fields)


def _prompt_from_record(record: object, format: PromptFormat) -> str | DropReason:
    if record is _TOO_LONG:
        return DropReason.TOO_LONG
    fields = _string_fields(record, "chosen" if format == "hh" else "prompt")
    if fields is None:
        return DropReason.MALFORMED_RECORD
    (text,) = fields
    if format == "prompt":
        return text if text.strip() else DropReason.EMPTY_PROMPT
    try:
        return split_hh(text)[0]
    except HHFormatError:
        return DropReason.NO_ASSISTANT_TURN


def parse_pairs(
    records: Iterable[object], source: str, limit: int | None = None
) -> tuple[list[PreferencePair], LoadReport]:
    """Pairs from records with HH ``chosen``/``rejected`` fields; stops at ``limit`` kept pairs."""
    _check_limit(limit)
    pairs: list[PreferencePair] = []
    report = LoadReport(source)
    for record in _until_limit(records, pairs, limit):
        result = _pair_from_record(record)
        if isinstance(result, DropReason):
            report.drop(result)
        else:
            pairs.append(result)
            report.kept += 1
    return pairs, report


def parse_prompts(
    records: Iterable[object], format: PromptFormat, source: str, limit: int | None = None
) -> tuple[list[str], LoadReport]:
    """Prompts from records; stops at ``limit`` kept prompts.

    ``"hh"``: the prompt of each ``chosen`` dialogue, deduplicated in first-seen order (HH holds
    several pairs per prompt; repeats count as ``duplicate_prompt``). ``"prompt"``: the ``prompt``
    field of each record, kept as written, repeats included (the file says what it wants).
    """
    check_format(format)
    _check_limit(limit)
    prompts: list[str] = []
    seen: set[str] = set()
    report = LoadReport(source)
    for record in _until_limit(records, prompts, limit):
        result = _prompt_from_record(record, format)
        if format == "hh" and isinstance(result, str) and result in seen:
            result = DropReason.DUPLICATE_PROMPT
        if isinstance(result, DropReason):
            report.drop(result)
            continue
        seen.add(result)
        prompts.append(result)
        report.kept += 1
    return prompts, report


def _until_limit(records: Iterable[object], kept: list[Any], limit: int | None) -> Iterator[object]:
    """Yield records until ``kept`` holds ``limit`` items (lazily: the rest is never read)."""
    for record in records:
        if limit is not None and len(kept) >= limit:
            return
        yield record


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")


def check_format(format: str) -> None:
    if format not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {format!r}; expected one of {PROMPT_FORMATS}")


# --- local files ------------------------------------------------------------------------------

_MALFORMED = object()  # stands in for a line that is not valid UTF-8 JSON, or nested too deeply
_TOO_LONG = object()  # stands in for a line longer than MAX_RECORD_BYTES


def read_jsonl(path: str | Path) -> Iterator[object]:
    """Decoded JSON values of a ``.jsonl`` or ``.jsonl.gz`` file, one per non-blank line.

    A line that is not valid UTF-8 JSON, or nests deeper than ``MAX_JSON_DEPTH``, yields a
    sentinel that every parser counts as ``malformed_record``; a line longer than
    ``MAX_RECORD_BYTES``, one counted as ``too_long``. Raises :class:`DataUnavailableError` when
    the file is missing or cannot be read to its end (a truncated or corrupt ``.gz``, a read
    error), and :class:`DataTooLargeError` at the line where it passes ``MAX_DATA_LINES`` lines,
    blank ones included, or ``MAX_DATA_BYTES`` bytes; a ``.gz``, ``MAX_GZIP_RATIO`` times its own
    size once decompressed (a 300 KB ``.gz`` can hold 300 MB of newlines).
    """
    path = Path(path)
    if not path.name.endswith((".jsonl", ".jsonl.gz")):
        raise ValueError(f"{path}: expected a .jsonl or .jsonl.gz file")
    if not path.is_file():
        raise DataUnavailableError(str(path), "no such file")
    if (size := path.stat().st_size) > MAX_DATA_BYTES:
        raise DataTooLargeError(str(path), f"{size:,} bytes; at most {MAX_DATA_BYTES:,}")
    zipped = path.name.endswith(".gz")
    opener = gzip.open if zipped else open
    most = min(MAX_DATA_BYTES, MAX_GZIP_RATIO * size) if zipped else MAX_DATA_BYTES
    try:
        with opener(path, "rb") as lines:
            for line in _bounded_lines(lines, str(path), most):
                if line is None:
                    yield _TOO_LONG
                elif line.strip():
                    yield _decode_line(line)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: BadGzipFile, truncated stream
        raise DataUnavailableError(str(path), f"unreadable ({type(exc).__name__}: {exc})") from None


def _bounded_lines(stream: Any, source: str, most: int) -> Iterator[bytes | None]:
    """Lines of a binary stream; ``None`` for a line longer than ``MAX_RECORD_BYTES`` (read past
    in chunks, never held whole). Raises :class:`DataTooLargeError` past ``MAX_DATA_LINES``
    lines or ``most`` bytes."""
    read = 0
    for number in itertools.count(1):
        line = stream.readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        if number > MAX_DATA_LINES:
            reason = f"line {number:,}: more than {MAX_DATA_LINES:,} lines (blank ones included)"
            raise DataTooLargeError(source, reason)
        read += len(line)
        if len(line) <= MAX_RECORD_BYTES or line.endswith(b"\n"):
            yield line
        else:
            while line and not line.endswith(b"\n") and read <= most:  # the rest of the line
                line = stream.readline(MAX_RECORD_BYTES)
                read += len(line)
            yield None
        if read > most:
            what = "decompressed" if most < MAX_DATA_BYTES else "in all"
            reason = f"line {number:,}: more than {most:,} bytes {what}"
            if most < MAX_DATA_BYTES:
                reason += f" ({MAX_GZIP_RATIO} times the .gz: a compression bomb?)"
            raise DataTooLargeError(source, reason)


def _decode_line(line: bytes) -> object:
    try:  # a UTF-8 byte order mark (an editor's, or a concatenated file's) is no part of the JSON
        value = json.loads(line.removeprefix(codecs.BOM_UTF8).decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, or a number of 4,300+ digits
        return _MALFORMED
    if line.count(b"[") + line.count(b"{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        return _MALFORMED
    return value


def _deeper_than(value: object, depth: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``depth`` deep (walked without
    recursion)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= depth:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack += [(child, level + 1) for child in children]
    return False


def load_pairs_file(
    path: str | Path, limit: int | None = None
) -> tuple[list[PreferencePair], LoadReport]:
    """Preference pairs from a local HH-format ``.jsonl``/``.jsonl.gz`` file."""
    return parse_pairs(read_jsonl(path), source=str(path), limit=limit)


def prompt_clusters(path: str | Path) -> dict[str, str]:
    """``prompt -> cluster`` of the records of a prompt file that name one (a string: the task or
    template a prompt was made from; the evaluation's intervals treat a cluster as a group)."""
    clusters: dict[str, str] = {}
    for record in read_jsonl(path):
        if not isinstance(record, dict):
            continue
        prompt, cluster = record.get("prompt"), record.get("cluster")
        if isinstance(prompt, str) and isinstance(cluster, str):
            clusters.setdefault(prompt, cluster)
    return clusters


def load_prompts_file(
    path: str | Path, format: PromptFormat, limit: int | None = None
) -> tuple[list[str], LoadReport]:
    """Prompts from a local ``.jsonl``/``.jsonl.gz`` file (see :func:`parse_prompts`)."""
    return parse_prompts(read_jsonl(path), format, source=str(path), limit=limit)


# --- prompt length ----------------------------------------------------------------------------


def left_truncate_prompt(prompt: str, tokenizer: Any, max_tokens: int) -> str:
    """Keep the last ``max_tokens`` tokens of a prompt, cutting from the left.

    The end of a prompt (the latest turns and the final ``\\n\\nAssistant:``) is what the reply
    depends on, so the oldest text goes. When a turn boundary (``\\n\\nHuman:``) lies inside the
    kept tail, the cut moves forward to the first such boundary, so the prompt starts with a
    whole human turn and stays well-formed HH text (a little under budget). When none does (the
    last human turn alone is too long), the cut falls mid-turn at a token boundary.

    Tokens are counted without special tokens (``add_special_tokens=False``): leave room for a
    BOS the caller adds. The tokenizer must be a fast one (it needs character offsets). A cut
    string can tokenise differently from the same span inside the whole prompt, so the result
    is re-counted and the cut moved right until it fits.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    encoding = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    starts = [int(start) for start, _ in encoding["offset_mapping"]]
    if len(starts) <= max_tokens:
        return prompt
    keep = max_tokens
    while True:
        text = _snap_to_turn(prompt, starts[len(starts) - keep])
        excess = _count_tokens(text, tokenizer) - max_tokens
        if excess <= 0 or keep == 1:
            return text
        keep = max(1, keep - excess)


def _snap_to_turn(prompt: str, start: int) -> str:
    """``prompt[start:]``, or from the first ``\\n\\nHuman:`` at or after ``start`` if any."""
    boundary = prompt.find(HUMAN, start)
    return prompt[boundary:] if boundary >= 0 else prompt[start:]


def _count_tokens(text: str, tokenizer: Any) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def data_issues(suite: Suite, file: str) -> list[SpecIssue]:
    """Each local data file of the suite read through as the runs will read it: one that cannot
    be read to its end, or that yields nothing usable, is an issue naming the file and what its
    records were dropped for."""
    sources = {"train_prompts": suite.data.train_prompts, "eval_prompts": suite.data.eval_prompts}
    if suite.data.preferences is not None:
        sources["preferences"] = suite.data.preferences
    issues = []
    for slot, src in sources.items():
        if src.source != "file" or src.path is None:
            continue
        try:
            if slot == "preferences":
                _, report = load_pairs_file(src.path, src.limit)
            else:
                _, report = load_prompts_file(src.path, src.format, src.limit)
        except DataUnavailableError as exc:
            issues.append(SpecIssue(file, f"data.{slot}.path", src.path, exc.reason))
            continue
        if report.kept == 0:
            what = "pairs" if slot == "preferences" else f"'{src.format}' prompts"
            msg = f"no usable {what} in {src.path}: {report.summary().partition(': ')[2]}"
            issues.append(SpecIssue(file, f"data.{slot}", "", msg))
    return issues

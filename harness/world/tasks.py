"""Capability probes of the tiny world: invented facts, sums and held-out dialogue text, asked back
as lm-eval tasks (local YAML over local JSONL, offline).

Each probe has headroom: the base policy neither knows all of it nor nothing of it, so a drift of
the policy shows as a change in either direction.

- ``tiny_facts``: capitals of invented countries, stratified by how often the base corpus taught
  them (``FACT_REPEATS``: 1 to 32 times); weakly taught facts are the first to go.
- ``tiny_arith``: sums the corpus never taught: a taught pair asked the other way round
  (``swapped``), or a pair of the taught range never taught in either order (``unseen``). The
  wrong choices are 10, 20 or 30 away from the sum: the tiny base policy cannot add exactly, but
  it has a sense of size, which recall alone would not give.
- ``tiny_text``: bits per byte (``loglikelihood_rolling``) on held-out dialogues of the base
  corpus's distribution, stratified by topic; it moves with any drift, with little noise per item.

Every item carries a stable ``id`` and its ``stratum`` (the cluster of the paired comparison).
Alignment that drifts too far from the base policy forgets them: that is the capability regression
the harness must catch.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.core.files import write_atomic
from harness.world.dialogues import all_requests, random_style, respond

TASKS = ("tiny_facts", "tiny_arith", "tiny_text")
LIKELIHOOD_TASKS = ("tiny_text",)  # scored in bits per byte (lower is better), not accuracy
FACT_REPEATS = (1, 2, 4, 8, 16, 32)  # the strata: times the corpus states a fact
FACTS_PER_STRATUM = 70
ARITH_MAX = 20  # operands 0..ARITH_MAX
ARITH_REPEATS = 12  # times the corpus states each taught sum
TEXT_DOCS = 320
PRETRAIN_TEXTS = 2048  # base-corpus texts shipped for a pre-training loss (``ptx_coef``)

_SYLLABLES = ("ka", "lo", "mir", "ven", "dra", "sul", "tor", "bel", "quin", "zar", "po", "rish")


def _name(rng: random.Random) -> str:
    return "".join(rng.sample(_SYLLABLES, 3)).capitalize()


def facts(seed: int) -> list[tuple[str, str, int]]:
    """(country, capital, repeats): invented from syllables, distinct names throughout,
    ``FACTS_PER_STRATUM`` per entry of ``FACT_REPEATS``."""
    rng = random.Random(seed + 7919)
    n = FACTS_PER_STRATUM * len(FACT_REPEATS)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < 2 * n:
        name = _name(rng)
        if name not in seen:
            seen.add(name)
            names.append(name)
    repeats = [r for r in FACT_REPEATS for _ in range(FACTS_PER_STRATUM)]
    return list(zip(names[:n], names[n:], repeats, strict=True))


def taught_sums(seed: int) -> list[tuple[int, int]]:
    """The sums the corpus states: every double, and one order of half the other pairs."""
    rng = random.Random(seed + 15485863)
    pairs = [(a, b) for a in range(ARITH_MAX + 1) for b in range(a + 1, ARITH_MAX + 1)]
    rng.shuffle(pairs)
    taught = [(a, a) for a in range(ARITH_MAX + 1)]
    taught += [(a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs[: len(pairs) // 2]]
    return taught


def probed_sums(seed: int) -> list[tuple[int, int, str]]:
    """(a, b, stratum) of the arithmetic probe: each taught pair the other way round
    (``swapped``) and both orders of every pair never taught (``unseen``)."""
    taught = set(taught_sums(seed))
    out = [(b, a, "swapped") for a, b in sorted(taught) if a != b]
    for a in range(ARITH_MAX + 1):
        for b in range(ARITH_MAX + 1):
            if a != b and (a, b) not in taught and (b, a) not in taught:
                out.append((a, b, "unseen"))
    return out


def _fact_context(country: str) -> str:
    return f"\n\nHuman: What is the capital of {country}?\n\nAssistant: The capital of {country} is"


def _sum_context(a: int, b: int) -> str:
    return f"\n\nHuman: What is {a} plus {b}?\n\nAssistant: {a} plus {b} is"


def corpus(seed: int) -> list[str]:
    """The dialogues that teach the capabilities, each fact as often as its stratum says."""
    items = [f"{_fact_context(c)} {cap}." for c, cap, r in facts(seed) for _ in range(r)]
    items += [f"{_sum_context(a, b)} {a + b}." for a, b in taught_sums(seed)] * ARITH_REPEATS
    return items


def held_out_text(seed: int) -> list[tuple[str, str]]:
    """(text, topic) of ``TEXT_DOCS`` dialogues drawn as the base corpus draws its own, from a
    generator of their own (the corpus has none of them but by chance)."""
    rng = random.Random(seed + 32452843)
    benign = [r for r in all_requests() if not r.harmful]
    out = []
    for _ in range(TEXT_DOCS):
        request = rng.choice(benign)
        out.append(
            (request.prompt + respond(rng, request, random_style(rng, request)), request.task)
        )
    return out


def _docs(seed: int) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(seed + 104729)
    known = facts(seed)
    fact_docs = []
    for i, (country, capital, repeats) in enumerate(known):
        # distractors of the same stratum: how often a name was seen does not give it away
        peers = [cap for _, cap, r in known if r == repeats and cap != capital]
        options = [capital, *rng.sample(peers, 3)]
        rng.shuffle(options)
        fact_docs.append(
            {
                "id": f"fact-{i:04d}",
                "stratum": f"seen-{repeats}",
                "context": _fact_context(country),
                "choices": options,
                "label": options.index(capital),
            }
        )
    arith_docs = []
    for i, (a, b, stratum) in enumerate(probed_sums(seed)):
        far = [a + b + d for d in (-20, -10, 10, 20) if 0 <= a + b + d <= 2 * ARITH_MAX]
        far += [a + b + d for d in (-30, 30) if 0 <= a + b + d <= 2 * ARITH_MAX][: 3 - len(far)]
        sums_ = [a + b, *rng.sample(far, 3)]
        rng.shuffle(sums_)
        arith_docs.append(
            {
                "id": f"sum-{i:04d}",
                "stratum": stratum,
                "context": _sum_context(a, b),
                "choices": [str(o) for o in sums_],
                "label": sums_.index(a + b),
            }
        )
    text_docs = [
        {"id": f"text-{i:04d}", "stratum": topic, "text": text}
        for i, (text, topic) in enumerate(held_out_text(seed))
    ]
    return {"tiny_facts": fact_docs, "tiny_arith": arith_docs, "tiny_text": text_docs}


_CHOICE_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""

_ROLLING_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
metadata:
  version: 1.0
"""


def write(folder: Path, seed: int) -> None:
    """Write each task's JSONL and lm-eval YAML into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for task, docs in _docs(seed).items():
        (folder / f"{task}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    write_yaml(folder)


def write_yaml(folder: Path) -> None:
    """Each task's lm-eval YAML, naming the absolute path of its JSONL in ``folder`` (written
    whole: another process may be reading it)."""
    for task in TASKS:
        data = json.dumps(str((folder / f"{task}.jsonl").resolve()))
        template = _ROLLING_YAML if task in LIKELIHOOD_TASKS else _CHOICE_YAML
        write_atomic(folder / f"{task}.yaml", template.format(task=task, data=data))


PRETRAIN_FILE = "data/pretrain.jsonl"  # in a built world: {"text"} per line


def write_pretrain(world: Path, base_corpus: list[str]) -> None:
    """The first ``PRETRAIN_TEXTS`` texts of the (shuffled) base corpus, for a pre-training loss."""
    rows = [{"text": t} for t in base_corpus[:PRETRAIN_TEXTS]]
    path = world / PRETRAIN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def pretrain_texts(world: Path | None) -> list[str]:
    """The base-corpus texts a built world ships (none without a world, or in a world built
    before they were)."""
    path = None if world is None else world / PRETRAIN_FILE
    if path is None or not path.is_file():
        return []
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]

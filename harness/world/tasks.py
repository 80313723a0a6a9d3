"""Capability tasks of the tiny world: invented facts and small sums, woven into the base corpus
and asked back as lm-eval multiple-choice tasks (local YAML over local JSONL, offline).

Alignment that drifts too far from the base policy forgets them: that is the capability regression
the harness must catch.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from harness.core.files import write_atomic

TASKS = ("tiny_facts", "tiny_arith")
FACTS = 20
FACT_REPEATS = 30
ARITH_MAX = 5  # operands 0..ARITH_MAX
ARITH_REPEATS = 30

_SYLLABLES = ("ka", "lo", "mir", "ven", "dra", "sul", "tor", "bel", "quin", "zar", "po", "rish")


def _name(rng: random.Random) -> str:
    return "".join(rng.sample(_SYLLABLES, 2)).capitalize()


def facts(seed: int) -> list[tuple[str, str]]:
    """(country, capital) pairs, invented from syllables; distinct names throughout."""
    rng = random.Random(seed + 7919)
    names: list[str] = []
    while len(names) < 2 * FACTS:
        name = _name(rng)
        if name not in names:
            names.append(name)
    return list(zip(names[:FACTS], names[FACTS:], strict=True))


def sums() -> list[tuple[int, int]]:
    return [(a, b) for a in range(ARITH_MAX + 1) for b in range(ARITH_MAX + 1)]


def _fact_context(country: str) -> str:
    return f"\n\nHuman: What is the capital of {country}?\n\nAssistant: The capital of {country} is"


def _sum_context(a: int, b: int) -> str:
    return f"\n\nHuman: What is {a} plus {b}?\n\nAssistant: {a} plus {b} is"


def corpus(seed: int) -> list[str]:
    """The dialogues that teach the capabilities, each repeated so a tiny model learns them."""
    items = [f"{_fact_context(c)} {cap}." for c, cap in facts(seed)] * FACT_REPEATS
    items += [f"{_sum_context(a, b)} {a + b}." for a, b in sums()] * ARITH_REPEATS
    return items


def _docs(seed: int) -> dict[str, list[dict[str, object]]]:
    rng = random.Random(seed + 104729)
    capitals = [cap for _, cap in facts(seed)]
    fact_docs = []
    for country, capital in facts(seed):
        options = [capital, *rng.sample([c for c in capitals if c != capital], 3)]
        rng.shuffle(options)
        fact_docs.append(
            {
                "context": _fact_context(country),
                "choices": [str(o) for o in options],
                "label": options.index(capital),
            }
        )
    arith_docs = []
    for a, b in sums():
        near = [s for s in range(a + b - 3, a + b + 4) if s >= 0 and s != a + b]
        sums_ = [a + b, *rng.sample(near, 3)]
        rng.shuffle(sums_)
        arith_docs.append(
            {
                "context": _sum_context(a, b),
                "choices": [str(o) for o in sums_],
                "label": sums_.index(a + b),
            }
        )
    return {"tiny_facts": fact_docs, "tiny_arith": arith_docs}


_YAML = """task: {task}
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
        data = (folder / f"{task}.jsonl").resolve()
        write_atomic(folder / f"{task}.yaml", _YAML.format(task=task, data=json.dumps(str(data))))

"""The world's capability probes: sizes, strata, stable ids, and what the corpus teaches of them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from harness.world import tasks


def test_probe_sizes_and_strata(tmp_path: Path) -> None:
    tasks.write(tmp_path, seed=0)
    docs = {
        t: [json.loads(x) for x in (tmp_path / f"{t}.jsonl").read_text().splitlines()]
        for t in tasks.TASKS
    }
    assert len(docs["tiny_facts"]) >= 400 and len(docs["tiny_arith"]) >= 300
    assert len(docs["tiny_text"]) >= 300
    facts = Counter(d["stratum"] for d in docs["tiny_facts"])
    assert facts == {f"seen-{r}": tasks.FACTS_PER_STRATUM for r in tasks.FACT_REPEATS}
    assert set(Counter(d["stratum"] for d in docs["tiny_arith"])) == {"swapped", "unseen"}
    assert len(Counter(d["stratum"] for d in docs["tiny_text"])) > 10  # topics
    for items in docs.values():
        assert len({d["id"] for d in items}) == len(items)  # every id unique
    for d in docs["tiny_facts"] + docs["tiny_arith"]:
        assert len(set(d["choices"])) == 4 and 0 <= d["label"] < 4
    assert "loglikelihood_rolling" in (tmp_path / "tiny_text.yaml").read_text()


def test_probes_are_stable_and_need_more_than_recall(tmp_path: Path) -> None:
    tasks.write(tmp_path / "a", seed=0)
    tasks.write(tmp_path / "b", seed=0)
    for t in tasks.TASKS:
        assert (tmp_path / "a" / f"{t}.jsonl").read_bytes() == (
            tmp_path / "b" / f"{t}.jsonl"
        ).read_bytes()
    taught = set(tasks.taught_sums(0))
    assert all((a, b) not in taught for a, b, _ in tasks.probed_sums(0))  # no sum asked as taught
    corpus = Counter(tasks.corpus(0))
    for country, capital, repeats in tasks.facts(0)[:: tasks.FACTS_PER_STRATUM]:
        stated = [text for text in corpus if f"capital of {country} is {capital}." in text]
        assert [corpus[text] for text in stated] == [repeats]  # taught as often as its stratum says
    held_out = {text for text, _ in tasks.held_out_text(0)}
    assert len(held_out) > 250  # mostly distinct dialogues

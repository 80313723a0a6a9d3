"""The committed baseline (``results/baselines/tiny.*``: the default suite's full run, eight
seeds, with its judged samples) read back: its separations do not depend on the bootstrap's seed,
and its letters say exactly what its Holm table says."""

from __future__ import annotations

from itertools import combinations

import pandas as pd
import pytest

from harness.report.compare import load_samples
from harness.stats.paired import compact_letters, compare_all
from tests.conftest import REPO

BASELINE = REPO / "results" / "baselines" / "tiny.parquet"


@pytest.fixture(scope="module")
def gold_prompts() -> pd.DataFrame:
    samples = load_samples(BASELINE)
    assert samples is not None, f"{BASELINE}: its samples are not beside it"
    return samples.prompts("gold")


def separated(table: pd.DataFrame) -> frozenset[frozenset[str]]:
    rows = table[table["separated"]]
    return frozenset(frozenset(pair) for pair in zip(rows["a"], rows["b"], strict=True))


def test_the_separated_set_is_the_same_for_ten_bootstrap_seeds(gold_prompts: pd.DataFrame) -> None:
    sets = []
    for seed in range(10):
        table = compare_all(gold_prompts, "win", seed=seed)
        assert len(table) == 28  # 8 variants
        sets.append(separated(table))
    assert len(set(sets)) == 1
    assert 0 < len(sets[0]) < 28  # some pairs separated, not all: the test can fail


def test_two_variants_share_a_letter_exactly_when_holm_does_not_separate_them(
    gold_prompts: pd.DataFrame,
) -> None:
    table = compare_all(gold_prompts, "win", seed=0)
    means = dict(zip(table["a"], table["mean_a"], strict=True))
    means |= dict(zip(table["b"], table["mean_b"], strict=True))
    letters = compact_letters(means, table)
    apart = separated(table)
    for a, b in combinations(sorted(means), 2):
        share = bool(set(letters[a]) & set(letters[b]))
        assert share == (frozenset((a, b)) not in apart), (a, b, letters[a], letters[b])

"""Every judged sample as a table: the runs' answers and the reference's, written atomically and
read back from the saved reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from harness.report.samples import (
    load_reference,
    long_scores,
    reference_table,
    sample_index,
    samples_table,
    write_samples,
)
from harness.suite.runs import RunResult


def result(variant: str, seed: int, status: str = "done") -> RunResult:
    columns = {
        **sample_index(2, 2, ["a", "b"]),
        "length": [3, 4, 5, 6],
        "kl": [0.1, 0.2, math.nan, 0.4],
        "score.gold": [1.0, 2.0, 3.0, 4.0],
        "score.proxy": [0.5, 0.5, 0.5, 0.5],
    }
    return RunResult(
        f"id-{variant}-{seed}", "tiny", variant, variant, seed, status, samples=columns
    )


def test_sample_index_is_row_i_times_k_plus_j() -> None:
    assert sample_index(2, 3, ["x", "y"]) == {
        "prompt_id": [0, 0, 0, 1, 1, 1],
        "cluster": ["x", "x", "x", "y", "y", "y"],
        "sample": [0, 1, 2, 0, 1, 2],
    }
    assert sample_index(2, 1, [])["cluster"] == ["p0", "p1"]  # no cluster: each its own


def test_samples_table_has_one_row_per_run_prompt_and_sample() -> None:
    table = samples_table([result("ppo", 0), result("dpo", 1), result("rrhf", 0, "failed")])
    assert len(table) == 8  # the failed run keeps no samples
    assert list(table.columns[:5]) == ["suite", "run_id", "method", "variant", "seed"]
    assert table.groupby("variant")["prompt_id"].nunique().to_dict() == {"dpo": 2, "ppo": 2}
    long = long_scores(table)
    assert len(long) == 16 and set(long["judge"]) == {"gold", "proxy"}
    ppo = long[(long.variant == "ppo") & (long.judge == "gold")]
    assert ppo["score"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert samples_table([]).empty


def test_written_tables_read_back_with_the_saved_reference(tmp_path: Path) -> None:
    reference = {
        "prompts": ["p", "q"],
        "responses": ["r1", "r2", "r3", "r4"],
        "scores": {"gold": [0.0, 1.0, 2.0, 3.0]},
        "capability": {},
        "clusters": ["a", "b"],
        "samples_per_prompt": 2,
    }
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "reference-0123.json").write_text(json.dumps(reference))
    (tmp_path / "shared" / "reference-broken.json").write_text("{")  # older and unreadable
    loaded = load_reference(tmp_path)
    assert loaded == reference
    paths = write_samples(tmp_path, [result("ppo", 0)], loaded)
    assert set(paths) == {"samples.parquet", "reference_samples.parquet"}
    ref = pd.read_parquet(paths["reference_samples.parquet"])
    pd.testing.assert_frame_equal(ref, reference_table(reference))
    assert ref["cluster"].tolist() == ["a", "a", "b", "b"]
    assert len(pd.read_parquet(paths["samples.parquet"])) == 4
    assert not list(tmp_path.glob(".*.tmp"))
    assert load_reference(tmp_path / "nowhere") is None

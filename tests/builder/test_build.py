"""The built tiny world: its card meets the bar every later measurement relies on, and the same
config builds the same world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from harness.builder import store
from harness.builder.build import build_world, ensure_world, reward_model_pairs, split_requests
from harness.cli.main import app
from harness.suite.loader import load_suite
from harness.suite.resolve import resolve
from harness.world.config import WorldConfig
from harness.world.tasks import LIKELIHOOD_TASKS, TASKS

TINY = Path(__file__).resolve().parents[2] / "suites" / "tiny.yaml"


def test_default_world_card_meets_the_bar(tiny_world: Path) -> None:
    card = json.loads((tiny_world / "card.json").read_text())
    for name in ("proxy_rm", "heldout_rm"):
        assert card["reward_models"][name]["heldout_pair_accuracy"] >= 0.80, name
    base = card["base_policy"]
    assert base["eos_rate"] >= 0.90
    assert base["gold_std"] >= 1.5  # wide enough for alignment to matter
    assert base["style_shares"]["helpful"] < 0.6  # the base policy is far from perfect
    for task in TASKS:  # probes with headroom: the base policy knows some, not all
        score = card["capability"][task]
        if task in LIKELIHOOD_TASKS:
            assert 0.05 < score["acc"] < 1.0, task  # bits per byte: learned, not memorised
            assert score["metric"] == "bits_per_byte" and score["n"] >= 300
        else:
            assert 0.5 <= score["acc"] <= 0.86, task
            assert score["n"] >= 300 and len(score["strata"]) >= 2
    assert (tiny_world / "card.md").read_text().startswith("# Tiny world")


def test_world_files_load_like_hub_models(tiny_world: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    assert AutoModelForCausalLM.from_pretrained(tiny_world / "policy").config.model_type == "llama"
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_world / "proxy_rm")
    assert rm.config.num_labels == 1
    for split in ("train_prompts", "eval_prompts", "preferences"):
        assert (tiny_world / "data" / f"{split}.jsonl").stat().st_size > 0
    train = set((tiny_world / "data/train_prompts.jsonl").read_text().splitlines())
    held_out = set((tiny_world / "data/eval_prompts.jsonl").read_text().splitlines())
    assert not train & held_out  # evaluation prompts are never trained on


def test_world_build_command_reuses_the_cache(tiny_world: Path, cache_root: Path) -> None:
    result = CliRunner().invoke(app, ["world", "build", "--cache-dir", str(cache_root)])
    assert result.exit_code == 0, result.output
    assert "cached" in result.output and "pairwise accuracy" in result.output


def test_the_default_world_is_the_shipped_one(tiny_world: Path) -> None:
    """What the default suite loads is byte for byte the world the package ships."""
    source = store.shipped(WorldConfig())
    assert source is not None, "the package ships no default world"
    recorded = store.recorded_hash(source)
    assert recorded and store.content_hash(source) == recorded
    assert store.content_hash(tiny_world) == recorded
    assert store.verify(resolve(load_suite(TINY)).world_dir) is None  # type: ignore[arg-type]


def test_a_damaged_cached_world_is_replaced(tmp_path: Path) -> None:
    path = ensure_world(WorldConfig(), tmp_path, log=lambda line: None)
    weights = path / "proxy_rm" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01  # one flipped bit
    weights.write_bytes(bytes(blob))
    assert "hash" in (store.verify(path) or "")
    lines: list[str] = []
    ensure_world(WorldConfig(), tmp_path, log=lines.append)
    assert store.verify(path) is None
    assert any("not intact" in line for line in lines)
    (path / "data" / "eval_prompts.jsonl").write_text("{}\n")  # cut short
    ensure_world(WorldConfig(), tmp_path, log=lambda line: None)
    assert store.verify(path) is None


def test_a_moved_world_still_names_its_own_task_files(tmp_path: Path) -> None:
    path = ensure_world(WorldConfig(), tmp_path / "a", log=lambda line: None)
    moved = tmp_path / "b" / path.relative_to(tmp_path / "a")
    moved.parent.mkdir(parents=True)
    path.rename(moved)
    assert str(moved) not in (moved / "tasks" / "tiny_arith.yaml").read_text()
    assert ensure_world(WorldConfig(), tmp_path / "b", log=lambda line: None) == moved
    assert str(moved.resolve()) in (moved / "tasks" / "tiny_arith.yaml").read_text()


@pytest.mark.slow
def test_same_seed_same_world(tmp_path: Path) -> None:
    """Two builds of one config give the same content hash (and the same card)."""
    small = WorldConfig(
        seed=3,
        sft_dialogues=100,
        train_prompts=16,
        eval_prompts=16,
        preference_pairs=50,
        rm_pairs=100,
        vocab_size=300,
        hidden_size=16,
        layers=1,
        heads=2,
    )
    a = build_world(small, tmp_path / "a", log=lambda line: None)
    b = build_world(small, tmp_path / "b", log=lambda line: None)

    def measured(path: Path) -> dict[str, object]:
        card = json.loads((path / "card.json").read_text())
        card.pop("build_seconds")
        return card

    assert measured(a) == measured(b)
    assert store.content_hash(a) == store.content_hash(b) == measured(a)["content_hash"]
    assert store.verify(a) is None
    for model in ("policy", "proxy_rm", "heldout_rm"):
        wa, wb = (
            load_file(a / model / "model.safetensors"),
            load_file(b / model / "model.safetensors"),
        )
        assert all((wa[k] == wb[k]).all() for k in wa), model
    # DPO's pairs are the proxy reward model's: the first of its training pairs
    prefs = [json.loads(line) for line in (a / "data/preferences.jsonl").read_text().splitlines()]
    train_pool, _ = split_requests(small)
    proxy_pairs = reward_model_pairs(small, train_pool)["proxy_rm"]
    assert len(prefs) == small.preference_pairs
    assert prefs == [
        {"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]}
        for p in proxy_pairs[: small.preference_pairs]
    ]

"""The built tiny world: its card meets the bar every later measurement relies on, and the same
config builds the same world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from harness.cli import app
from harness.world.build import build_world
from harness.world.capability_tasks import TASKS
from harness.world.config import WorldConfig


def test_default_world_card_meets_the_bar(tiny_world: Path) -> None:
    card = json.loads((tiny_world / "card.json").read_text())
    for name in ("proxy_rm", "heldout_rm"):
        assert card["reward_models"][name]["heldout_pair_accuracy"] >= 0.80, name
    base = card["base_policy"]
    assert base["eos_rate"] >= 0.90
    assert base["gold_std"] >= 1.5  # wide enough for alignment to matter
    assert base["style_shares"]["helpful"] < 0.6  # the base policy is far from perfect
    for task in TASKS:
        assert card["capability"][task]["acc"] >= 0.80, task
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


@pytest.mark.slow
def test_same_seed_same_world(tmp_path: Path) -> None:
    small = WorldConfig(seed=3, sft_dialogues=300, rm_pairs=200, vocab_size=400, hidden_size=32)
    a = build_world(small, tmp_path / "a", log=lambda line: None)
    b = build_world(small, tmp_path / "b", log=lambda line: None)

    def measured(path: Path) -> dict[str, object]:
        card = json.loads((path / "card.json").read_text())
        card.pop("build_seconds")
        return card

    assert measured(a) == measured(b)
    for model in ("policy", "proxy_rm", "heldout_rm"):
        wa, wb = (
            load_file(a / model / "model.safetensors"),
            load_file(b / model / "model.safetensors"),
        )
        assert all((wa[k] == wb[k]).all() for k in wa), model
    for f in ("train_prompts", "eval_prompts", "preferences"):
        assert (a / "data" / f"{f}.jsonl").read_bytes() == (b / "data" / f"{f}.jsonl").read_bytes()

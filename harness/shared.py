"""Work shared by every run of a suite, done once and cached beside its results: the reference
(base) policy's evaluation responses and judge scores, and the base model's capability scores."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.spec import Suite


def shared_key(suite: Suite) -> str:
    """What the shared work depends on: the models, the eval prompts and the eval settings."""
    dump = suite.model_dump(mode="json")
    content = {k: dump[k] for k in ("world", "models", "eval")}
    content["eval_prompts"] = dump["data"]["eval_prompts"]
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shared_path(suite: Suite, out_dir: Path) -> Path:
    return out_dir / "shared" / f"reference-{shared_key(suite)}.json"


def compute_shared(suite_dump: dict[str, Any]) -> Any:
    """Generate and judge the reference policy's responses; score the base model with lm-eval."""
    from harness.evaluate import reference_eval
    from harness.execute import pick_device
    from harness.models import load_judges, load_policy, suite_models

    suite = Suite.model_validate(suite_dump)
    device = pick_device(suite.resources.gpus_per_run)
    models = suite_models(suite)
    reference, tokenizer = load_policy(models.reference or models.policy, device)
    reference.eval()
    judges = load_judges(suite, device)
    return reference_eval(suite, reference, tokenizer, judges, device)


def load_or_none(path: Path) -> Any:
    from harness.evaluate import ReferenceEval

    if not path.exists():
        return None
    try:
        return ReferenceEval.load(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recomputed and rewritten

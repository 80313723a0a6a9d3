"""Work shared by every run of a suite, done once and cached beside its results: the reference
(base) policy's evaluation responses and judge scores, and the base model's capability scores."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.evaluation.evaluate import ReferenceEval, reference_eval
from harness.load.device import pick_device
from harness.load.models import load_data, load_policy, load_reward
from harness.run.execute import eval_setup, open_backend
from harness.suite.resolve import Resolved
from harness.suite.schema import Suite


def shared_key(suite: Suite) -> str:
    """What the shared work depends on: the models, the eval prompts and the eval settings."""
    dump = suite.model_dump(mode="json")
    content = {k: dump[k] for k in ("world", "models", "eval")}
    content["eval_prompts"] = dump["data"]["eval_prompts"]
    if "generation" in dump:  # another backend than the default draws other samples
        content["generation"] = dump["generation"]
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shared_path(suite: Suite, out_dir: Path) -> Path:
    return out_dir / "shared" / f"reference-{shared_key(suite)}.json"


def compute_shared(resolved: Resolved) -> ReferenceEval:
    """Generate and judge the reference policy's responses; score the base model with lm-eval.
    Runs in a task: it receives the suite resolved by the driver and validates nothing again."""
    suite = resolved.suite
    device = pick_device(suite.resources.gpus_per_run)
    reference, tokenizer = load_policy(resolved.reference, device)
    reference.eval()
    # the data is read through the POLICY's tokenizer and template, as each run reads it
    data = load_data(resolved.data, suite.eval.num_prompts, resolved.policy, tokenizer)
    proxy = load_reward(resolved.reward, device)
    with open_backend(suite.generation, resolved.reference, device) as generation:
        setup = eval_setup(resolved, reference, tokenizer, device, proxy, data, generation)
        return reference_eval(setup)


def load_or_none(path: Path) -> ReferenceEval | None:
    if not path.exists():
        return None
    try:
        return ReferenceEval.load(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recomputed and rewritten

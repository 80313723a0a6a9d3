"""Before any training: can every model and dataset the suite names be had?

Each is resolved the way the runs will resolve it (a local directory or file, the local hub cache,
or the hub), without downloading weights or data. Everything missing is reported together, in
seconds, so a suite never fails an hour in.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.spec import DataSource, ModelRef, Suite

HINT = (
    "No model or dataset hub here? `harness run suites/tiny.yaml` runs every method end to end "
    "fully offline on the embedded tiny world."
)


class PreflightError(RuntimeError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"cannot get what the suite names:\n{lines}\n{HINT}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_model(role: str, ref: ModelRef) -> str | None:
    """None when the model's config resolves; else why not. The driver never runs a model's own
    code: a ``trust_remote_code`` model's ``config.json`` is only found, not loaded (its code runs
    in the runs, as the suite allows)."""
    if Path(ref.path).expanduser().is_dir():
        return None
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        if ref.trust_remote_code:
            cached_file(ref.path, "config.json", revision=ref.revision)
        else:
            AutoConfig.from_pretrained(ref.path, revision=ref.revision, trust_remote_code=False)
    except Exception as exc:  # any failure to resolve is reported, with its reason
        return f"{role} model '{ref.path}': {_first_line(exc)}"
    return None


def check_dataset(role: str, src: DataSource) -> str | None:
    if src.source != "hub":
        return None  # world data is built; file sources were checked by the schema
    assert src.path is not None
    if Path(src.path).expanduser().exists():
        return None
    try:
        import datasets

        datasets.load_dataset_builder(src.path, data_dir=src.data_dir)
    except Exception as exc:  # reported, not raised
        return f"{role} dataset '{src.path}': {_first_line(exc)}"
    return None


def check(suite: Suite) -> None:
    """Raise ``PreflightError`` listing every model and dataset that cannot be resolved."""
    if suite.models is None:
        return
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    m = suite.models
    roles = {
        "policy": m.policy,
        "reward": m.reward,
        **{f"judge '{k}'": v for k, v in m.judges.items()},
    }
    if m.reference is not None and m.reference != m.policy:
        roles["reference"] = m.reference
    problems = [p for role, ref in roles.items() if (p := check_model(role, ref))]
    sources = {"train_prompts": suite.data.train_prompts, "eval_prompts": suite.data.eval_prompts}
    if suite.data.preferences is not None:
        sources["preferences"] = suite.data.preferences
    problems += [p for role, src in sources.items() if (p := check_dataset(role, src))]
    if problems:
        raise PreflightError(problems)

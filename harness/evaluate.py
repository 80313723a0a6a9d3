"""Evaluation of a run's final policy (DESIGN.md, "Evaluation protocol").

Three layers, each usable alone:

1. Statistics over numbers, no models: ``outcomes``, ``win_rate``, ``mean_with_ci``,
   ``distinct_n``, ``kl_estimate``, ``capability_rows``.
2. The per-suite shared work, ``reference_eval``: one response per eval prompt from the reference
   (base) policy, drawn ONCE per suite with a fixed seed (``REFERENCE_SEED``) and scored by every
   judge, plus the base model's lm-eval scores. Every run of the suite is compared against the same
   ``ReferenceEval``, so each win-rate is paired per prompt.
3. ``evaluate_policy``: the run's responses (through the method's inference-time strategy, if it
   has one) judged against the reference, KL, length, distinct-n, and capability through lm-eval
   in a child process (``harness.capability``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.capability import TaskScore
from harness.files import write_atomic
from harness.runs import MetricRow
from harness.spec import Suite
from methods.base import Method, TrainContext
from methods.best_of_n import BestOfNParams
from methods.common import RewardModel, Samples, sample, token_logps

if TYPE_CHECKING:
    from harness.models import Judge

REFERENCE_SEED = 1_000_003  # the reference's generations, the same for every run of a suite
POLICY_SEED = 2_000_003  # a run with seed s draws with POLICY_SEED + s (s >= 0: never the above)
BOOTSTRAP_SEED = 0  # fixed, so a result's intervals are reproducible
EVAL_BATCH = 64  # rows per generation / log-prob forward pass
Z95 = 1.96

ArrayLike = Any  # list[float] | np.ndarray | torch.Tensor, 1-D unless said otherwise

# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval over ``n`` units (prompts, responses or seeds);
    NaN endpoints mean the interval cannot be estimated."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def row(self, metric: str) -> MetricRow:
        """As a result row; a NaN interval endpoint becomes None."""
        return MetricRow(metric, self.value, _finite(self.ci_low), _finite(self.ci_high), self.n)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _array(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def outcomes(policy_scores: ArrayLike, ref_scores: ArrayLike, tie_eps: float = 1e-6) -> np.ndarray:
    """Per prompt ``[N]``: 1.0 a win (the policy's score is higher by more than ``tie_eps``),
    0.0 a loss (lower by more than ``tie_eps``), 0.5 a tie. Their mean is the win-rate."""
    policy, ref = _array(policy_scores), _array(ref_scores)
    if policy.shape != ref.shape or policy.ndim != 1:
        raise ValueError(f"paired scores must be 1-D of one length: {policy.shape}, {ref.shape}")
    diff = policy - ref  # [N]
    return np.where(diff > tie_eps, 1.0, np.where(diff < -tie_eps, 0.0, 0.5))


def mean_with_ci(values: ArrayLike, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Mean of ``values [N]`` with a seeded percentile-bootstrap 95% interval: ``n_boot``
    resamples of the N units with replacement, all drawn at once (``[n_boot, N]`` indices)."""
    x = _array(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(n_boot, x.size))  # [B, N]
    means = x[index].mean(axis=1)  # [B]
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size))


def win_rate(
    policy_scores: ArrayLike,
    ref_scores: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    tie_eps: float = 1e-6,
) -> Estimate:
    """``(wins + ties / 2) / n`` over paired prompts, with a bootstrap 95% interval that
    resamples prompts (``mean_with_ci`` of ``outcomes``)."""
    return mean_with_ci(outcomes(policy_scores, ref_scores, tie_eps), n_boot, seed)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the whitespace tokens of ``texts`` (n-grams never cross
    two texts; Li et al. 2016); 0.0 when there are none."""
    grams = [
        tuple(tokens[i : i + n])
        for tokens in (t.split() for t in texts)
        for i in range(len(tokens) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def kl_estimate(
    logps: torch.Tensor,  # [N, T] the policy's log-probs of its own sampled tokens
    ref_logps: torch.Tensor,  # [N, T] the reference's log-probs of the same tokens
    mask: torch.Tensor,  # [N, T] 1 on real response tokens
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Monte-Carlo KL(policy || reference): per response ``sum_t (logp_t - ref_logp_t)`` over real
    tokens, then the mean over responses with a bootstrap 95% interval."""
    per_response = ((logps.float() - ref_logps.float()) * mask).sum(dim=-1)  # [N]
    return mean_with_ci(per_response, n_boot, seed)


def best_of_n_kl(n: int) -> float:
    """Analytic KL(best-of-n || base) = log n - (n - 1) / n (Stiennon et al. 2020)."""
    return math.log(n) - (n - 1) / n


def capability_rows(
    base: dict[str, TaskScore], policy: dict[str, TaskScore], tolerance: float
) -> list[MetricRow]:
    """Per task of ``policy``: ``capability.<task>`` (acc +- 1.96 stderr),
    ``capability_delta.<task>`` (``acc_p - acc_b`` +- 1.96 ``sqrt(se_p^2 + se_b^2)``) and
    ``regression.<task>`` (1.0 or 0.0).

    Regression rule: the point estimate of the drop is larger than the tolerance,
    ``-delta > tolerance`` (a drop exactly at the tolerance passes; 1e-9 of float slack). The
    interval is reported beside it but not required to exclude 0: the tasks are small (tens of
    items), so an interval rule would let large real drops pass, while ``tolerance`` already
    names the size of drop the suite accepts."""
    rows: list[MetricRow] = []
    for task, p in policy.items():
        if task not in base:
            raise ValueError(f"no base score for task '{task}' (base has {', '.join(base)})")
        b = base[task]
        delta = p.acc - b.acc
        se = math.sqrt(p.stderr**2 + b.stderr**2)
        acc = Estimate(p.acc, p.acc - Z95 * p.stderr, p.acc + Z95 * p.stderr, p.n)
        rows += [
            acc.row(f"capability.{task}"),
            Estimate(delta, delta - Z95 * se, delta + Z95 * se, p.n).row(
                f"capability_delta.{task}"
            ),
            MetricRow(f"regression.{task}", float(-delta > tolerance + 1e-9), n=p.n),
        ]
    return rows


# --------------------------------------------------------------------------- shared per suite


@dataclass
class ReferenceEval:
    """The reference policy's side of every comparison of a suite (JSON file via save/load)."""

    prompts: list[str]  # [N] the eval prompts, as the policy sees them
    responses: list[str]  # [N] one reference response per prompt
    scores: dict[str, list[float]]  # judge -> [N]
    capability: dict[str, TaskScore]  # task -> the base model's lm-eval score
    hh_prompts: list[str] = field(default_factory=list)  # [N] as HH text; empty: = prompts

    def judge_prompts(self) -> list[str]:
        """The prompts the judges score: their HH text, not the policy's chat-templated form."""
        return self.hh_prompts or self.prompts

    def save(self, path: str | Path) -> None:
        write_atomic(Path(path), json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceEval:
        data = json.loads(Path(path).read_text())
        capability = {t: TaskScore(**s) for t, s in data.pop("capability").items()}
        return cls(**data, capability=capability)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def respond(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    suite: Suite,
    generator: torch.Generator,
    device: torch.device,
    n: int = 1,
) -> Samples:
    """``n`` responses per prompt (row ``i * n + j``) with the suite's eval decoding."""
    dec = suite.eval.decoding
    max_new = dec.max_new_tokens or suite.budget.max_new_tokens
    return sample(
        model,
        tokenizer,
        prompts,
        n,
        max_new,
        dec.temperature,
        dec.top_p,
        generator,
        device,
        EVAL_BATCH,
    )


def judge_all(
    judges: dict[str, Judge], prompts: list[str], responses: list[str]
) -> dict[str, list[float]]:
    """Every judge's scores ``[N]`` of the responses, as lists of floats."""
    return {name: [float(s) for s in judge(prompts, responses)] for name, judge in judges.items()}


def run_lm_eval(suite: Suite, model_dir: str | Path, device: torch.device) -> dict[str, TaskScore]:
    """lm-eval scores of the model in ``model_dir`` (or a hub id) on the suite's tasks, in a child
    process; a world suite's tasks come from its ``tasks/`` folder."""
    from harness import capability
    from harness.models import world_path

    lm = suite.eval.lm_eval
    include = world_path(suite) / "tasks" if suite.world is not None else None
    return capability.evaluate(
        model_dir, lm.tasks, include, lm.limit, lm.batch_size, device=str(device)
    )


def base_capability(
    suite: Suite, reference_model: Any, tokenizer: Any, device: torch.device
) -> dict[str, TaskScore]:
    """The base (reference) model's lm-eval scores: from its directory, or its hub id when lm-eval
    loads it as named (no revision, own tokenizer); otherwise from a temporary saved copy."""
    from harness.models import suite_models

    if not suite.eval.lm_eval.tasks:
        return {}
    models = suite_models(suite)
    ref = models.reference or models.policy
    if Path(ref.path).is_dir() or (ref.revision is None and ref.tokenizer is None):
        return run_lm_eval(suite, ref.path, device)
    with tempfile.TemporaryDirectory(prefix="harness-base-") as tmp:
        return run_lm_eval(suite, save_policy(reference_model, tokenizer, Path(tmp)), device)


def reference_eval(
    suite: Suite,
    reference_model: Any,
    tokenizer: Any,
    judges: dict[str, Judge],
    device: torch.device,
) -> ReferenceEval:
    """The suite's shared reference side: one response per eval prompt from ``reference_model``
    (seeded with ``REFERENCE_SEED``), every judge's scores, and the base lm-eval scores."""
    from harness.models import load_data

    data = load_data(suite, tokenizer)
    prompts = data.eval_prompts
    hh_prompts = [data.hh_prompts.get(p, p) for p in prompts]  # what the judges score
    gen = _generator(REFERENCE_SEED, device)
    samples = respond(reference_model, tokenizer, prompts, suite, gen, device)
    scores = judge_all(judges, hh_prompts, samples.responses)
    capability = base_capability(suite, reference_model, tokenizer, device)
    return ReferenceEval(prompts, samples.responses, scores, capability, hh_prompts)


# --------------------------------------------------------------------------- one run


def respond_best_of_n(
    ctx: TrainContext, prompts: list[str], n: int, suite: Suite, generator: torch.Generator
) -> Samples:
    """Best-of-n: ``n`` samples per prompt from ``ctx.policy``, keeping the one the proxy reward
    ``ctx.reward`` scores highest (the first on ties). This is the method's inference-time spend:
    all n samples, their tokens and n reward calls per prompt go into ``ctx.costs``."""
    samples = respond(ctx.policy, ctx.tokenizer, prompts, suite, generator, ctx.device, n)
    calls_before = ctx.costs.reward_calls
    rewards = ctx.reward(samples.prompts, samples.responses).reshape(len(prompts), n)  # [P, n]
    if ctx.costs.reward_calls == calls_before:  # a RewardModel on ctx.costs counts itself
        ctx.costs.reward_calls += len(samples)
    ctx.costs.samples += len(samples)
    ctx.costs.generated_tokens += int(samples.lengths.sum())
    best = rewards.argmax(dim=1) + torch.arange(len(prompts), device=rewards.device) * n  # [P] rows
    return samples.select(best)


@torch.no_grad()
def policy_kl(policy: Any, reference: Any, samples: Samples, n_boot: int) -> Estimate:
    """``kl_estimate`` on the policy's own samples (log-probs at temperature 1)."""
    logps = token_logps(policy, samples, batch_size=EVAL_BATCH)  # [N, T]
    ref_logps = token_logps(reference, samples, batch_size=EVAL_BATCH)  # [N, T]
    return kl_estimate(logps, ref_logps, samples.response_mask, n_boot, BOOTSTRAP_SEED)


def save_policy(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    """``save_pretrained`` model and tokenizer to ``out_dir/policy`` through ``policy.tmp`` and a
    rename, so a killed run never leaves a half-written ``policy``; returns that directory."""
    final, tmp, old = out_dir / "policy", out_dir / "policy.tmp", out_dir / "policy.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if final.exists():  # a retried run: swap the old copy out, then drop it
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _judges(ctx: TrainContext, suite: Suite) -> dict[str, Judge]:
    """The suite's judges; the proxy judge shares ``ctx.reward``'s model but not its cost counter
    (judging is the harness's spend, not the method's)."""
    from harness.models import load_judges

    reward = ctx.reward
    proxy = None
    if isinstance(reward, RewardModel):
        proxy = RewardModel(reward.model, reward.tokenizer, reward.device, None, reward.batch_size)
    return load_judges(suite, ctx.device, proxy)


def _reference_model(ctx: TrainContext, suite: Suite) -> Any:
    if ctx.reference is not None:
        return ctx.reference
    from harness.models import load_policy, suite_models

    models = suite_models(suite)
    return load_policy(models.reference or models.policy, ctx.device)[0].eval()


def _capability(
    ctx: TrainContext, method: Method, suite: Suite, base: dict[str, TaskScore], out_dir: Path
) -> list[MetricRow]:
    """Capability rows: lm-eval on the saved trained policy; an untrained method's policy IS the
    base model, so its scores are the base's (delta 0)."""
    if not suite.eval.lm_eval.tasks:
        return []
    if method.train is None:
        scores = base
    else:
        scores = run_lm_eval(suite, save_policy(ctx.policy, ctx.tokenizer, out_dir), ctx.device)
    return capability_rows(base, scores, suite.eval.lm_eval.tolerance)


def evaluate_policy(
    ctx: TrainContext,
    method: Method,
    params: Any,
    suite: Suite,
    shared: ReferenceEval | None,
    out_dir: Path,
) -> list[MetricRow]:
    """Every metric row of a finished run (see ``harness/runs.py``), plus ``regression.<task>``.

    ``shared`` is the suite's ``ReferenceEval``; None computes it here (tests, one-off runs)."""
    ctx.policy.eval()
    judges = _judges(ctx, suite)
    reference = _reference_model(ctx, suite)
    ref = (
        shared
        if shared is not None
        else reference_eval(suite, reference, ctx.tokenizer, judges, ctx.device)
    )
    n_boot = suite.eval.bootstrap
    gen = _generator(POLICY_SEED + ctx.seed, ctx.device)
    if isinstance(params, BestOfNParams):
        samples = respond_best_of_n(ctx, ref.prompts, params.n, suite, gen)
        kl = Estimate(best_of_n_kl(params.n), math.nan, math.nan, len(samples))
    else:
        samples = respond(ctx.policy, ctx.tokenizer, ref.prompts, suite, gen, ctx.device)
        kl = policy_kl(ctx.policy, reference, samples, n_boot)
    scores = judge_all(judges, ref.judge_prompts(), samples.responses)
    rows = [
        win_rate(scores[j], ref.scores[j], n_boot, BOOTSTRAP_SEED).row(f"winrate.{j}")
        for j in judges
    ]
    rows += [mean_with_ci(scores[j], n_boot, BOOTSTRAP_SEED).row(f"reward.{j}") for j in judges]
    rows += [
        kl.row("kl"),
        mean_with_ci(samples.lengths, n_boot, BOOTSTRAP_SEED).row("length"),
        MetricRow("distinct_1", distinct_n(samples.responses, 1), n=len(samples)),
        MetricRow("distinct_2", distinct_n(samples.responses, 2), n=len(samples)),
    ]
    return rows + _capability(ctx, method, suite, ref.capability, Path(out_dir))

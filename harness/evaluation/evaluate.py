"""Evaluation of a run's final policy (the protocol: ``docs/protocol.md``).

Everything arrives as objects in an ``EvalSetup`` (judges, reference model, decoding, settings);
nothing here loads a model by name or decides "world or hub". Two steps:

1. ``reference_eval``, the per-suite shared work: k responses per eval prompt from the reference
   (base) policy (``eval.samples_per_prompt``), drawn ONCE per suite with a fixed seed
   (``harness.core.seeds.Stream.REFERENCE``) and scored by every judge, plus the base model's
   lm-eval scores. Every run of the suite is compared against the same ``ReferenceEval``, so each
   win-rate is paired per prompt.
2. ``evaluate_policy``: the run's k responses per prompt (through the method's own ``respond``
   strategy when it has one) judged against the reference's k, a prompt's win-rate over all k x k
   pairs; KL, length, distinct-n, and capability through lm-eval in the run's process
   (``harness.evaluation.capability``). Every judged sample is kept (``Evaluation.samples``), so
   every statistic can be recomputed from the samples later.

Decoding: responses are drawn with the suite's eval decoding; the KL to the reference is always
estimated on samples drawn from the untempered policy (temperature 1, top_p 1), whatever the eval
decoding, since that is the distribution whose KL it is (the same samples when the eval decoding
is untempered).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.files import atomic_folder, write_atomic
from harness.core.seeds import Stream, seed_for
from harness.evaluation import bon, capability
from harness.evaluation.capability import TaskScore
from harness.load import lora
from harness.stats.estimates import Estimate, distinct_n, mean_with_ci, outcomes, sample_index
from harness.suite.resolve import LmEvalSetup
from harness.suite.runs import MetricRow
from harness.suite.schema import EvalDecoding, ModelRef
from methods.base import Method, Responses, TrainContext
from methods.common import token_logps
from methods.generation import HF, Backend
from methods.sampling import SampleRequest, Samples

BOOTSTRAP_SEED = seed_for(Stream.BOOTSTRAP)
SAMPLE_BATCH = 256  # rows per KV-cached generation pass (1.36x 64's tokens/s: harness bench)
EVAL_BATCH = 64  # rows per log-prob forward pass (its logits are [rows, length, vocab])

Judge = Callable[[list[str], list[str]], torch.Tensor]
UNTEMPERED = EvalDecoding(temperature=1.0, top_p=1.0)


@dataclass
class EvalSetup:
    """What evaluating a suite's policies needs, loaded once per run (or per suite)."""

    judges: dict[str, Judge]  # name -> scores (HH prompts, responses) -> [N]
    reference: Any  # the frozen reference (base) policy
    tokenizer: Any  # the policy's tokenizer
    device: torch.device
    prompts: list[str]  # [N] eval prompts as the policy sees them
    hh_prompts: list[str]  # [N] the same as HH text, what the judges score
    clusters: list[str]  # [N] each prompt's cluster (request template / task)
    samples_per_prompt: int  # k answers per prompt, from the policy and from the reference
    decoding: EvalDecoding  # max_new_tokens set
    bootstrap: int  # resamples of every interval
    lm_eval: LmEvalSetup
    base: ModelRef  # the base model lm-eval scores
    generation: Backend = HF  # the backend every answer is drawn through (the run's)


@dataclass
class ReferenceEval:
    """The reference policy's side of every comparison of a suite (JSON file via save/load)."""

    prompts: list[str]  # [N] the eval prompts, as the policy sees them
    responses: list[str]  # [N * k] k reference responses per prompt (row i * k + j)
    scores: dict[str, list[float]]  # judge -> [N * k]
    capability: dict[str, TaskScore]  # task -> the base model's lm-eval score
    hh_prompts: list[str] = field(default_factory=list)  # [N] as HH text; empty: = prompts
    clusters: list[str] = field(default_factory=list)  # [N] each prompt's cluster
    samples_per_prompt: int = 1  # k

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


# --------------------------------------------------------------------------- building blocks


def sampler(setup: EvalSetup, seed: int, decoding: EvalDecoding | None = None) -> Any:
    """``draw(model, prompts, n) -> Samples``: ``n`` responses per prompt (row ``i * n + j``)
    with the eval decoding (or ``decoding``), from a generator seeded with ``seed``, through the
    setup's generation backend."""
    dec = decoding or setup.decoding
    assert setup.decoding.max_new_tokens is not None  # the schema fills it from the budget
    max_new = setup.decoding.max_new_tokens
    generator = torch.Generator(device=setup.device).manual_seed(seed)

    def draw(model: Any, prompts: list[str], n: int) -> Samples:
        return setup.generation.sample(
            model,
            setup.tokenizer,
            SampleRequest(prompts, n, max_new, dec.temperature, dec.top_p, generator, SAMPLE_BATCH),
            setup.device,
        )

    return draw


def judge_all(
    judges: dict[str, Judge], prompts: list[str], responses: list[str]
) -> dict[str, list[float]]:
    """Every judge's scores ``[N]`` of the responses, as lists of floats."""
    return {name: [float(s) for s in judge(prompts, responses)] for name, judge in judges.items()}


def run_lm_eval(lm: LmEvalSetup, model_dir: str | Path, device: torch.device) -> dict[str, Any]:
    """lm-eval scores of the model in ``model_dir`` (or a hub id) on the suite's tasks."""
    return capability.evaluate(
        model_dir,
        lm.tasks,
        lm.include,
        lm.limit,
        lm.batch_size,
        device=str(device),
        trust_remote_code=lm.trust_remote_code,
    )


def base_capability(setup: EvalSetup) -> dict[str, TaskScore]:
    """The base (reference) model's lm-eval scores: from its directory, or its hub id when lm-eval
    loads it as named (no revision, own tokenizer); otherwise from a temporary saved copy."""
    if not setup.lm_eval.tasks:
        return {}
    ref = setup.base
    if Path(ref.path).is_dir() or (ref.revision is None and ref.tokenizer is None):
        return run_lm_eval(setup.lm_eval, ref.path, setup.device)
    with tempfile.TemporaryDirectory(prefix="harness-base-") as tmp:
        saved = save_policy(setup.reference, setup.tokenizer, Path(tmp))
        return run_lm_eval(setup.lm_eval, saved, setup.device)


def reference_eval(setup: EvalSetup) -> ReferenceEval:
    """The suite's shared reference side: one response per eval prompt from the reference
    (seeded from ``Stream.REFERENCE``), every judge's scores, and the base lm-eval scores."""
    k = setup.samples_per_prompt
    samples = sampler(setup, seed_for(Stream.REFERENCE))(
        setup.reference, setup.prompts, k
    )  # [N * k]
    judged = [p for p in setup.hh_prompts for _ in range(k)]
    scores = judge_all(setup.judges, judged, samples.responses)
    capability = base_capability(setup)
    return ReferenceEval(
        setup.prompts,
        samples.responses,
        scores,
        capability,
        setup.hh_prompts,
        setup.clusters,
        k,
    )


def save_policy(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    """``save_pretrained`` model and tokenizer to ``out_dir/policy`` as one folder swap
    (``atomic_folder``), so a killed run never leaves a half-written ``policy`` and a retried one
    replaces it whole; returns that directory. A LoRA policy is saved with its adapters merged: a
    plain model, as lm-eval loads it."""
    final = out_dir / "policy"
    with atomic_folder(final) as tmp:
        model.save_pretrained(tmp, state_dict=lora.merged_state_dict(model))
        tokenizer.save_pretrained(tmp)
    return final


# --------------------------------------------------------------------------- one run


@torch.no_grad()
def kl_terms(policy: Any, reference: Any, samples: Samples) -> np.ndarray:
    """Per response ``[N]``: ``sum_t (logp_t - ref_logp_t)`` on the policy's own untempered
    samples (log-probs at temperature 1); their mean is the Monte-Carlo KL (``kl_estimate``).

    The rows go through the models ordered by response length, then prompt length, so each batch
    of ``EVAL_BATCH`` is cut to few columns (``token_logps`` drops the padding every row of a
    batch shares): on the tiny suite's answers 0.77 of the columns run are real tokens, against
    0.56 as drawn. The terms come back in the samples' order."""
    key = samples.lengths * (samples.prompt_len + 1) + samples.prompt_mask.sum(dim=1)  # [N]
    order = torch.argsort(key.cpu(), stable=True)  # [N]
    by_length = samples.select(order)
    logps = token_logps(policy, by_length, batch_size=EVAL_BATCH)  # [N, T] in that order
    ref_logps = token_logps(reference, by_length, batch_size=EVAL_BATCH)  # [N, T]
    terms = ((logps.float() - ref_logps.float()) * by_length.response_mask).sum(dim=-1)  # [N]
    per_response = torch.empty_like(terms)
    per_response[order.to(terms.device)] = terms  # back in the samples' order
    return per_response.double().cpu().numpy()


def prompt_win_rates(policy: list[float], reference: list[float], k: int) -> np.ndarray:
    """Per prompt ``[N]``: the win-rate of its k policy answers over its k reference answers,
    ``(wins + ties / 2)`` over all k x k pairs (``outcomes``), from scores ``[N * k]`` each
    (row ``i * k + j``). With k = 1 it is the one pair's outcome."""
    ours = np.asarray(policy, dtype=np.float64).reshape(-1, k)  # [N, k]
    theirs = np.asarray(reference, dtype=np.float64).reshape(-1, k)  # [N, k]
    pairs_ours = np.repeat(ours, k, axis=1).ravel()  # [N * k * k] each answer k times
    pairs_theirs = np.tile(theirs, (1, k)).ravel()  # [N * k * k] against each reference answer
    return outcomes(pairs_ours, pairs_theirs).reshape(len(ours), k * k).mean(axis=1)


def _responses(
    ctx: TrainContext, method: Method, params: Any, setup: EvalSetup, prompts: list[str]
) -> Responses:
    """The run's k answers to each of ``prompts`` (row ``i * k + j``): the method's
    inference-time strategy when it has one, else samples of the trained policy."""
    k = setup.samples_per_prompt
    draw = sampler(setup, seed_for(Stream.POLICY, ctx.seed))
    respond = method.respond_fn()
    if respond is not None:
        return respond(ctx, params, [p for p in prompts for _ in range(k)], draw)
    return Responses(draw(ctx.policy, prompts, k))


def answer_kl_terms(
    ctx: TrainContext, setup: EvalSetup, answers: Responses, prompts: list[str]
) -> tuple[np.ndarray | None, Estimate]:
    """Per-answer KL terms (None where they are not of the answers) and the KL row: the
    strategy's closed form when it has one, else Monte Carlo on untempered samples (the answers
    themselves when the eval decoding is untempered, else k fresh untempered samples); 0 for a
    policy that is the reference itself."""
    if answers.kl is not None:
        return None, Estimate(answers.kl, float("nan"), float("nan"), len(answers.samples))
    dec = setup.decoding
    if ctx.policy is setup.reference:  # an untrained variant's policy: every term is exactly 0
        zeros = np.zeros(len(answers.samples))
        return zeros, mean_with_ci(zeros, setup.bootstrap, BOOTSTRAP_SEED)
    if (dec.temperature, dec.top_p) == (1.0, 1.0):
        terms = kl_terms(ctx.policy, setup.reference, answers.samples)
        return terms, mean_with_ci(terms, setup.bootstrap, BOOTSTRAP_SEED)
    draw = sampler(setup, seed_for(Stream.KL, ctx.seed), UNTEMPERED)
    untempered = draw(ctx.policy, prompts, setup.samples_per_prompt)
    terms = kl_terms(ctx.policy, setup.reference, untempered)
    return None, mean_with_ci(terms, setup.bootstrap, BOOTSTRAP_SEED)


def _capability(
    ctx: TrainContext, method: Method, setup: EvalSetup, base: dict[str, TaskScore], out_dir: Path
) -> list[MetricRow]:
    """Capability rows: lm-eval on the saved trained policy; an untrained method's policy IS the
    base model, so its scores are the base's (delta 0)."""
    if not setup.lm_eval.tasks:
        return []
    if not method.trains:
        scores = base
    else:
        saved = save_policy(ctx.policy, ctx.tokenizer, out_dir)
        scores = run_lm_eval(setup.lm_eval, saved, ctx.device)
    capability.write_items(scores, out_dir / capability.ITEMS_FILE)  # every item's result
    return capability.capability_rows(base, scores, setup.lm_eval.tolerance)


@dataclass
class Evaluation:
    """A run's evaluation: its metric rows, every judged sample as columns (one row per eval
    prompt and sample: ``prompt_id, cluster, sample, length, kl, score.<judge>``), and for a
    strategy that answers from a pool the best-of-n curve (``harness.evaluation.bon.curve``'s
    rows)."""

    metrics: list[MetricRow]
    samples: dict[str, list[Any]]
    bon_curve: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # each step's wall time (STEPS)


STEPS = ("answer", "kl", "judge", "capability")
"""The evaluation's steps as ``Evaluation.seconds`` times them: ``answer`` the run's answers
(a strategy's whole inference-time work: a best-of-n pool drawn and proxy-scored), ``kl`` the
KL terms, ``judge`` every judge's scores (and a best-of-n curve), ``capability`` lm-eval."""


def _judged(
    setup: EvalSetup, ref: ReferenceEval, answers: Responses, reward: Any
) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """Every judge's scores of the answers ``[N * k]``, and the best-of-n curve when the
    answers were picked from a pool: then every sample of the pool is judged (the answers'
    scores are read off it; a judge that is the training reward model ``reward`` itself takes
    the pool's proxy scores, already computed) and ``harness.evaluation.bon.curve`` traces n = 1,
    2, 4... from it."""
    k, pool = ref.samples_per_prompt, answers.pool
    judged = [p for p in ref.judge_prompts() for _ in range(k)]
    if pool is None:
        return judge_all(setup.judges, judged, answers.samples.responses), []
    pool_prompts = [p for p in judged for _ in range(pool.n)]
    proxies = {j for j, judge in setup.judges.items() if _same_model(judge, reward)}
    others = {j: judge for j, judge in setup.judges.items() if j not in proxies}
    pooled = judge_all(others, pool_prompts, pool.samples.responses)  # judge -> [N * k * n]
    pooled |= {j: [float(x) for x in pool.proxy] for j in proxies}
    pooled = {j: pooled[j] for j in setup.judges}  # the suite's order
    chosen = pool.chosen.tolist()
    scores = {j: [s[i] for i in chosen] for j, s in pooled.items()}  # judge -> [N * k]
    P, shape = len(ref.prompts), (len(ref.prompts), k, pool.n)
    curve = bon.curve(
        pool.proxy.double().cpu().numpy().reshape(shape),
        {j: np.asarray(s).reshape(shape) for j, s in pooled.items()},
        {j: np.asarray(ref.scores[j]).reshape(P, k) for j in pooled},
        pool.n,
        setup.bootstrap,
        BOOTSTRAP_SEED,
    )
    return scores, curve


def _same_model(judge: Any, reward: Any) -> bool:
    """Whether ``judge`` scores with the very model of the reward function ``reward``."""
    model = getattr(judge, "model", None)
    return model is not None and model is getattr(reward, "model", None)


def evaluate_policy(
    ctx: TrainContext,
    method: Method,
    params: Any,
    setup: EvalSetup,
    shared: ReferenceEval | None,
    out_dir: Path,
    phase: Callable[[str], None] = lambda name: None,
) -> Evaluation:
    """Every metric row of a finished run (see ``harness/suite/runs.py``), plus
    ``regression.<task>``, and every judged sample.

    ``shared`` is the suite's ``ReferenceEval``; None computes it here (tests, one-off runs).
    ``phase("capability")`` is called as the lm-eval tasks start."""
    ctx.policy.eval()
    ref = shared if shared is not None else reference_eval(setup)
    n_boot, k = setup.bootstrap, ref.samples_per_prompt
    clock = _Clock()
    answers = _responses(ctx, method, params, setup, ref.prompts)
    samples = answers.samples  # [N * k]
    clock.lap("answer")
    terms, kl = answer_kl_terms(ctx, setup, answers, ref.prompts)
    clock.lap("kl")
    scores, curve = _judged(setup, ref, answers, ctx.reward)  # judge -> [N * k]; curve or []
    clock.lap("judge")
    rows = [
        mean_with_ci(prompt_win_rates(scores[j], ref.scores[j], k), n_boot, BOOTSTRAP_SEED).row(
            f"winrate.{j}"
        )
        for j in setup.judges
    ]
    rows += [
        mean_with_ci(scores[j], n_boot, BOOTSTRAP_SEED).row(f"reward.{j}") for j in setup.judges
    ]
    rows += [
        kl.row("kl"),
        mean_with_ci(samples.lengths, n_boot, BOOTSTRAP_SEED).row("length"),
        MetricRow("distinct_1", distinct_n(samples.responses, 1), n=len(samples)),
        MetricRow("distinct_2", distinct_n(samples.responses, 2), n=len(samples)),
    ]
    if setup.lm_eval.tasks:
        phase("capability")
    clock.lap("")  # the rows above are not a step
    rows += _capability(ctx, method, setup, ref.capability, Path(out_dir))
    clock.lap("capability")
    columns = {
        **sample_index(len(ref.prompts), k, ref.clusters),
        "length": [int(x) for x in samples.lengths.tolist()],
        "kl": [float(x) for x in terms] if terms is not None else [float("nan")] * len(samples),
        **{f"score.{j}": s for j, s in scores.items()},
    }
    return Evaluation(rows, columns, curve, clock.seconds)


class _Clock:
    """Wall seconds of consecutive steps: ``lap(name)`` ends the step ``name`` (an empty name
    ends an untimed one)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if name:
            self.seconds[name] = now - self._last
        self._last = now


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

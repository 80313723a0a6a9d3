"""One run, start to end: load what the resolved suite names, train the variant, evaluate, return a
``RunResult``.

``execute_run`` is a plain function (the scheduler calls it inside a Ray task; tests call it
directly). It never raises for a failing run: the error and traceback go into the result.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from harness.core.ledger import ledger
from harness.evaluation.checkpoints import CheckpointEval, subset_setup
from harness.evaluation.compute import model_sizes
from harness.evaluation.evaluate import EvalSetup, Evaluation, ReferenceEval, evaluate_policy
from harness.load import lora
from harness.load.device import peak_memory_mb, pick_device
from harness.load.models import (
    SuiteData,
    load_data,
    load_judges,
    load_policy,
    load_reward,
    torch_dtype,
)
from harness.run.provenance import provenance
from harness.suite.checkpoints import checkpoint_rounds
from harness.suite.generation import Generation
from harness.suite.resolve import Resolved
from harness.suite.runs import RunResult, RunSpec
from harness.suite.schema import ModelRef
from harness.world.tasks import pretrain_texts
from methods import REGISTRY
from methods.base import Costs, DivergenceError, Progress, TrainContext
from methods.common import freeze, metered
from methods.distributed import (
    load_shards,
    save_shards,
    shard,
    spread,
    sum_over_workers,
    world,
)
from methods.generation import HF, Backend
from methods.reward import RewardModel

ProgressFn = Callable[[Progress], None]
PhaseFn = Callable[[str], None]


@contextmanager
def open_backend(settings: Generation, model: ModelRef, device: torch.device) -> Iterator[Backend]:
    """The run's generation backend (the suite's ``generation``), closed when the run ends: hf
    holds nothing; vllm starts its engine here, once, from ``model`` (the policy's folder or hub
    id) in the dtype the run loads it in."""
    if settings.backend == "hf":
        yield HF
        return
    from harness.load.vllm import VLLMBackend  # deferred: the optional extra, heavy

    backend = VLLMBackend.start(
        model.path,
        dtype=torch_dtype(model, device),
        device=device,
        revision=model.revision,
        trust_remote_code=model.trust_remote_code,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        cpu_kv_cache_gb=settings.cpu_kv_cache_gb,
    )
    try:
        yield backend
    finally:
        backend.close()


def train_context(
    resolved: Resolved,
    variant: str,
    seed: int,
    device: torch.device,
    costs: Costs,
    progress: ProgressFn,
    generation: Backend = HF,
) -> tuple[TrainContext, SuiteData]:
    """Load the policy, reference, reward model and data the resolved suite names into the
    training context of one run (sampling with the suite's TRAINING decoding, through
    ``generation``); also the data, whose eval prompts the evaluation uses. A variant with
    ``lora`` trains adapters on the policy (``harness.load.lora``), and its reference, when it is
    the base policy, is that policy with the adapters off: no second copy."""
    suite = resolved.suite
    policy, tokenizer = load_policy(resolved.policy, device)
    adapters = suite.variant(variant).lora
    reference = None
    if not resolved.shares_reference:
        reference = freeze(load_policy(resolved.reference, device)[0])
    elif not REGISTRY[suite.variant(variant).method].trains:
        reference = policy  # a variant that trains nothing: its policy is the reference itself
    elif adapters is None:
        reference = freeze(policy)
    if adapters is not None:
        policy, base = lora.attach(policy, adapters)
        reference = base if reference is None else reference
    data = load_data(resolved.data, suite.eval.num_prompts, resolved.policy, tokenizer)
    ctx = TrainContext(
        method=variant,
        policy=policy,
        reference=reference,
        tokenizer=tokenizer,
        reward=load_reward(resolved.reward, device, costs, prompt_map=data.hh_prompts),
        prompts=data.train_prompts,
        preferences=data.preferences,
        budget=resolved.budget,
        decoding=resolved.train_decoding,
        device=device,
        seed=seed,
        costs=costs,
        progress=progress,
        generation=generation,
        pretrain=pretrain_texts(resolved.world_dir),
    )
    return ctx, data


def eval_setup(
    resolved: Resolved,
    reference: Any,
    tokenizer: Any,
    device: torch.device,
    proxy: RewardModel,
    data: SuiteData,
    generation: Backend = HF,
) -> EvalSetup:
    """What the evaluation needs, loaded: every judge (``proxy`` is the training RM, as given)
    and the eval prompts as the policy sees them and as HH text; answers are drawn through
    ``generation``."""
    return EvalSetup(
        judges=load_judges(resolved.judges, device, proxy),
        reference=reference,
        tokenizer=tokenizer,
        device=device,
        prompts=data.eval_prompts,
        hh_prompts=[data.hh_prompts.get(p, p) for p in data.eval_prompts],
        clusters=data.eval_clusters,
        samples_per_prompt=resolved.suite.eval.samples_per_prompt,
        decoding=resolved.eval_decoding,
        bootstrap=resolved.suite.eval.bootstrap,
        lm_eval=resolved.lm_eval,
        base=resolved.reference,
        generation=generation,
    )


SHARDS = "policy.dcp"  # a spread run's trained weights, one file per worker, while gathered


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class RoundLog:
    """Every optimizer step's statistics (``Progress.stats``), kept as their mean per round."""

    def __init__(self) -> None:
        self.steps: dict[int, list[Progress]] = {}

    def add(self, p: Progress) -> None:
        self.steps.setdefault(p.round, []).append(p)

    def rounds(self) -> list[dict[str, float]]:
        """One dict per round: ``round``, ``steps``, ``mean_reward`` and each statistic's mean."""
        out = []
        for round_, steps in sorted(self.steps.items()):
            row: dict[str, float] = {"round": round_, "steps": len(steps)}
            rewards = [p.mean_reward for p in steps if p.mean_reward is not None]
            if rewards:
                row["mean_reward"] = statistics.fmean(rewards)
            for key in dict.fromkeys(k for p in steps for k in p.stats):
                row[key] = statistics.fmean(p.stats[key] for p in steps if key in p.stats)
            out.append(row)
        return out


def gather_policy(
    policy: Any, model: ModelRef, device: torch.device, costs: Costs, folder: Path
) -> Any:
    """After training spread over several workers (every worker calls it): the trained policy
    whole on worker 0 (None on the others), through a distributed checkpoint in ``folder`` that
    each worker writes its shards to and worker 0 reads whole (then removed: the run's policy is
    saved as a model folder where evaluation needs one); the tokens every worker trained on summed
    into ``costs`` (the rest of the costs are the same on every worker: each drew the same
    experience)."""
    save_shards(policy, folder)
    costs.trained_tokens = sum_over_workers(costs.trained_tokens)
    if world()[0] != 0:
        return None
    whole = load_policy(model, device)[0]
    load_shards(whole, folder)
    shutil.rmtree(folder, ignore_errors=True)
    whole.eval()
    return whole


def _train_and_evaluate(
    spec: RunSpec,
    out_dir: Path,
    shared: ReferenceEval | None,
    progress: ProgressFn,
    costs: Costs,
    phase: PhaseFn,
    loaded: dict[str, Any],
    curve: list[dict[str, Any]],
    device: torch.device | None = None,
) -> tuple[Evaluation | None, torch.device]:
    resolved = spec.resolved  # resolved once by the driver: never validated or resolved here
    suite = resolved.suite
    variant = suite.variant(spec.variant)
    method = REGISTRY[spec.method]
    device = device or pick_device(spec.resources.gpus_per_run)
    seed_everything(spec.seed)
    # the run's generation backend, decided once here and handed to training and evaluation
    with open_backend(suite.generation, resolved.policy, device) as generation:
        ctx, data = train_context(
            resolved, spec.variant, spec.seed, device, costs, progress, generation
        )
        loaded["data"] = {slot: report.as_dict() for slot, report in data.reports.items()}
        # judging is the harness's spend, not the method's: the proxy judge is the RM without
        # its cost counter
        assert isinstance(ctx.reward, RewardModel)
        loaded["sizes"] = model_sizes(ctx.policy, ctx.reward.model)
        proxy = ctx.reward.uncharged()
        setup = None
        train = method.train_fn()
        if train is not None and spread():  # what cannot be spread is refused at validation
            ctx.policy = shard(ctx.policy, device)  # FSDP2; the reference stays a whole copy
        if train is not None:
            wanted = checkpoint_rounds(suite.eval.checkpoints, suite.budget.rounds)
            if wanted:  # the judges are needed during training
                setup = eval_setup(
                    resolved, ctx.reference, ctx.tokenizer, device, proxy, data, generation
                )
                subset, ids = subset_setup(setup, suite.eval.checkpoint_prompts)
                ctx.checkpoint = CheckpointEval(ctx, subset, frozenset(wanted), ids, curve)
            phase("training")
            with metered(ctx):  # every forward pass of the policy and reference, into costs
                train(ctx, variant.params)
            if costs.optimizer_steps == 0:  # a result that silently equals the base policy
                raise RuntimeError(
                    f"{spec.variant} took no optimizer step: nothing in its data or samples to "
                    "train on (check its candidates, pairs and the budget)"
                )
            if spread():
                weights = out_dir / SHARDS
                ctx.policy = gather_policy(ctx.policy, resolved.policy, device, costs, weights)
        if world()[0] != 0:  # a run's other workers are done; the first evaluates and reports
            return None, device
        phase("evaluating")
        # otherwise the judges are loaded after training, so they hold no memory while it runs
        if setup is None:
            setup = eval_setup(
                resolved, ctx.reference, ctx.tokenizer, device, proxy, data, generation
            )
        evaluation = evaluate_policy(ctx, method, variant.params, setup, shared, out_dir, phase)
    return evaluation, device


def phase_seconds(
    start: float, began: dict[str, float], steps: dict[str, float]
) -> dict[str, float]:
    """A finished run's wall seconds by phase: ``setup_seconds`` (models and data loaded),
    ``train_seconds``, and the evaluation's steps as ``<step>_seconds``
    (``harness.evaluation.evaluate.STEPS``), from when each phase began (``perf_counter``)."""
    seconds = {"setup_seconds": min(began.values()) - start}  # until the first phase began
    if "training" in began:
        seconds["train_seconds"] = began["evaluating"] - began["training"]
    return seconds | {f"{step}_seconds": value for step, value in steps.items()}


def execute_run(
    spec: RunSpec,
    out_dir: Path,
    shared: ReferenceEval | None = None,
    progress: ProgressFn = lambda p: None,
    attempt: int = 1,
    phase: PhaseFn = lambda name: None,
    device: torch.device | None = None,
) -> RunResult:
    """Train and evaluate one run; a failure becomes a ``failed`` result, never an exception.
    ``progress`` hears every optimizer step, ``phase`` each phase as it starts (``training``,
    ``evaluating``); ``device``: the one to compute on (default: by the suite's resources).

    In a run spread over several workers (``methods.distributed``), every worker calls it and
    trains its share; the first one evaluates, and its result is the run's (the others' hold
    no metrics)."""
    costs = Costs()
    log = RoundLog()
    last: list[Progress] = []

    def track(p: Progress) -> None:
        last[:] = [p]
        log.add(p)
        progress(p)

    started_at = time.time()
    start = time.perf_counter()
    given = device
    device = torch.device("cpu")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    fields: dict[str, Any] = {}
    loaded: dict[str, Any] = {}  # the data loads' reports (provenance) and the models' sizes
    curve: list[
        dict[str, Any]
    ] = []  # the checkpoints' evaluations (harness.evaluation.checkpoints)
    began: dict[str, float] = {}  # each phase's start; its seconds go into the run's costs
    timed: dict[str, float] = {}

    def timed_phase(name: str) -> None:
        began[name] = time.perf_counter()
        phase(name)

    try:
        evaluation, device = _train_and_evaluate(
            spec, out_dir, shared, track, costs, timed_phase, loaded, curve, given
        )
        status = "done"
        if evaluation is not None:
            fields = {"metrics": evaluation.metrics, "samples": evaluation.samples}
            fields["bon_curve"] = evaluation.bon_curve
            timed = phase_seconds(start, began, evaluation.seconds)
    except Exception as exc:  # a failing run is a result, not a crash of the suite
        status = "failed"
        error = f"{type(exc).__name__}: {exc}"
        if last and not isinstance(exc, DivergenceError):
            error += f" ({spec.variant}, after round {last[0].round}, step {last[0].step})"
        fields = {"error": error, "traceback": traceback.format_exc()}
    costs.wall_seconds = time.perf_counter() - start
    costs.peak_memory_mb = peak_memory_mb(device)
    gpus = spec.resources.gpus_per_run
    sizes = loaded.pop("sizes", {})
    loaded["workers"] = world()[1]
    return RunResult.of(
        spec,
        status,
        costs=ledger(costs, sizes) | timed,  # counters, parameter counts, FLOPs, phase seconds
        provenance={
            **provenance(spec.suite_hash, spec.method, gpus, device),
            **loaded,
            "started_at": started_at,
            "finished_at": time.time(),
        },
        attempts=attempt,
        rounds=log.rounds(),
        checkpoints=curve,
        **fields,
    )

"""The contract of an alignment method, checked by running it: the conformance kit.

``check_method`` trains the method three times on the tiny world at a small budget (``BUDGET``),
twice with one seed and once with LoRA adapters, each run built as ``harness run`` builds it
(``harness.run.execute.train_context``) and trained inside the forward meter, and checks:

- ``params``: its params model is strict, typed and documented (``check_params``);
- ``moves``: every trainable parameter gets a non-zero gradient and changes;
- ``reference``: the reference is unchanged and requires no grad;
- ``budget``: the prompts the ledger counts are the budget's, the samples at most
  ``samples_per_prompt`` per prompt, the reward calls at most one per sample plus one per dataset
  response (two a prompt);
- ``seeded``: two runs with one seed end with identical weights, losses and costs;
- ``finite``: it reports at least one optimizer step, every loss finite;
- ``lora``: with LoRA adapters it trains the adapters alone, the base weights unchanged;
- ``charged``: its compute is charged: optimizer steps as reported, trained tokens, and every
  sample drawn through the run's generation backend counted;
- ``decoding``: it samples with the suite's training decoding (a non-default one here) and the
  budget's token limit.

A method that trains nothing (``sft``, ``best_of_n``) has only its params to check; the others
are reported as not applicable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.builder.build import ensure_world
from harness.run.execute import seed_everything, train_context
from harness.suite.resolve import resolve
from harness.suite.schema import Suite
from harness.world.config import WorldConfig
from methods import REGISTRY, Method
from methods.base import Costs, MethodParams, Progress, TrainContext
from methods.common import metered
from methods.generation import Backend
from methods.sampling import SampleRequest, Samples

CHECKS: dict[str, str] = {
    "params": "parameters strict, typed and documented",
    "moves": "every trainable parameter moves",
    "reference": "the reference is unchanged",
    "budget": "the budget is respected (prompts, samples, reward calls)",
    "seeded": "two runs with one seed are identical",
    "finite": "the loss stays finite",
    "lora": "it runs with LoRA (adapters move, base unchanged)",
    "charged": "its compute is charged",
    "decoding": "it samples with the training decoding",
}
"""Each check's name and what it asserts, in the order of the report."""

BUDGET = {"prompts_per_round": 4, "rounds": 2, "samples_per_prompt": 2, "max_new_tokens": 8}
"""The small budget of the checks' runs: a few seconds on a CPU."""

DECODING = {"temperature": 0.9, "top_p": 0.95}
"""The training decoding of the checks' runs: not the default, so a method that samples with a
decoding of its own is seen."""

CARRIER = "dpo"
"""A built-in trained method naming the suite variant the runs' context is built from (its
models, data, budget, decoding and LoRA); the method checked is then trained in that context."""


@dataclass(frozen=True)
class Check:
    """One check's outcome: passed, failed, or not applicable (``passed`` None), and why."""

    name: str
    passed: bool | None
    detail: str

    @property
    def status(self) -> str:
        return {True: "pass", False: "FAIL", None: "n/a"}[self.passed]


@dataclass
class Report:
    """Every check of one method."""

    method: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No check failed."""
        return all(c.passed is not False for c in self.checks)

    @property
    def failed(self) -> list[str]:
        """The names of the failed checks."""
        return [c.name for c in self.checks if c.passed is False]

    def __getitem__(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def summary(self) -> str:
        """One line a check: status, name, detail."""
        return "\n".join(f"{c.status:<4} {c.name:<9} {c.detail}" for c in self.checks)


def check_params(params: type[Any]) -> Check:
    """A params model is strict, typed and documented: a ``MethodParams`` (strict types, unknown
    keys rejected, frozen) whose every field has a type, a help text, and whose defaults
    validate."""
    name = "params"
    if not (isinstance(params, type) and issubclass(params, MethodParams)):
        return Check(name, False, f"{params!r} is not a methods.base.MethodParams subclass")
    config = params.model_config
    if not (config.get("strict") and config.get("extra") == "forbid" and config.get("frozen")):
        return Check(name, False, "model_config must stay strict, extra='forbid', frozen")
    untyped = [k for k, f in params.model_fields.items() if f.annotation in (None, Any)]
    undocumented = [k for k, f in params.model_fields.items() if not f.description]
    if untyped:
        return Check(name, False, f"fields without a type: {', '.join(untyped)}")
    if undocumented:
        return Check(name, False, f"fields without a description: {', '.join(undocumented)}")
    try:
        params()
    except Exception as exc:
        return Check(name, False, f"the defaults do not validate: {exc}")
    return Check(name, True, f"{len(params.model_fields)} fields, strict, each with a help text")


class RecordingBackend:
    """A generation backend passing every draw to ``inner`` and keeping what was asked and
    drawn: the requests and the samples."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.requests: list[SampleRequest] = []
        self.drawn: list[Samples] = []

    def sample(
        self, model: Any, tokenizer: Any, request: SampleRequest, device: torch.device | str
    ) -> Samples:
        self.requests.append(request)
        samples = self.inner.sample(model, tokenizer, request, device)
        self.drawn.append(samples)
        return samples

    def push(self, model: Any) -> None:
        self.inner.push(model)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Trained:
    """What one run of the method left behind."""

    ctx: TrainContext
    before: dict[str, torch.Tensor]  # trainable parameters before training
    after: dict[str, torch.Tensor]  # trainable parameters after
    frozen_before: dict[str, torch.Tensor]  # the policy's frozen parameters before (LoRA base)
    reference_before: dict[str, torch.Tensor]  # the reference's tensors before
    graded: set[str]  # trainable parameters that received a non-zero gradient
    losses: list[float]
    backend: RecordingBackend
    error: str | None = None


def suite_for(lora: bool) -> Suite:
    """The checks' suite: the tiny world, the small budget, the non-default training decoding,
    one variant (``CARRIER``), with LoRA adapters when ``lora``."""
    variant: dict[str, Any] = {"method": CARRIER}
    if lora:
        variant["lora"] = {"r": 4, "alpha": 8}
    raw = {
        "name": "method-check",
        "world": {"seed": 0},
        "methods": [variant],
        "budget": BUDGET,
        "train": {"decoding": DECODING},
        "seeds": [0],
        "eval": {"judges": ["proxy"], "num_prompts": 8},
    }
    return Suite.model_validate(raw, context={"base_dir": Path.cwd()})


def snapshot(tensors: Iterable[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in tensors}


@contextmanager
def gradients_seen(params: dict[str, torch.nn.Parameter], seen: set[str]) -> Iterator[None]:
    """While inside, the names of ``params`` whose gradient is non-zero once accumulated are
    added to ``seen``."""

    def hook(name: str) -> Callable[[torch.Tensor], None]:
        def record(param: torch.Tensor) -> None:
            if param.grad is not None and bool(param.grad.abs().sum() > 0):
                seen.add(name)

        return record

    handles = [p.register_post_accumulate_grad_hook(hook(n)) for n, p in params.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def train_once(method: Method, params: MethodParams, lora: bool) -> Trained:
    """One run of ``method`` on the checks' suite, seed 0, recorded."""
    resolved = resolve(suite_for(lora))
    seed_everything(0)
    losses: list[float] = []

    def progress(p: Progress) -> None:
        losses.append(p.loss)

    ctx, _ = train_context(resolved, CARRIER, 0, torch.device("cpu"), Costs(), progress)
    ctx.method = method.name
    backend = RecordingBackend(ctx.generation)
    ctx.generation = backend
    trainable = {n: p for n, p in ctx.policy.named_parameters() if p.requires_grad}
    before = snapshot((n, p) for n, p in trainable.items())
    frozen = snapshot((n, p) for n, p in ctx.policy.named_parameters() if not p.requires_grad)
    reference = reference_tensors(ctx.reference)
    graded: set[str] = set()
    train = method.train_fn()
    assert train is not None
    error = None
    try:
        with gradients_seen(trainable, graded), metered(ctx):
            train(ctx, params)
    except Exception as exc:  # reported as the failing check, with the error
        error = f"{type(exc).__name__}: {exc}"
    after = snapshot((n, p) for n, p in trainable.items())
    return Trained(ctx, before, after, frozen, reference, graded, losses, backend, error)


def reference_tensors(reference: Any) -> dict[str, torch.Tensor]:
    """The reference's parameters and buffers (nothing for a LoRA ``BaseView``: its weights
    are the policy's frozen ones, compared as such)."""
    if not isinstance(reference, torch.nn.Module):
        return {}
    return snapshot((*reference.named_parameters(), *reference.named_buffers()))


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [n for n, t in before.items() if not torch.equal(t, after[n])]


def names(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_moves(run: Trained) -> Check:
    if not run.before:
        return Check("moves", False, "the policy has no trainable parameter")
    still = [n for n in run.before if n not in changed(run.before, run.after)]
    no_grad = [n for n in run.before if n not in run.graded]
    if no_grad:
        return Check("moves", False, f"no gradient reached {names(no_grad)}")
    if still:
        return Check("moves", False, f"unchanged after training: {names(still)}")
    return Check("moves", True, f"all {len(run.before)} trainable tensors got gradients and moved")


def check_reference(run: Trained) -> Check:
    reference = run.ctx.reference
    if not isinstance(reference, torch.nn.Module):
        return Check("reference", None, "no reference module (checked under lora)")
    grad = [n for n, p in reference.named_parameters() if p.requires_grad]
    if grad:
        return Check("reference", False, f"reference parameters require grad: {names(grad)}")
    moved = changed(run.reference_before, reference_tensors(reference))
    if moved:
        return Check("reference", False, f"the reference changed: {names(moved)}")
    return Check("reference", True, f"{len(run.reference_before)} tensors unchanged")


def check_budget(run: Trained) -> Check:
    b, c = run.ctx.budget, run.ctx.costs
    prompts = b.rounds * b.prompts_per_round
    problems = []
    if c.prompts != prompts:
        problems.append(f"prompts {c.prompts}, the budget's {prompts}")
    if c.samples > prompts * b.samples_per_prompt:
        problems.append(f"samples {c.samples} > {prompts} x {b.samples_per_prompt}")
    if c.reward_calls > c.samples + 2 * prompts:
        problems.append(f"reward calls {c.reward_calls} > samples {c.samples} + 2 x {prompts}")
    if problems:
        return Check("budget", False, "; ".join(problems))
    detail = f"prompts {c.prompts}, samples {c.samples}, reward calls {c.reward_calls}"
    return Check("budget", True, detail)


def check_seeded(first: Trained, second: Trained) -> Check:
    moved = changed(first.after, second.after)
    if moved:
        return Check("seeded", False, f"weights differ between two seed-0 runs: {names(moved)}")
    if first.losses != second.losses:
        return Check("seeded", False, "the losses differ between two seed-0 runs")
    a, b = (costs_of(r.ctx.costs) for r in (first, second))
    if a != b:
        diff = [k for k in a if a[k] != b[k]]
        return Check("seeded", False, f"the costs differ between two seed-0 runs: {names(diff)}")
    return Check("seeded", True, f"identical weights, {len(first.losses)} losses and costs")


def costs_of(costs: Costs) -> dict[str, float]:
    """The counters, without the clock and the memory (which no seed fixes)."""
    counters = dict(vars(costs))
    counters.pop("wall_seconds")
    counters.pop("peak_memory_mb")
    return counters


def check_finite(run: Trained) -> Check:
    if not run.losses:
        return Check("finite", False, "no optimizer step was reported")
    bad = [x for x in run.losses if not math.isfinite(x)]
    if bad:
        return Check("finite", False, f"{len(bad)} of {len(run.losses)} losses not finite")
    return Check("finite", True, f"{len(run.losses)} losses, all finite")


def check_lora(run: Trained) -> Check:
    if run.error is not None:
        return Check("lora", False, f"failed with LoRA: {run.error}")
    moves = check_moves(run)
    if not moves.passed:
        return Check("lora", False, f"adapters: {moves.detail}")
    base = {n: p for n, p in run.ctx.policy.named_parameters() if not p.requires_grad}
    moved = changed(run.frozen_before, snapshot(iter(base.items())))
    if moved:
        return Check("lora", False, f"base weights changed under LoRA: {names(moved)}")
    return Check("lora", True, f"{len(run.before)} adapter tensors moved, base unchanged")


def check_charged(run: Trained) -> Check:
    c = run.ctx.costs
    drawn = sum(len(s) for s in run.backend.drawn)
    tokens = sum(int(s.lengths.sum()) for s in run.backend.drawn)
    problems = []
    if c.optimizer_steps != len(run.losses):
        problems.append(f"{c.optimizer_steps} optimizer steps counted, {len(run.losses)} reported")
    if c.trained_tokens == 0:
        problems.append("no trained token charged")
    if c.samples != drawn or c.generated_tokens != tokens:
        problems.append(
            f"{drawn} samples ({tokens} tokens) drawn, {c.samples} ({c.generated_tokens}) charged"
        )
    if problems:
        return Check("charged", False, "; ".join(problems))
    detail = f"{c.optimizer_steps} steps, {c.trained_tokens} trained and {c.forward_tokens} forward"
    return Check("charged", True, f"{detail} tokens, {c.samples} samples")


def check_decoding(run: Trained) -> Check:
    if not run.backend.requests:
        return Check("decoding", None, "draws no sample")
    want = (DECODING["temperature"], DECODING["top_p"], BUDGET["max_new_tokens"])
    for r in run.backend.requests:
        got = (r.temperature, r.top_p, r.max_new_tokens)
        if got != want:
            detail = f"sampled at (temperature, top_p, max_new_tokens) {got}, not {want}"
            return Check("decoding", False, detail)
    return Check("decoding", True, f"{len(run.backend.requests)} draws at {want}")


@contextmanager
def one_thread() -> Iterator[None]:
    """The tiny world's matmuls run several times faster on one thread than on contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_method(method: str | Method, params: MethodParams | None = None) -> Report:
    """Every check of ``method`` (a registered name, or a ``Method``) with ``params`` (default:
    its defaults), on the tiny world installed or built in the harness's cache
    (``$HARNESS_CACHE``, as ``harness run``). Raises ``KeyError`` for an unknown name; a method
    that raises is a failed check."""
    entry = REGISTRY[method] if isinstance(method, str) else method
    report = Report(entry.name, [check_params(entry.params)])
    if not entry.trains:
        for name in list(CHECKS)[1:]:
            report.checks.append(Check(name, None, "trains nothing"))
        return report
    if params is None:
        params = entry.params()
    ensure_world(WorldConfig(), None, log=lambda line: None)
    with one_thread():
        first = train_once(entry, params, lora=False)
        if first.error is not None:
            for name in list(CHECKS)[1:]:
                report.checks.append(Check(name, False, f"training failed: {first.error}"))
            return report
        second = train_once(entry, params, lora=False)
        lora = train_once(entry, params, lora=True)
    report.checks += [
        check_moves(first),
        check_reference(first),
        check_budget(first),
        check_seeded(first, second),
        check_finite(first),
        check_lora(lora),
        check_charged(first),
        check_decoding(first),
    ]
    return report

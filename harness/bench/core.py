"""``harness bench``: our training loops against TRL's on the same work, in one process.

Rows compared with TRL (our side in ``harness.bench_ours``; TRL's in ``harness.bench_trl``, the
only module that imports ``trl``, an optional extra):

- ``dpo``: ``methods.dpo.train`` on offline pairs vs ``DPOTrainer`` with reference log-probs
  precomputed once (as ours does); a sample is a preference pair.
- ``grpo``: ``methods.grpo.train`` vs ``GRPOTrainer``, the same proxy RM scoring text; a sample
  is a completion. Completions are ``max_new_tokens`` long on both sides (ours samples with no EOS
  token, TRL with ``min_new_tokens``), so both generate the very same number of tokens.
- ``reward_model``: our Bradley–Terry step loop (``harness.world.trainer``'s) vs
  ``RewardTrainer``; a sample is a preference pair.

Our-only rows: generation tokens/s (``methods.common.sample``) and PPO, RRHF, RAFT, PRO samples/s
for a one-round budget.

**Equal work.** Each side counts what it actually did (``Work``): samples; real (non-pad) tokens
through the trained model's forward passes with gradients and through the reference; generated
tokens; reward-model calls; optimizer steps. Token counts come from the same forward hooks on both
sides (``ForwardCounter``), the rest from each side's own books (our ``Costs``, the trainer's
state and generation batches). ``check_equal_work`` raises ``WorkMismatchError`` naming every
count that differs, for every pair of runs, warm-ups included, before any ratio is reported.

**Timing.** ``warmup`` untimed runs, then ``repeats`` timed runs, alternating ours and TRL so load
on the machine falls on both alike, under ``threads`` torch threads; fresh models every run, built
outside the timer. A run's time is what a user waits for: our ``train(ctx, params)``; TRL's
trainer construction (tokenising, precomputing reference log-probs) plus ``train()``. Rows report
the median samples/s and the median steady-state rate (from the end of the first optimizer step
to the end of the last, which leaves set-up out).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from harness.bench_ours import BenchWorld

SEED = 0
DPO_BETA, DPO_LR = 0.1, 5e-5  # learning rates of suites/tiny.yaml
GRPO_BETA, GRPO_LR, GRPO_CLIP = 0.04, 1e-4, 0.2
RM_LR = 1e-3  # harness.world.trainer.RM_LR


@dataclass(frozen=True)
class BenchConfig:
    """Every setting of a bench run; both sides of a row get the same ones."""

    steps: int = 16  # optimizer steps per timed run (DPO, GRPO, RM)
    repeats: int = 5  # timed runs per side
    warmup: int = 1  # untimed runs per side first
    threads: int = 1  # torch threads, both sides
    batch_size: int = 8  # pairs per step (DPO, RM); prompts per step (GRPO and the others)
    group_size: int = 4  # completions per prompt (GRPO num_generations; K of the others)
    max_new_tokens: int = 48  # completion length (GRPO max_completion_length)


class BenchInputError(ValueError):
    """The settings ask for more than the world holds."""


# --------------------------------------------------------------------------- equal work


@dataclass(frozen=True)
class Work:
    """What one run did, counted on its own side."""

    samples: int  # pairs (DPO, RM), completions (GRPO) or generated tokens
    train_tokens: int  # real tokens through the trained model's forward passes with grad
    ref_tokens: int = 0  # real tokens through the frozen reference model
    generated_tokens: int = 0  # completion tokens sampled
    reward_calls: int = 0  # responses scored by the reward model
    optimizer_steps: int = 0


class WorkMismatchError(RuntimeError):
    """Ours and TRL did different work, so their speeds cannot be compared."""

    def __init__(self, row: str, diffs: dict[str, tuple[int, int]]) -> None:
        parts = "; ".join(f"{k}: ours {a:,} vs TRL {b:,}" for k, (a, b) in diffs.items())
        super().__init__(f"bench row '{row}': ours and TRL did different work ({parts})")
        self.row, self.diffs = row, diffs


def check_equal_work(row: str, ours: Work, trl: Work) -> None:
    """Raise ``WorkMismatchError`` naming every count of ``Work`` that differs."""
    diffs = {
        f.name: (getattr(ours, f.name), getattr(trl, f.name))
        for f in fields(Work)
        if getattr(ours, f.name) != getattr(trl, f.name)
    }
    if diffs:
        raise WorkMismatchError(row, diffs)


class ForwardCounter:
    """Counts rows and real tokens (attention-mask ones) of a model's forward calls through a
    forward pre-hook; ``grad_only`` skips calls made without gradients (sampling, old log-probs)."""

    def __init__(self, model: Any, grad_only: bool) -> None:
        self.rows = self.tokens = 0
        self.grad_only = grad_only
        self._handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.grad_only and not torch.is_grad_enabled():
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        self.rows += int(ids.shape[0])
        self.tokens += int(mask.sum()) if mask is not None else int(ids.numel())

    def close(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- timing


class StepClock:
    """Seconds since ``start`` at the end of each optimizer step."""

    def __init__(self) -> None:
        self.t0, self.ends = time.perf_counter(), list[float]()

    def start(self) -> None:
        self.t0, self.ends = time.perf_counter(), []

    def tick(self, *_: Any) -> None:
        self.ends.append(time.perf_counter() - self.t0)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


@dataclass(frozen=True)
class Run:
    """One timed run of one side."""

    seconds: float
    step_ends: list[float]
    work: Work

    @property
    def rate(self) -> float:
        return self.work.samples / self.seconds

    @property
    def steady_rate(self) -> float | None:
        """Samples/s from the end of the first optimizer step to the end of the last."""
        n = len(self.step_ends)
        span = self.step_ends[-1] - self.step_ends[0] if n > 1 else 0.0
        return self.work.samples * (n - 1) / n / span if span > 0 else None


@dataclass
class Side:
    """One side's timed runs, summarised by medians."""

    runs: list[Run]

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def steady_rate(self) -> float | None:
        rates = [r.steady_rate for r in self.runs if r.steady_rate is not None]
        return statistics.median(rates) if rates else None

    def summary(self) -> dict[str, Any]:
        return {
            "median_per_s": self.rate,
            "median_steady_per_s": self.steady_rate,
            "seconds": [r.seconds for r in self.runs],
            "work": asdict(self.runs[0].work),
        }


@dataclass
class Row:
    name: str
    unit: str  # what a sample is: pairs, completions, tokens, samples
    ours: Side | None = None
    trl: Side | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours.rate / self.trl.rate if self.ours and self.trl else None

    @property
    def steady_ratio(self) -> float | None:
        a = self.ours.steady_rate if self.ours else None
        b = self.trl.steady_rate if self.trl else None
        return a / b if a and b else None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "ours": self.ours.summary() if self.ours else None,
            "trl": self.trl.summary() if self.trl else None,
            "ratio": self.ratio,
            "steady_ratio": self.steady_ratio,
            "note": self.note,
        }


Runner = Callable[["BenchWorld", BenchConfig], Run]


def time_row(
    name: str, unit: str, ours: Runner, trl: Runner | None, world: BenchWorld, cfg: BenchConfig
) -> Row:
    """Warm-ups, then timed runs, ours and TRL alternating, equal work checked on every pair.
    A TRL run that fails (e.g. an incompatible TRL version) leaves our side and a note."""
    row, ours_runs, trl_runs = Row(name, unit), list[Run](), list[Run]()
    for i in range(cfg.warmup + cfg.repeats):
        torch.set_num_threads(cfg.threads)
        mine = ours(world, cfg)
        theirs = None
        if trl is not None:
            try:
                theirs = trl(world, cfg)
            except Exception as exc:
                row.note, trl = f"TRL failed: {type(exc).__name__}: {exc}", None
        if theirs is not None:
            check_equal_work(name, mine.work, theirs.work)
        if i >= cfg.warmup:
            ours_runs.append(mine)
            trl_runs += [theirs] if theirs is not None else []
    row.ours = Side(ours_runs)
    row.trl = Side(trl_runs) if trl is not None and trl_runs else None
    return row


@contextmanager
def quiet() -> Iterator[None]:
    """No progress bars, info logs or warnings from transformers, datasets and TRL (restored)."""
    import datasets
    from transformers.utils import logging as hf_logging

    level, hf_bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    bars = datasets.is_progress_bar_enabled()
    trl_logger = logging.getLogger("trl")
    trl_level, tqdm_env = trl_logger.level, os.environ.get("TQDM_DISABLE")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    trl_logger.setLevel(logging.ERROR)
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(level)
        if hf_bars:
            hf_logging.enable_progress_bar()
        if bars:
            datasets.enable_progress_bars()
        trl_logger.setLevel(trl_level)
        if tqdm_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = tqdm_env


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Every row of the bench; the report as a JSON-able dict."""
    from harness import bench_ours, bench_trl

    previous = torch.get_num_threads()
    load_before = os.getloadavg()
    trl_missing = bench_trl.missing()
    trl_runners = bench_trl.RUNNERS if trl_missing is None else {}
    rows = []
    try:
        with quiet():
            world = bench_ours.load_world()
            for name, (unit, ours) in bench_ours.ROWS.items():
                compared = name in bench_trl.RUNNERS
                log(f"bench {name}{' vs TRL' if compared and not trl_missing else ''} ...")
                row = time_row(name, unit, ours, trl_runners.get(name), world, cfg)
                row.note = row.note or (trl_missing or "" if compared else "")
                rows.append(row)
    finally:
        torch.set_num_threads(previous)
    return {
        "config": asdict(cfg),
        "environment": environment(cfg, load_before, trl_missing),
        "rows": [r.summary() for r in rows],
    }


def environment(
    cfg: BenchConfig, load_before: tuple[float, float, float], trl_missing: str | None
) -> dict[str, Any]:
    """How the numbers were taken: threads, CPU, load, package versions, git commit."""
    from importlib.metadata import PackageNotFoundError, version

    from harness.execute import git_commit

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch_threads": cfg.threads,
        "cpu_affinity": affinity,
        "cpu_count": os.cpu_count(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "packages": {p: ver(p) for p in ("torch", "transformers", "trl", "accelerate", "datasets")},
        "trl_missing": trl_missing,
        "python": platform.python_version(),
        "host": platform.node(),
        "git_commit": git_commit(),
    }


# --------------------------------------------------------------------------- output

HEADERS = ["bench", "unit", "ours/s", "TRL/s", "ours/TRL", "steady", "samples", "tokens", "note"]


def _fmt(x: float | None, spec: str = ",.1f") -> str:
    return "-" if x is None else format(x, spec)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The report's rows as table cells, in ``HEADERS`` order."""
    cells = []
    for row in report["rows"]:
        ours, trl = row["ours"], row["trl"]
        work = ours["work"] if ours else {}
        cells.append(
            [
                row["name"],
                row["unit"],
                _fmt(ours and ours["median_per_s"]),
                _fmt(trl and trl["median_per_s"]),
                _fmt(row["ratio"], ".2f"),
                _fmt(row["steady_ratio"], ".2f"),
                _fmt(work.get("samples"), ",d"),
                _fmt(work.get("train_tokens") or work.get("generated_tokens"), ",d"),
                row["note"],
            ]
        )
    return cells


def markdown(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    lines = [
        "# harness bench: ours vs TRL",
        "",
        f"Median of {cfg['repeats']} timed runs after {cfg['warmup']} warm-up(s); "
        f"{cfg['steps']} optimizer steps, batch size {cfg['batch_size']}, group size "
        f"{cfg['group_size']}, {cfg['max_new_tokens']} new tokens; torch threads "
        f"{env['torch_threads']}; load average {env['load_average_before'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after; "
        f"{env['trl_missing'] or 'TRL ' + str(env['packages'].get('trl'))}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table_rows(report)]
    lines += [
        "",
        "ours/TRL: ratio of median samples/s, set-up included (TRL: trainer construction + "
        "train()). steady: the same from the end of the first optimizer step to the last. "
        "samples / tokens: the work of one run (tokens through the trained model with "
        "gradients, or generated), equal on both sides (checked).",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``bench.json`` and ``bench.md`` under ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "bench.json", out / "bench.md"
    _atomic_write(paths[0], json.dumps(report, indent=2) + "\n")
    _atomic_write(paths[1], markdown(report))
    return paths


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Capability evaluation through lm-eval, the only module that imports ``lm_eval``.

lm-eval runs in the calling process: a run's Ray worker (or the process that builds a world).
A child process per run cost about 5 s of imports on the tiny world, more than lm-eval's work
(0.6 s); a worker imports lm-eval once and keeps it for every run it executes. Its output (logs,
progress bars) is captured, not printed into the suite's console, and shown in the error when
lm-eval fails. Works offline on local task folders (``TaskManager(include_path=...)``) and local
model directories.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.files import write_atomic
from harness.core.rules import is_regression
from harness.stats import items as item_stats
from harness.stats.estimates import Z95, Estimate
from harness.suite.bounds import TASK_NAME
from harness.suite.runs import MetricRow

ITEMS_FILE = "capability_items.jsonl"  # in a run's folder: every item's result
ACC, BITS_PER_BYTE = "acc", "bits_per_byte"  # the two kinds of probe: right or wrong; bits


@dataclass(frozen=True)
class TaskScore:
    """One model's score on one lm-eval task, with every item's result (``log_samples``).

    ``acc`` is the task's score: the mean accuracy over its items, or for a likelihood task
    (``metric`` bits per byte) the mean of its documents' bits per byte (lower is better)."""

    task: str
    acc: float
    stderr: float
    n: int
    items: list[float] = field(
        default_factory=list
    )  # [n] each item's accuracy (or bits), by doc id
    ids: list[str] = field(default_factory=list)  # [n] each item's id (its doc id without one)
    strata: list[str] = field(default_factory=list)  # [n] each item's stratum ("" without one)
    metric: str = ACC


class CapabilityError(RuntimeError):
    """lm-eval failed; the message holds the error and the tail of its output."""


# an lm-eval task (or group) name, as the suite schema allows it: never an option or a path


def evaluate(
    model_dir: str | Path,
    tasks: list[str],
    include_path: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> dict[str, TaskScore]:
    """Accuracy of the model in ``model_dir`` (or a hub id) on each of ``tasks``, in this
    process: local tasks (all in ``include_path``) through ``batched_lm``, lm-eval's own
    (hub) tasks through its ``hf`` model. Tasks must match ``TASK_NAME`` (``ValueError``
    otherwise); any failure of lm-eval is a ``CapabilityError`` naming the model and tasks.

    lm-eval seeds no global generator here (its seeds are passed as None): a run's own random
    state is left as it was."""
    if not tasks:
        return {}
    bad = [t for t in tasks if not TASK_NAME.fullmatch(t)]
    if bad:
        raise ValueError(f"not lm-eval task names: {', '.join(map(repr, bad))}")
    import lm_eval  # deferred: about 3 s to import, needed only here

    captured = io.StringIO()
    quiet = logging.getLogger("lm_eval")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
            _without_env_info(),
        ):
            manager = task_manager(str(include_path) if include_path else None, tasks)
            local = include_path is not None and all(
                (Path(include_path) / f"{task}.yaml").is_file() for task in tasks
            )
            out = lm_eval.simple_evaluate(
                model=batched_lm(model_dir, device, trust_remote_code) if local else "hf",
                model_args={
                    "pretrained": str(model_dir),
                    "dtype": "float32",
                    "device": device,
                    "trust_remote_code": trust_remote_code,
                },
                tasks=list(tasks),
                task_manager=manager,
                batch_size=batch_size,
                limit=limit,
                log_samples=True,  # each item's accuracy: base and policy are compared item by item
                random_seed=None,
                numpy_random_seed=None,
                torch_random_seed=None,
            )
            if out is None:
                raise RuntimeError("lm-eval returned no results")
            return {task: _score(out, task) for task in tasks}
    except Exception as exc:
        tail = "\n".join(captured.getvalue().strip().splitlines()[-15:])
        detail = f"{type(exc).__name__}: {exc}" + (f"\n{tail}" if tail else "")
        raise CapabilityError(
            f"lm-eval failed on {model_dir} for tasks {tasks}:\n{detail}"
        ) from exc
    finally:
        quiet.setLevel(level)
        if device.startswith("cuda"):  # the model lm-eval loaded: its memory back for the run
            gc.collect()  # (on CPU it is freed as it goes; a full collection cost 0.2 s a run)
            torch.cuda.empty_cache()


def batched_lm(
    model_dir: str | Path, device: str, trust_remote_code: bool, batch_tokens: int = 16384
) -> Any:
    """An lm-eval ``LM`` scoring the world's tasks in few batched passes: lm-eval's ``hf`` model
    tokenises and runs every choice of every item on its own (most of the time its evaluation of a
    tiny model takes). Here the texts are tokenised in one call, each item's choices (the requests
    sharing a context) go through the model in one batch, with other items' choices up to
    ``batch_tokens`` padded tokens per pass, and a document's rolling likelihood is that of all its
    tokens after an end-of-sequence token (``loglikelihood_rolling``, one window: the world's
    documents are shorter than the model's context)."""
    from lm_eval.api.model import LM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, trust_remote_code=trust_remote_code
    )
    model.to(device).eval()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def score(pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log-likelihood of the continuation, whether it is the greedy one) per
        (context ids, continuation ids), in order; pairs sharing a context are batched together."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, _) in enumerate(pairs):
            groups.setdefault(tuple(ctx), []).append(i)
        order = sorted(groups.values(), key=lambda g: len(pairs[g[0]][0]))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        batch: list[int] = []
        for k, group in enumerate(order):
            batch += group
            width = max(len(pairs[i][0]) + len(pairs[i][1]) for i in batch)
            last = k == len(order) - 1
            if last or (len(batch) + len(order[k + 1])) * width > batch_tokens:
                for i, result in zip(batch, run(pairs, batch), strict=True):
                    out[i] = result
                batch = []
        return out

    def run(pairs: list[tuple[list[int], list[int]]], rows: list[int]) -> list[tuple[float, bool]]:
        """``score``'s results for ``pairs[rows]``, in one forward pass: left-padded, so that every
        continuation ends at the last position and only the last ``keep`` positions' logits are
        computed (``logits_to_keep``)."""
        seqs = [pairs[i][0] + pairs[i][1] for i in rows]
        width = max(len(x) for x in seqs)
        keep = max(len(pairs[i][1]) for i in rows) + 1
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)  # [B, T] left-padded
        mask = torch.zeros((len(seqs), width), dtype=torch.long)  # [B, T]
        for r, x in enumerate(seqs):
            ids[r, width - len(x) :] = torch.tensor(x)
            mask[r, width - len(x) :] = 1
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)  # [B, T] each row's from 0
        with torch.no_grad():
            logits = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=position_ids.to(device),
                logits_to_keep=keep,
            ).logits.float()  # [B, keep, V]: positions width - keep .. width - 1
        results = []
        for r, i in enumerate(rows):
            cont = torch.tensor(pairs[i][1])  # [C]
            logps = logits[r, keep - 1 - len(cont) : keep - 1].log_softmax(dim=-1).cpu()  # [C, V]
            total = float(logps.gather(1, cont[:, None]).sum())
            results.append((total, bool((logps.argmax(dim=1) == cont).all())))
        return results

    class BatchedLM(LM):
        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            contexts = [r.args[0] for r in requests]
            wholes = [r.args[0] + r.args[1] for r in requests]
            ctx_ids = tokenizer(contexts, add_special_tokens=False)["input_ids"]
            whole_ids = tokenizer(wholes, add_special_tokens=False)["input_ids"]
            return score(
                [(c or [eos], w[len(c) :]) for c, w in zip(ctx_ids, whole_ids, strict=True)]
            )

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            ids = tokenizer([r.args[0] for r in requests], add_special_tokens=False)["input_ids"]
            return [ll for ll, _ in score([([eos], x) for x in ids])]

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            raise NotImplementedError("the world's tasks score likelihoods; none generates")

    lm = BatchedLM()
    lm.tokenizer = tokenizer
    return lm


@contextlib.contextmanager
def _without_env_info() -> Iterator[None]:
    """lm-eval's record of the environment left out: it lists the installed packages in a
    subprocess (``pip list``, seconds per call, most of a tiny model's evaluation), and the run
    records its own provenance."""
    from lm_eval import evaluator

    saved = evaluator.add_env_info
    evaluator.add_env_info = lambda results: None
    try:
        yield
    finally:
        evaluator.add_env_info = saved


def _score(out: dict[str, Any], task: str) -> TaskScore:
    """One task's ``TaskScore`` from ``simple_evaluate``'s output (``log_samples`` on): each
    item's accuracy, or for a ``loglikelihood_rolling`` task its bits per byte
    (``-loglikelihood / bytes / ln 2``), with the item's ``id`` and ``stratum`` where its document
    names them."""
    samples = sorted(out.get("samples", {}).get(task, []), key=lambda s: s["doc_id"])
    if not samples:
        raise RuntimeError(f"lm-eval returned no items for task '{task}'")
    metric = BITS_PER_BYTE if BITS_PER_BYTE in samples[0] else ACC
    if metric == BITS_PER_BYTE:
        items = [-s[metric][0] / max(s[metric][1], 1) / math.log(2) for s in samples]
    else:
        items = [float(s[ACC]) for s in samples]
    docs = [s.get("doc") if isinstance(s.get("doc"), dict) else {} for s in samples]
    values = np.asarray(items, dtype=np.float64)  # [n]
    n = values.size
    return TaskScore(
        task=task,
        acc=float(values.mean()),
        stderr=float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        n=n,
        items=[float(v) for v in values],
        ids=[str(d.get("id", s["doc_id"])) for d, s in zip(docs, samples, strict=True)],
        strata=[str(d.get("stratum", "")) for d in docs],
        metric=metric,
    )


def task_manager(include_path: str | None, tasks: list[str]) -> Any:
    """lm-eval's task index: only ``include_path``'s tasks when they hold every task asked for,
    else lm-eval's built-in tasks as well. Indexing the built-in tasks reads some 26,000 YAML
    files: most of the time a tiny model's whole evaluation takes."""
    from lm_eval.tasks import TaskManager

    if include_path:
        local = TaskManager(include_path=include_path, include_defaults=False)
        if all(task in local.all_tasks for task in tasks):
            return local
        return TaskManager(include_path=include_path)
    return TaskManager()


def paired_delta(base: TaskScore, policy: TaskScore) -> Estimate:
    """``policy - base`` on a task, paired by item id (``harness.stats.items``); for a likelihood
    task, ``base - policy`` bits per byte (the bits saved), so that a loss is negative as for
    accuracy. Without per-item results: as if the two were independent."""
    if base.items and policy.items:
        ids = base.ids or [str(i) for i in range(len(base.items))]
        own = policy.ids or [str(i) for i in range(len(policy.items))]
        b, p = item_stats.pair(ids, base.items, own, policy.items)
        strata = policy.strata or [""] * len(own)
        if policy.metric == BITS_PER_BYTE:
            return item_stats.paired_delta(p, b, strata, binary=False)
        return item_stats.paired_delta(b, p, strata, binary=True)
    delta = policy.acc - base.acc
    se = math.sqrt(policy.stderr**2 + base.stderr**2)
    if policy.metric == BITS_PER_BYTE:
        delta = -delta
    return Estimate(delta, delta - Z95 * se, delta + Z95 * se, policy.n)


def capability_rows(
    base: dict[str, TaskScore], policy: dict[str, TaskScore], tolerance: float
) -> list[MetricRow]:
    """Per task of ``policy``: its score, ``capability_delta.<task>`` (``paired_delta``) and
    ``regression.<task>`` (1.0 or 0.0). The score is ``capability.<task>`` (accuracy +- 1.96
    stderr) or, for a likelihood task, ``bits_per_byte.<task>``.

    Regression (``harness.core.rules.is_regression``, the rule of the leaderboard and the gate): the
    drop ``-delta`` is larger than the tolerance and the delta's interval lies below 0.
    """
    rows: list[MetricRow] = []
    for task, p in policy.items():
        if task not in base:
            raise ValueError(f"no base score for task '{task}' (base has {', '.join(base)})")
        delta = paired_delta(base[task], p)
        score = "bits_per_byte" if p.metric == BITS_PER_BYTE else "capability"
        rows += [
            Estimate(p.acc, p.acc - Z95 * p.stderr, p.acc + Z95 * p.stderr, p.n).row(
                f"{score}.{task}"
            ),
            delta.row(f"capability_delta.{task}"),
            MetricRow(
                f"regression.{task}",
                float(is_regression(0.0, delta.value, delta.ci_high, tolerance)),
                n=p.n,
            ),
        ]
    return rows


def write_items(scores: dict[str, TaskScore], path: Path) -> None:
    """Every item's result of a run, one JSON line each: task, id, stratum, metric, value."""
    lines = [
        json.dumps(
            {"task": t, "id": i, "stratum": st, "metric": s.metric, "value": v}, sort_keys=True
        )
        for t, s in scores.items()
        for i, st, v in zip(
            s.ids or map(str, range(len(s.items))),
            s.strata or [""] * len(s.items),
            s.items,
            strict=True,
        )
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(line + "\n" for line in lines))

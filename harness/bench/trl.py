"""TRL's side of ``harness bench``: the only module that imports ``trl`` (an optional extra,
``pip install -e .[bench]``), and only inside its functions.

Each runner mirrors one of ours in ``harness.bench.ours`` (same data, batch size, sequence lengths,
hyperparameters, seed and threads) and counts its ``Work`` with the same forward hooks, plus what
only TRL knows (its optimizer steps, the completions it generated). Settings that would change the
work against ours are pinned: no gradient checkpointing, float32 (no bf16 autocast), no logging,
evaluation or saving, a constant learning rate; everything else is TRL's default.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from harness.bench.config import (
    DPO_BETA,
    DPO_LR,
    GRPO_BETA,
    GRPO_CLIP,
    GRPO_LR,
    RM_LR,
    SEED,
    BenchConfig,
    Work,
)
from harness.bench.core import ForwardCounter, Run, StepClock, quiet
from harness.bench.world import BenchWorld, Runner, rm_pairs, take
from harness.builder import trainer as world_trainer
from methods.base import Costs
from methods.common import freeze
from methods.reward import RewardModel

INSTALL_HINT = "TRL missing: pip install -e .[bench]"


def missing() -> str | None:
    """``None`` when TRL can be imported, else what to do about it."""
    try:
        import trl  # noqa: F401  (deferred: trl is an optional extra)
    except ImportError:
        return INSTALL_HINT
    return None


def _args(cfg: BenchConfig, out: str, batch_size: int) -> dict[str, Any]:
    """``TrainingArguments`` shared by every runner."""
    return dict(
        output_dir=out,
        per_device_train_batch_size=batch_size,
        max_steps=cfg.steps,
        use_cpu=True,
        report_to=[],
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        gradient_checkpointing=False,
        bf16=False,
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=SEED,
    )


def _ticks(clock: StepClock) -> Any:
    """A ``TrainerCallback`` ticking ``clock`` at the end of every optimizer step."""

    class Ticks(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.tick()

    return Ticks()


def _train(make: Callable[[list[Any]], Any], model: Any, ref: Any | None) -> Run:
    """Build the trainer with ``make(callbacks)`` and train it, timing both; forward counters on
    ``model`` (with gradients) and on ``ref`` (or the trainer's own ``ref_model``)."""
    clock = StepClock()
    policy = ForwardCounter(model, grad_only=True)
    ref_counter = ForwardCounter(ref, grad_only=False) if ref is not None else None
    try:
        clock.start()
        trainer = make([_ticks(clock)])
        trainer.remove_callback(PrinterCallback)
        if ref_counter is None and getattr(trainer, "ref_model", None) is not None:
            ref_counter = ForwardCounter(trainer.ref_model, grad_only=False)
        trainer.train()
        seconds = clock.elapsed()
    finally:
        policy.close()
        if ref_counter is not None:
            ref_counter.close()
    work = Work(
        samples=policy.rows // 2,  # pair rows; GRPO replaces it with its completions
        train_tokens=policy.tokens,
        ref_tokens=ref_counter.tokens if ref_counter is not None else 0,
        optimizer_steps=trainer.state.global_step,
    )
    return Run(seconds, clock.ends, work)


def trl_dpo(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``DPOTrainer`` on the pairs ``ours_dpo`` trains on, reference log-probs precomputed once."""
    from datasets import Dataset  # deferred: datasets (heavy) and trl (optional)
    from trl import DPOConfig, DPOTrainer

    pairs = take(world.pairs, cfg.steps * cfg.batch_size, "preference pairs")
    data = Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    )
    model, ref = copy.deepcopy(world.policy), freeze(world.policy)
    tokenizer = copy.deepcopy(world.tokenizer)
    with quiet(), tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            **_args(cfg, out, cfg.batch_size),
            learning_rate=DPO_LR,
            beta=DPO_BETA,
            precompute_ref_log_probs=True,
            max_length=None,  # ours does not truncate
        )
        return _train(
            lambda callbacks: DPOTrainer(
                model=model,
                ref_model=ref,
                args=args,
                train_dataset=data,
                processing_class=tokenizer,
                callbacks=callbacks,
            ),
            model,
            ref,
        )


def trl_grpo(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``GRPOTrainer`` on the prompts ``ours_grpo`` trains on, scored by the same proxy RM
    (our ``RewardModel`` as a reward function); completions of exactly ``max_new_tokens``."""
    from datasets import Dataset  # deferred: datasets (heavy) and trl (optional)
    from trl import GRPOConfig, GRPOTrainer

    prompts = take(world.prompts, cfg.steps * cfg.batch_size, "train prompts")
    data = Dataset.from_list([{"prompt": p} for p in prompts])
    scorer = RewardModel(world.scorer, world.rm_tokenizer, "cpu", Costs())

    def proxy_rm(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float | None]:
        return [float(r) for r in scorer(prompts, completions)]

    model, tokenizer = copy.deepcopy(world.policy), copy.deepcopy(world.tokenizer)
    generated = {"rows": 0, "tokens": 0}
    with quiet(), tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            **_args(cfg, out, cfg.batch_size * cfg.group_size),  # completions per step
            learning_rate=GRPO_LR,
            beta=GRPO_BETA,
            epsilon=GRPO_CLIP,
            num_generations=cfg.group_size,
            num_iterations=1,
            max_completion_length=cfg.max_new_tokens,
            generation_kwargs={"min_new_tokens": cfg.max_new_tokens},
            mask_truncated_completions=False,  # every completion is cut at max_new_tokens
            temperature=1.0,
            top_p=1.0,
            loss_type="grpo",  # ours: mean over each sequence's tokens, then over sequences
            scale_rewards="group",
        )

        def make(callbacks: list[Any]) -> Any:
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=proxy_rm,
                args=args,
                train_dataset=data,
                processing_class=tokenizer,
                callbacks=callbacks,
            )
            _count_generations(trainer, generated)
            return trainer

        run = _train(make, model, None)
    work = dataclasses.replace(
        run.work,
        samples=generated["rows"],
        generated_tokens=generated["tokens"],
        reward_calls=scorer.costs.reward_calls,
    )
    return Run(run.seconds, run.step_ends, work)


def _count_generations(trainer: Any, generated: dict[str, int]) -> None:
    """Count the completions (and their real tokens) of every generation batch."""
    inner = trainer._generate_and_score_completions

    def counted(inputs: Any) -> Any:
        batch = inner(inputs)
        mask = batch["completion_mask"]  # [N, T]
        generated["rows"] += int(mask.shape[0])
        generated["tokens"] += int(mask.sum())
        return batch

    trainer._generate_and_score_completions = counted


def trl_rm(world: BenchWorld, cfg: BenchConfig) -> Run:
    """``RewardTrainer`` on the pairs ``ours_rm`` trains on, truncated alike."""
    from datasets import Dataset  # deferred: datasets (heavy) and trl (optional)
    from trl import RewardConfig, RewardTrainer

    data = Dataset.from_list(rm_pairs(world, cfg.steps * cfg.batch_size))
    model, tokenizer = copy.deepcopy(world.rm_base), copy.deepcopy(world.rm_tokenizer)
    with quiet(), tempfile.TemporaryDirectory() as out:
        args = RewardConfig(
            **_args(cfg, out, cfg.batch_size),
            learning_rate=RM_LR,
            max_length=world_trainer.MAX_LEN,
        )
        return _train(
            lambda callbacks: RewardTrainer(
                model=model,
                args=args,
                train_dataset=data,
                processing_class=tokenizer,
                callbacks=callbacks,
            ),
            model,
            None,
        )


RUNNERS: dict[str, Runner] = {
    "dpo": trl_dpo,
    "grpo": trl_grpo,
    "reward_model": trl_rm,
}

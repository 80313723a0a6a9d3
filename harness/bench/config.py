"""What a bench run is asked for and what counts as equal work: the settings (``BenchConfig``),
the counts each side keeps (``Work``) and the check that both sides did the same. No torch: the
command line reads these before deciding to run anything."""

from __future__ import annotations

from dataclasses import dataclass, fields

SEED = 0
DPO_BETA, DPO_LR = 0.1, 5e-5  # learning rates of suites/tiny.yaml
GRPO_BETA, GRPO_LR, GRPO_CLIP = 0.04, 1e-4, 0.2


RM_LR = 1e-3  # harness.builder.trainer.RM_LR


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

"""Reward models as text scorers: a sequence-classification RM scores ``prompt + response`` text
with its own tokenizer, so policy and RM may tokenise differently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from methods.base import Costs
from methods.sampling import pad_rows


def _ensure_pad(reward_model: Any, reward_tokenizer: Any) -> None:
    # sequence classifiers pool at the last non-pad token only when the config knows the pad id
    if reward_tokenizer.pad_token_id is None:
        reward_tokenizer.pad_token = reward_tokenizer.eos_token
    if getattr(reward_model.config, "pad_token_id", None) is None:
        reward_model.config.pad_token_id = reward_tokenizer.pad_token_id


@torch.no_grad()
def score_text(
    reward_model: Any,
    reward_tokenizer: Any,
    prompts: list[str],
    responses: list[str],
    device: torch.device | str,
    batch_size: int = 32,
    max_length: int | None = None,
    costs: Costs | None = None,
) -> torch.Tensor:
    """Reward ``[N]`` (float32, CPU) of each ``prompt + response`` text under a sequence-
    classification RM, re-tokenised with the RM's own tokenizer (right padding; the score is the
    one at the last non-pad token). The tokens scored (after truncation, padding not counted)
    go into ``costs.reward_tokens`` when ``costs`` is given."""
    _ensure_pad(reward_model, reward_tokenizer)
    texts = [p + r for p, r in zip(prompts, responses, strict=True)]
    if not texts:
        return torch.zeros(0)
    max_length = max_length or context_length(reward_model, reward_tokenizer)
    side, reward_tokenizer.truncation_side = reward_tokenizer.truncation_side, "left"
    try:  # tokenised once, from the left: the response end is kept
        rows = reward_tokenizer(texts, truncation=max_length is not None, max_length=max_length)[
            "input_ids"
        ]
    finally:
        reward_tokenizer.truncation_side = side
    # scored in batches of similar length (shortest first), so little of a batch is padding
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    scores = torch.zeros(len(rows))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        ids, mask = pad_rows(
            [rows[i] for i in index], reward_tokenizer.pad_token_id, device, left=False
        )
        if costs is not None:
            costs.reward_tokens += int(mask.sum())
        logits = reward_model(input_ids=ids, attention_mask=mask).logits
        if logits.shape[-1] != 1:
            raise ValueError(f"a reward model has one output, this one has {logits.shape[-1]}")
        scores[index] = logits[:, 0].float().cpu()
    return scores


def context_length(model: Any, tokenizer: Any) -> int | None:
    """The longest input ``model`` takes: the smaller of its position table and the tokenizer's
    ``model_max_length`` (None when neither says)."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    known = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(known) if known else None


class RewardModel:
    """A frozen sequence-classification RM scoring text; each scored response is counted in
    ``costs.reward_calls`` and its tokens in ``costs.reward_tokens``. Satisfies
    ``methods.base.RewardFn``.

    ``prompt_map`` takes a prompt as the policy sees it (e.g. rendered with its chat template)
    back to the HH text the RM was trained on; a prompt not in it is scored as given."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device | str,
        costs: Costs | None = None,
        batch_size: int = 32,
        prompt_map: Mapping[str, str] | None = None,
    ) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.costs = costs if costs is not None else Costs()
        self.batch_size = batch_size
        self.prompt_map: Mapping[str, str] = prompt_map if prompt_map is not None else {}
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        _ensure_pad(model, tokenizer)

    def __call__(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        self.costs.reward_calls += len(responses)
        texts = [self.prompt_map.get(p, p) for p in prompts]
        return score_text(
            self.model,
            self.tokenizer,
            texts,
            responses,
            self.device,
            self.batch_size,
            costs=self.costs,
        )

    def uncharged(self) -> RewardModel:
        """The same model scoring the same way, counting its calls in no one's costs."""
        return RewardModel(
            self.model, self.tokenizer, self.device, None, self.batch_size, self.prompt_map
        )

"""A pre-training mix for the online methods (PPO-ptx; Ouyang et al. 2022, eq. 2):

    objective(φ) = E_(x,y)~π_φ [ r(x, y) - β log(π_φ(y|x) / π_ref(y|x)) ]
                   + γ E_x~D_pretrain [ log π_φ(x) ]

Each optimizer step of the method adds ``γ · NLL`` of a batch of base-corpus text to its loss,
``γ`` being the method's ``ptx_coef`` (0: off, the loss is left as it is). The text is the run's
``ctx.pretrain`` (the embedded world's base-corpus texts); its forward pass goes through the policy
with gradients, so the run's cost meter charges its tokens as trained tokens, like the method's own.
"""

from __future__ import annotations

import torch

from methods.base import TrainContext

PTX_BATCH = 8  # base-corpus texts per optimizer step
PTX_MAX_TOKENS = 256  # a longer text is cut


class PretrainMix:
    """``mix(loss) -> (loss + γ · nll, stats)``: the method's loss with the pre-training term of
    the next batch of ``ctx.pretrain`` (a seeded cycle of shuffles), and ``{"ptx_loss": nll}``;
    with ``coef`` 0, ``loss`` itself and no statistic."""

    def __init__(self, ctx: TrainContext, coef: float, batch_size: int = PTX_BATCH) -> None:
        if coef < 0:
            raise ValueError(f"ptx_coef must be at least 0, got {coef}")
        if coef > 0 and not ctx.pretrain:
            raise ValueError(
                f"{ctx.method}: ptx_coef {coef} needs pre-training text, and the run has none "
                "(the embedded world provides it)"
            )
        self.ctx, self.coef, self.batch_size = ctx, coef, batch_size
        self.generator = torch.Generator().manual_seed(ctx.seed)
        self.order: list[int] = []

    def _next_texts(self) -> list[str]:
        texts = []
        for _ in range(self.batch_size):
            if not self.order:
                n = len(self.ctx.pretrain)
                self.order = torch.randperm(n, generator=self.generator).tolist()
            texts.append(self.ctx.pretrain[self.order.pop()])
        return texts

    def nll(self, texts: list[str]) -> torch.Tensor:
        """Mean next-token NLL of ``texts`` under the policy, over their real tokens (a scalar),
        each text followed by the end-of-sequence token."""
        tok = self.ctx.tokenizer
        rows = [
            [*tok(t, add_special_tokens=False)["input_ids"][: PTX_MAX_TOKENS - 1], tok.eos_token_id]
            for t in texts
        ]
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)  # [B, T] right-padded
        mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, T]
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        ids, mask = ids.to(self.ctx.device), mask.to(self.ctx.device)
        labels = ids.masked_fill(mask == 0, -100)  # [B, T] padding is not predicted
        return self.ctx.policy(input_ids=ids, attention_mask=mask, labels=labels).loss

    def __call__(self, loss: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if self.coef == 0:
            return loss, {}
        nll = self.nll(self._next_texts())
        return loss + self.coef * nll, {"ptx_loss": float(nll.detach())}

"""The generation backend: the one object every sampling call of a run goes through.

``harness.run.execute`` decides once per run which backend samples (the suite's
``generation.backend``) and hands it to the training context (``TrainContext.generation``) and
to the evaluation (``EvalSetup.generation``); ``methods.common.generate`` and the evaluation's
``sampler`` call ``generation.sample``. Methods never know which one it is, and never import an
inference engine.

- ``HFBackend`` (``hf``, the default): ``methods.sampling.sample``, the KV-cached sampler over
  the ``transformers`` model itself.
- ``harness.load.vllm.VLLMBackend`` (``vllm``): an in-process vLLM engine holding a copy of
  the policy; the weights of the model asked to sample are pushed into it whenever they changed
  since the last push (after each optimizer phase), never reloaded from disk.

Both return the shared ``Samples`` layout (``methods.sampling``) under the same rules: ``n``
responses per prompt (row ``i * n + j``), each stopping at the EOS token (kept, with mask 1) or at
``max_new_tokens``; ``temperature == 0`` decodes greedily; draws are seeded from ``generator``.
Log-probs are never taken from the backend: every loss recomputes them with the training model
(``methods.common.token_logps``), so a backend only has to sample from the right distribution.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from methods.sampling import SampleRequest, Samples, sample


class Backend(Protocol):
    """What a generation backend offers (``HFBackend``, ``harness.load.vllm.VLLMBackend``)."""

    name: str  # as the suite names it: hf, vllm

    def sample(
        self,
        model: Any,
        tokenizer: Any,
        request: SampleRequest,
        device: torch.device | str,
    ) -> Samples:
        """What ``request`` asks for, from ``model``'s CURRENT weights (``SampleRequest``
        documents the layout); ``request.batch_size`` bounds the rows of one forward pass where
        the backend batches by itself (the hf one), others may ignore it."""
        ...

    def push(self, model: Any) -> None:
        """Make ``model``'s current weights the ones the backend samples from (a no-op where the
        backend samples from ``model`` itself)."""
        ...

    def close(self) -> None:
        """Free what the backend holds (an engine, its cache); it samples no more after."""
        ...


class HFBackend:
    """Sampling with the ``transformers`` model itself (``methods.sampling.sample``)."""

    name = "hf"

    def sample(
        self,
        model: Any,
        tokenizer: Any,
        request: SampleRequest,
        device: torch.device | str,
    ) -> Samples:
        return sample(model, tokenizer, request, device)

    def push(self, model: Any) -> None:
        """Nothing to push: the model samples itself."""

    def close(self) -> None:
        """Nothing held."""


HF = HFBackend()
"""The default backend (stateless, so one instance serves every run)."""

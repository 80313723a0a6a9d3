"""``harness bench --device``: our DPO and GRPO steps measured on one device, on a hub-format causal
LM built here from a config (no download: ``MODELS``, Llama architecture, random weights, saved
with ``save_pretrained`` and loaded back as any hub model is); its generation through transformers'
``generate`` and, when vLLM is installed, through vLLM on the same folder; and one FSDP2 step of a
run spread over two workers (two GPUs when the machine has them; two gloo workers on CPU) with what
each worker holds.

Rows (each a dict of the report's ``rows``):

- ``dpo_step`` / ``grpo_step``: optimizer steps a second of the policy on ``batch`` random rows
  (DPO: ``batch`` pairs, chosen and rejected in one pass; GRPO: ``batch`` samples, old and
  reference log-probs precomputed), ``prompt + response`` tokens each; trained tokens a second;
  MFU: ``6 N tokens/s`` (``harness.core.ledger``'s price of a trained token) over the card's
  dense bf16 peak (``PEAK_FLOPS``, by the CUDA device's name; none on CPU);
- ``generation.hf`` / ``generation.vllm``: generated tokens a second, ``batch`` prompts of
  ``prompt`` tokens, every completion ``response`` tokens long (no early stop);
- ``fsdp2_step``: steps a second of the same DPO step, its batch split between two workers, and
  each worker's parameters, gradients and optimizer state in MiB (``state_mib``) beside the
  one-worker figure, and its peak memory (CUDA's allocator, or the process's resident set on CPU).
"""

from __future__ import annotations

import importlib.util
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.distributed.tensor import DTensor

from harness.core.ledger import TRAINED_FLOPS
from harness.run import schedule
from harness.suite.settings import Resources
from methods import common, distributed
from methods.dpo import dpo_loss
from methods.grpo import grpo_loss
from methods.sampling import Samples

# Llama-architecture configs; the parameter counts are those of the built model (tied embeddings)
MODELS: dict[str, dict[str, int]] = {
    "tiny": {  # ~0.18M: the tiny world's policy's shape (harness.builder.trainer)
        "hidden_size": 64,
        "intermediate_size": 64 * 8 // 3,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "vocab_size": 1024,
    },
    "100m": {  # ~110M
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "vocab_size": 32000,
    },
    "0.5b": {  # ~0.44B
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "vocab_size": 32000,
    },
}
# dense bf16 tensor-core peak FLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_FLOPS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}


@dataclass(frozen=True)
class DeviceConfig:
    device: str = "cuda"
    model: str = "0.5b"
    steps: int = 5  # timed optimizer steps per row (after one untimed)
    batch: int = 8  # pairs (DPO), samples (GRPO), prompts (generation)
    prompt: int = 64  # prompt tokens per row
    response: int = 64  # response tokens per row
    workers: int = 2  # of the fsdp2 row


def build(cfg: DeviceConfig, folder: Path) -> Any:
    """The config's model saved as a hub folder and loaded back (bf16 on CUDA, float32 on CPU)."""
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = cast(Any, LlamaConfig)(**MODELS[cfg.model], tie_word_embeddings=True)
    config.max_position_embeddings = 2 * (cfg.prompt + cfg.response)
    LlamaForCausalLM(config).save_pretrained(folder)
    dtype = torch.bfloat16 if cfg.device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.to(cfg.device)


def random_samples(cfg: DeviceConfig, vocab: int, rows: int, device: Any) -> Samples:
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, vocab, (rows, cfg.prompt), generator=gen).to(device)
    response = torch.randint(0, vocab, (rows, cfg.response), generator=gen).to(device)
    ones = torch.ones_like
    return Samples(prompt, ones(prompt), response, ones(response), [""] * rows, [""] * rows)


def dpo_step(model: Any, samples: Samples, rows: torch.Tensor, optimizer: Any) -> int:
    """One DPO step on the pairs ``rows`` (chosen: the first half of ``samples``, rejected: the
    second); its trained tokens."""
    n = len(samples) // 2
    both = samples.select(torch.cat([rows, rows + n]))
    logps = common.sequence_logps(common.token_logps(model, both), both.response_mask)
    logps_w, logps_l = logps.chunk(2)
    losses, _, _ = dpo_loss(logps_w, logps_l, logps_w.detach() * 0, logps_l.detach() * 0)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    loss, _, _ = distributed.reduce_loss(losses.mean(), len(rows), {})
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.clip(params, 1.0)
    optimizer.step()
    return int(both.attention_mask.sum())


def grpo_step(model: Any, samples: Samples, ref: torch.Tensor, optimizer: Any) -> int:
    logps = common.token_logps(model, samples)
    mask = samples.response_mask.float()
    advantages = torch.linspace(-1, 1, len(samples), device=logps.device)
    loss, _ = grpo_loss(logps, logps.detach(), ref, advantages, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return int(samples.attention_mask.sum())


def _sync(device: Any) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(cfg: DeviceConfig, step: Any, device: Any) -> tuple[float, int]:
    """``(seconds, trained tokens)`` of ``cfg.steps`` calls of ``step`` after one untimed."""
    step()
    _sync(device)
    start, tokens = time.perf_counter(), 0
    for _ in range(cfg.steps):
        tokens += step()
    _sync(device)
    return time.perf_counter() - start, tokens


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((f for key, f in PEAK_FLOPS.items() if key in name), None)


def step_row(name: str, cfg: DeviceConfig, seconds: float, tokens: int, n: int) -> dict[str, Any]:
    peak = peak_flops(cfg.device)
    rate = tokens / seconds
    return {
        "row": name,
        "steps_per_s": cfg.steps / seconds,
        "tokens_per_s": rate,
        "mfu": TRAINED_FLOPS * n * rate / peak if peak else None,
    }


def state_mib(model: Any, optimizer: Any) -> float:
    """What this process holds of the parameters, their gradients and the optimizer state, MiB."""

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if isinstance(t, DTensor) else t

    tensors = [local(p) for p in model.parameters()]
    tensors += [local(p.grad) for p in model.parameters() if p.grad is not None]
    tensors += [local(v) for s in optimizer.state.values() for v in s.values() if v.dim() > 0]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def peak_mib(device: Any) -> float:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_device(cfg: DeviceConfig, folder: Path) -> list[dict[str, Any]]:
    model = build(cfg, folder)
    n = sum(p.numel() for p in model.parameters())
    vocab = model.config.vocab_size
    model.train()
    rows = []
    optimizer = common.adamw(model.parameters(), lr=1e-5)
    pairs = random_samples(cfg, vocab, 2 * cfg.batch, cfg.device)
    batch = torch.arange(cfg.batch)
    seconds, tokens = _timed(cfg, lambda: dpo_step(model, pairs, batch, optimizer), cfg.device)
    rows.append({**step_row("dpo_step", cfg, seconds, tokens, n), "params": n})
    rows[-1]["state_mib"] = state_mib(model, optimizer)
    rows[-1]["peak_mib"] = peak_mib(cfg.device)
    samples = random_samples(cfg, vocab, cfg.batch, cfg.device)
    with torch.no_grad():
        ref = common.token_logps(model, samples)
    seconds, tokens = _timed(cfg, lambda: grpo_step(model, samples, ref, optimizer), cfg.device)
    rows.append({**step_row("grpo_step", cfg, seconds, tokens, n), "params": n})
    model.eval()
    rows.append(hf_generation(cfg, model, vocab))
    rows.append(vllm_generation(cfg, folder, vocab))
    return rows


def hf_generation(cfg: DeviceConfig, model: Any, vocab: int) -> dict[str, Any]:
    prompts = random_samples(cfg, vocab, cfg.batch, cfg.device).prompt_ids
    kwargs = {"max_new_tokens": cfg.response, "min_new_tokens": cfg.response, "do_sample": True}

    def draw() -> int:
        with torch.no_grad():
            out = model.generate(prompts, attention_mask=torch.ones_like(prompts), **kwargs)
        return int(out.shape[0] * (out.shape[1] - prompts.shape[1]))

    seconds, tokens = _timed(cfg, draw, cfg.device)
    return {"row": "generation.hf", "tokens_per_s": tokens / seconds}


def vllm_generation(cfg: DeviceConfig, folder: Path, vocab: int) -> dict[str, Any]:
    """vLLM on the same folder and prompts (token ids: the built model has no tokenizer)."""
    if importlib.util.find_spec("vllm") is None:
        return {"row": "generation.vllm", "note": "vllm is not installed (pip install vllm)"}
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(folder), skip_tokenizer_init=True, dtype="auto", enforce_eager=True)
    prompts = random_samples(cfg, vocab, cfg.batch, "cpu").prompt_ids.tolist()
    params = SamplingParams(max_tokens=cfg.response, min_tokens=cfg.response, ignore_eos=True)
    inputs: Any = [{"prompt_token_ids": ids} for ids in prompts]

    def draw() -> int:
        outs = llm.generate(inputs, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outs)

    seconds, tokens = _timed(cfg, draw, "cpu")
    return {"row": "generation.vllm", "tokens_per_s": tokens / seconds}


def _fsdp_worker(config: dict[str, Any]) -> dict[str, Any]:
    """On each worker: the model sharded with FSDP2, ``steps`` DPO steps on its share."""
    cfg = DeviceConfig(**config["cfg"])
    device = config["device"]
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cfg.device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(config["folder"], dtype=dtype)
    model = model.to(device)
    model.train()
    vocab = model.config.vocab_size
    distributed.shard(model, device)
    optimizer = common.adamw(model.parameters(), lr=1e-5)
    pairs = random_samples(cfg, vocab, 2 * cfg.batch, device)
    batch = distributed.share(torch.arange(cfg.batch))
    seconds, _ = _timed(cfg, lambda: dpo_step(model, pairs, batch, optimizer), device)
    return {"seconds": seconds, "state_mib": state_mib(model, optimizer), "peak": peak_mib(device)}


def fsdp2(cfg: DeviceConfig, folder: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"row": "fsdp2_step", "workers": cfg.workers}
    if cfg.device == "cuda" and torch.cuda.device_count() < cfg.workers:
        return {**row, "note": f"needs {cfg.workers} GPUs, found {torch.cuda.device_count()}"}
    gpus = cfg.workers if cfg.device == "cuda" else 0
    res = Resources(workers_per_run=cfg.workers, gpus_per_run=gpus, cpus_per_run=cfg.workers)
    config = {"cfg": asdict(cfg), "folder": str(folder)}
    ranks = schedule.on_workers(_fsdp_worker, config, res, folder.parent / "fsdp2")
    seconds = max(r["seconds"] for r in ranks)
    row["steps_per_s"] = cfg.steps / seconds
    row["state_mib_per_worker"] = max(r["state_mib"] for r in ranks)
    row["peak_mib_per_worker"] = max(r["peak"] for r in ranks)
    return row


def run_device_bench(cfg: DeviceConfig) -> dict[str, Any]:
    """Every row; the report as a JSON-able dict."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    if cfg.device == "cpu":
        torch.set_num_threads(1)  # as each worker of the fsdp2 row, and each run of a pool
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        folder = Path(tmp) / "model"
        rows = one_device(cfg, folder)
        rows.append(fsdp2(cfg, folder))
    card = torch.cuda.get_device_name() if cfg.device == "cuda" else "cpu"
    return {"config": asdict(cfg), "device": card, "torch": torch.__version__, "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    """A short table of the report."""
    cfg = report["config"]
    lines = [
        f"# harness bench --device {cfg['device']} ({report['device']}, model {cfg['model']})",
        "",
        "| row | steps/s | tokens/s | MFU | MiB a worker | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else ""
        mib = r.get("state_mib", r.get("state_mib_per_worker"))
        cells = [
            r["row"],
            f"{r['steps_per_s']:.2f}" if "steps_per_s" in r else "",
            f"{r['tokens_per_s']:,.0f}" if "tokens_per_s" in r else "",
            mfu,
            f"{mib:,.1f}" if mib is not None else "",
            r.get("note", ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

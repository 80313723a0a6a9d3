"""One run across several workers: data parallel over a process group, the policy sharded with
FSDP2 (``torch.distributed.fsdp.fully_shard``), every reduction over the global batch.

The process group is made by whoever starts the workers (Ray Train's ``TorchTrainer``:
``harness.run.schedule``); without one, every function here is the one-process identity, so a
training loop reads the same at any worker count. How a run is spread:

- a round's samples are drawn in shares (``sample_in_shares``): each worker draws for its share of
  the prompts, with the policy gathered whole for the draw, and the shares are gathered on every
  worker; each row's tokens are those a one-worker run draws for it (``methods.sampling`` draws a
  row's tokens from its own uniforms), so the run is the same run at any worker count. The rest of
  the round's experience (rewards, reference log-probs) is computed by every worker alike;
- each optimizer step's mini-batch is split among the workers (``share``): each computes the loss
  and its gradient on its share only;
- ``reduce_loss`` weighs each worker's loss by what it averages over (rows, or tokens), so that
  the gradient FSDP2 averages over the workers is the gradient of the mean over the whole
  mini-batch, and the reported loss and statistics are the mini-batch's;
- parameters that are not sharded (a value head) get their gradients averaged over the workers
  (``sync_replicated``), and the gradient norm is the norm of the whole gradient (``clip``);
- after training the weights go through a distributed checkpoint (``save_shards``: each worker
  writes its shards) to the one worker that reads them whole (``load_shards``) and evaluates.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from methods.sampling import SampleRequest, Samples, concat, pad_id

if TYPE_CHECKING:
    from methods.generation import Backend


def world() -> tuple[int, int]:
    """``(rank, size)`` of this worker in the run's process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def spread() -> bool:
    """Whether this run is spread over several workers."""
    return world()[1] > 1


def share(rows: torch.Tensor) -> torch.Tensor:
    """This worker's contiguous share of a mini-batch's ``rows`` ``[M] -> [~M / size]`` (the first
    ``M % size`` workers take one more); all of them with one worker. A worker whose share would
    be empty cannot join the step's collectives: ``ValueError``."""
    size = world()[1]
    if size == 1:
        return rows
    if len(rows) < size:
        raise ValueError(
            f"a mini-batch of {len(rows)} rows cannot be split among {size} workers: "
            "raise the method's batch size or use fewer workers"
        )
    first, stop = bounds(len(rows))
    return rows[first:stop]


def reduce_loss(
    loss: torch.Tensor, weight: float | None, stats: dict[str, float]
) -> tuple[torch.Tensor, float, dict[str, float]]:
    """``(loss to backpropagate, the mini-batch's loss, the mini-batch's statistics)`` from this
    worker's ``loss``, a mean over ``weight`` units (its rows, or its tokens; None: every worker's
    share weighs the same).

    With ``w_r`` the weight of worker r and ``W = sum_r w_r``, the mini-batch's mean is
    ``sum_r (w_r / W) * loss_r``; FSDP2 averages the gradients over the ``size`` workers, so each
    backpropagates ``loss_r * w_r * size / W``. Statistics are weighted the same way."""
    size = world()[1]
    if size == 1:
        return loss, float(loss.detach()), stats
    own = 1.0 if weight is None else float(weight)
    keys = sorted(stats)
    values = [own * float(loss.detach()), own, *(own * stats[k] for k in keys)]
    summed = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(summed)  # [2 + len(stats)]: weighted loss, total weight, weighted stats
    total = float(summed[1])
    scale = own * size / total if total > 0 else 0.0
    reduced = {k: float(summed[2 + i]) / total for i, k in enumerate(keys)}
    return loss * scale, float(summed[0]) / total, reduced


def param_groups(parameters: list[torch.nn.Parameter]) -> list[dict[str, Any]]:
    """``parameters`` as optimizer groups: the sharded ones (DTensors) and the plain ones apart
    (a fused optimizer step takes one kind at a time); one group when there is one kind."""
    sharded = [p for p in parameters if isinstance(p, DTensor)]
    plain = [p for p in parameters if not isinstance(p, DTensor)]
    return [{"params": group} for group in (sharded, plain) if group]


def sync_replicated(parameters: list[torch.nn.Parameter]) -> None:
    """Average over the workers the gradients of the parameters FSDP2 does not shard (plain
    tensors, e.g. PPO's value head): each worker holds a full copy, kept equal."""
    if not spread():
        return
    grads = [p.grad for p in parameters if p.grad is not None and not isinstance(p, DTensor)]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world()[1]
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def clip(parameters: list[torch.nn.Parameter], max_norm: float) -> float:
    """Clip the whole gradient (sharded and replicated parts) to ``max_norm`` as
    ``torch.nn.utils.clip_grad_norm_`` does on one worker; returns its norm before clipping."""
    if not spread():
        return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    grads = [p.grad for p in parameters if p.grad is not None]
    sharded = torch.zeros((), dtype=torch.float64)
    replicated = torch.zeros((), dtype=torch.float64)
    for g in grads:
        if isinstance(g, DTensor):
            sharded += g.to_local().double().pow(2).sum()
        else:
            replicated += g.double().pow(2).sum()
    dist.all_reduce(sharded)  # each worker holds its shard: the sum is the whole
    norm = math.sqrt(float(sharded + replicated))
    coef = min(1.0, max_norm / (norm + 1e-6))
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return norm


def shard(model: Any, device: torch.device) -> Any:
    """``model`` sharded in place over all workers with FSDP2: each transformer block its own
    unit (gathered for its forward, freed after), the rest the root unit. One worker: as is."""
    size = world()[1]
    if size == 1:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (size,))
    for block in _blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def _blocks(model: Any) -> list[torch.nn.Module]:
    """The transformer blocks of a hub causal LM: the largest ``ModuleList`` (its layers)."""
    lists: list[torch.nn.Module] = [
        m for m in model.modules() if isinstance(m, torch.nn.ModuleList)
    ]
    if not lists:
        return []
    return list(max(lists, key=_size).children())


def _size(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def save_shards(model: Any, folder: Path) -> None:
    """Write the weights of a sharded ``model`` to ``folder`` as a distributed checkpoint
    (``torch.distributed.checkpoint``): each worker writes its own shards, in parallel, and no
    worker ever holds the whole state; every worker must call it. ``folder`` is emptied first."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    if world()[0] == 0 and folder.exists():
        shutil.rmtree(folder)  # what an earlier attempt of the run left
    dist.barrier()
    dcp.save(get_model_state_dict(model), checkpoint_id=folder)


def load_shards(whole: Any, folder: Path) -> None:
    """Load the distributed checkpoint in ``folder`` (``save_shards``) into ``whole``, a model of
    the same architecture that is not sharded, on this worker alone (no collective)."""
    import torch.distributed.checkpoint as dcp

    state = whole.state_dict()  # its tensors are the model's own: loaded in place
    dcp.load(state, checkpoint_id=folder, no_dist=True)
    whole.load_state_dict(state)


def bounds(items: int) -> tuple[int, int]:
    """``(first, stop)`` of this worker's contiguous share of ``items`` (the first ``items % size``
    workers take one more; a share may be empty); all of them with one worker."""
    rank, size = world()
    each, extra = divmod(items, size)
    first = rank * each + min(rank, extra)
    return first, first + each + (1 if rank < extra else 0)


def sample_in_shares(
    backend: Backend, model: Any, tokenizer: Any, request: SampleRequest, device: torch.device
) -> Samples:
    """What ``request`` asks of ``backend``, drawn in shares: each worker draws for its share of
    the prompts (``SampleRequest.share``) from ``model`` gathered whole (``whole``), and every
    worker gets every share, in order: the samples of the whole request, as one worker draws
    them. One worker: the request drawn as is."""
    if not spread():
        return backend.sample(model, tokenizer, request, device)
    share = replace(request, share=bounds(len(request.prompts)))
    with whole(model):
        mine = backend.sample(model, tokenizer, share, device)
    parts: list[Any] = [None] * world()[1]
    dist.all_gather_object(parts, _to(mine, torch.device("cpu")))
    return _to(concat(parts, pad_id(tokenizer), device), device)


def _to(samples: Samples, device: torch.device) -> Samples:
    return Samples(
        samples.prompt_ids.to(device),
        samples.prompt_mask.to(device),
        samples.response_ids.to(device),
        samples.response_mask.to(device),
        samples.prompts,
        samples.responses,
    )


@contextmanager
def whole(model: Any) -> Iterator[None]:
    """``model``'s parameters gathered whole on every worker for the duration (FSDP2's
    ``unshard``), kept through each forward pass, then sharded again: inside, each worker runs as
    many forward passes as its own work needs, with no collective among them (a draw stops when
    its own rows are done). A model that is not sharded: as is."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if not units:
        yield
        return
    for unit in units:
        unit.unshard()
        unit.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for unit in units:
            unit.set_reshard_after_forward(True, recurse=False)
            unit.reshard()


def sum_over_workers(value: int) -> int:
    """``value`` summed over the workers (itself with one)."""
    if not spread():
        return value
    total = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(total)
    return int(total.item())

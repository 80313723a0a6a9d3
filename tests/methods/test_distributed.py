"""A round drawn in shares by two workers (``distributed.sample_in_shares``, gloo on CPU, the
policy sharded with FSDP2): each worker draws for its own share of the prompts only, with the
policy gathered whole for the draw (each runs as many forward passes as its rows need, with no
collective among them), and both end with the samples one worker draws for the whole request."""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from methods import distributed
from methods.generation import HFBackend
from methods.sampling import SampleRequest, Samples, sample

PROMPTS = [
    "human how do i make tea assistant",
    "human why assistant",
    "human what is a good bread with milk and sugar assistant",
]
REQUEST = {"n": 2, "max_new_tokens": 12, "temperature": 1.0, "top_p": 1.0}


class Recording(HFBackend):
    """The hf backend, keeping the share of every request it was asked to draw."""

    def __init__(self) -> None:
        self.shares: list[tuple[int, int] | None] = []

    def sample(self, model: Any, tokenizer: Any, request: SampleRequest, device: Any) -> Samples:
        self.shares.append(request.share)
        return super().sample(model, tokenizer, request, device)


def _worker(rank: int, port: int, out: str) -> None:
    from tests.methods.conftest import build_policy, build_tokenizer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        tokenizer = build_tokenizer()
        policy = distributed.shard(build_policy(tokenizer), torch.device("cpu"))
        backend = Recording()
        request = SampleRequest(PROMPTS, generator=torch.Generator().manual_seed(3), **REQUEST)
        drawn = distributed.sample_in_shares(backend, policy, tokenizer, request, "cpu")
        # the policy is sharded again after the draw: a forward pass is a collective again
        with torch.no_grad():
            logits = policy(input_ids=drawn.input_ids[:1]).logits
        state = request.generator.get_state() if request.generator is not None else None
        result = {"shares": backend.shares, "samples": drawn, "logits": logits, "state": state}
        Path(out, f"rank{rank}.pickle").write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_workers_draw_their_shares_and_get_the_whole_draw(
    tokenizer: Any, policy: Any, tmp_path: Path
) -> None:
    mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=2, start_method="spawn", join=True
    )
    got = [pickle.loads((tmp_path / f"rank{r}.pickle").read_bytes()) for r in (0, 1)]
    assert [g["shares"] for g in got] == [[(0, 2)], [(2, 3)]]  # the first takes one more
    generator = torch.Generator().manual_seed(3)
    whole = sample(policy, tokenizer, SampleRequest(PROMPTS, generator=generator, **REQUEST), "cpu")
    for g in got:
        drawn: Samples = g["samples"]
        assert torch.equal(drawn.response_ids, whole.response_ids)
        assert torch.equal(drawn.response_mask, whole.response_mask)
        assert torch.equal(drawn.prompt_ids, whole.prompt_ids)
        assert drawn.responses == whole.responses and drawn.prompts == whole.prompts
        assert torch.equal(g["state"], generator.get_state())  # advanced as by the whole draw
        with torch.no_grad():
            alone = policy(input_ids=whole.input_ids[:1]).logits
        assert torch.allclose(g["logits"], alone, atol=1e-5)
    assert len(set(whole.responses)) > 1  # a real draw, not one answer repeated

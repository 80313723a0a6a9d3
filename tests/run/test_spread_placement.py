"""Where a run of several workers goes: ``gpus_per_run: 2`` is two workers of one GPU each,
reserved as one placement group (PACK) on a pool with the GPUs (logical GPUs here, declared on a
CPU machine), beside fractional one-GPU runs; a pool without enough devices is an input error
(exit 2) that names the shortfall."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from harness.core.errors import InputError
from harness.run import schedule
from harness.run.cluster import check_before_start, unfit
from harness.suite.resolve import resolve
from harness.suite.runs import expand
from harness.suite.schema import Suite
from harness.suite.settings import Resources
from tests.conftest import REPO


def test_two_gpus_are_two_workers_of_one_gpu_each() -> None:
    res = Resources(gpus_per_run=2, cpus_per_run=2)
    assert (res.workers, res.gpus_per_worker, res.cpus_per_worker) == (2, 1.0, 1.0)
    assert Resources(workers_per_run=2, gpus_per_run=2).workers == 2
    cpu = Resources(workers_per_run=2)
    assert (cpu.workers, cpu.gpus_per_worker, cpu.cpus_per_worker) == (2, 0.0, 0.5)
    assert Resources(gpus_per_run=0.5).workers == 1  # a share of one card: one process


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gpus_per_run": 1.5}, "whole GPUs"),
        ({"gpus_per_run": 2, "workers_per_run": 3}, "gpus_per_run 2 means one worker per GPU"),
        ({"gpus_per_run": 0.5, "workers_per_run": 2}, "a whole GPU per worker"),
        ({"cpus_per_run": 0.1, "workers_per_run": 4}, "0.1 split over 4 workers is below 0.1"),
        ({"workers_per_run": 0}, "greater than or equal to 1"),
    ],
)
def test_resources_that_cannot_be_spread_are_refused(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Resources(**fields)  # type: ignore[arg-type]


def test_a_pool_short_of_devices_names_the_shortfall() -> None:
    one_gpu = [{"CPU": 8.0, "GPU": 1.0}]
    assert "2 (2 workers, one GPU each), but the pool has 1 GPUs: 1 short" in str(
        unfit(2, 2, one_gpu, workers=2)
    )
    assert "but the pool has no GPU: 2 short" in str(unfit(2, 2, [{"CPU": 8.0}], workers=2))
    assert "4 workers" in str(unfit(4, 0, [{"CPU": 2.0}], workers=4))
    two_nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert unfit(2, 2, two_nodes, workers=2) is None  # one worker on each node
    assert unfit(2, 2, [{"CPU": 2.0, "GPU": 2.0}], workers=2) is None
    with pytest.raises(InputError, match=r"gpus_per_run is 2 .* 1 short"):
        check_before_start(Resources(gpus_per_run=2), None, num_gpus=1)
    check_before_start(Resources(gpus_per_run=2), None, num_gpus=2)  # fits: nothing raised


@pytest.fixture
def logical_gpus() -> Iterator[None]:
    """A local pool of 2 CPUs and 3 logical GPUs."""
    with schedule.pool(num_cpus=2, num_gpus=3):
        yield


@pytest.mark.slow
def test_two_gpu_run_is_one_placement_group_beside_fractional_runs(logical_gpus: None) -> None:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    res = Resources(gpus_per_run=2, cpus_per_run=1)
    config = schedule.scaling(res)
    assert (config.num_workers, config.use_gpu, config.placement_strategy) == (2, True, "PACK")
    assert config.resources_per_worker == {"CPU": 0.5, "GPU": 1.0}
    # the placement group Ray Train makes of it: both workers at once, or neither
    group = placement_group([schedule.worker_bundle(res)] * res.workers, strategy="PACK")
    assert ray.get(group.ready(), timeout=60) is not None
    table = ray.util.placement_group_table(group)
    assert table["state"] == "CREATED" and len(table["bundles"]) == 2

    @ray.remote(num_cpus=0.25, num_gpus=0.5)
    def fractional_run() -> str:
        return ",".join(str(g) for g in ray.get_gpu_ids())

    # the third GPU holds two half-GPU runs beside the placed group
    assert len(ray.get([fractional_run.remote() for _ in range(2)], timeout=60)) == 2
    remove_placement_group(group)


def _suite(tiny_world: Path, **changes: Any) -> Suite:
    """The default suite with a DPO variant spread over two workers beside its one-worker DPO,
    changed by ``changes`` (top-level keys; ``spread`` replaces that variant's resources)."""
    raw = yaml.safe_load((REPO / "suites" / "tiny.yaml").read_text())
    spread = changes.pop("spread", {"workers_per_run": 2, "cpus_per_run": 2})
    raw["methods"] = [
        {"method": "dpo"},
        {"method": "dpo", "name": "dpo-2w", "resources": spread},
    ]
    raw.update(changes)
    return Suite.model_validate(raw)


def test_a_variant_spread_over_workers_beside_the_suite_s_one_worker_runs(
    tiny_world: Path,
) -> None:
    suite = _suite(tiny_world)
    assert suite.resources_of("dpo") == suite.resources  # the suite's own: one worker
    spread = suite.resources_of("dpo-2w")
    assert (spread.workers, spread.cpus_per_worker, spread.max_retries) == (2, 1.0, 1)
    assert suite.run_resources() == [suite.resources, spread]
    # where a run is placed is not what it computes: the same run id with or without it
    ids = {s.variant: s.run_id for s in expand(resolve(suite))}
    bare = _suite(tiny_world, spread=None)
    assert bare.methods[1].resources is None
    assert {s.variant: s.run_id for s in expand(resolve(bare))} == ids
    assert "resources" not in bare.model_dump(mode="json")["methods"][1]  # hashes as before


def test_a_method_that_trains_nothing_runs_in_one_process_of_a_suite_spread_over_workers(
    tiny_world: Path,
) -> None:
    raw = yaml.safe_load((REPO / "suites" / "tiny.yaml").read_text())
    raw["resources"] = {"cpus_per_run": 2, "workers_per_run": 2}
    suite = Suite.model_validate(raw)
    assert suite.resources_of("ppo").workers == 2
    for untrained in ("sft", "best_of_n"):
        one = suite.resources_of(untrained)
        assert (one.workers, one.cpus_per_run, one.gpus_per_run) == (1, 1.0, 0.0)
    gpus = Suite.model_validate({**raw, "resources": {"gpus_per_run": 2, "cpus_per_run": 2}})
    assert (gpus.resources_of("sft").gpus_per_run, gpus.resources_of("sft").workers) == (1.0, 1)


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"spread": {"gpus_per_run": 2, "workers_per_run": 3}}, "methods.1.resources", "per GPU"),
        ({"train": {"lora": {"r": 4}}}, "methods.1.lora", "LoRA adapters train on one worker"),
        ({"eval": {"judges": ["gold"], "checkpoints": "every_round"}}, "eval.checkpoints", ""),
        ({"generation": {"backend": "vllm"}}, "generation.backend", "samples with the hf"),
    ],
)
def test_what_a_spread_run_cannot_do_is_refused_at_validation(
    tiny_world: Path,
    changes: dict[str, Any],
    where: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.suite import generation

    monkeypatch.setattr(generation, "vllm_missing", lambda: None)  # as where vLLM is installed
    with pytest.raises(ValidationError) as caught:
        _suite(tiny_world, **changes)
    found = {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}
    assert where in found, found
    assert message in found[where]
    assert "dpo-2w" in found[where] or where.endswith("resources")

"""Where a run of several workers goes: ``gpus_per_run: 2`` is two workers of one GPU each,
reserved as one placement group (PACK) on a pool with the GPUs (logical GPUs here, declared on a
CPU machine), beside fractional one-GPU runs; a pool without enough devices is an input error
(exit 2) that names the shortfall."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from harness.core.errors import InputError
from harness.run import schedule
from harness.run.cluster import check_before_start, unfit
from harness.suite.settings import Resources


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
        ({"gpus_per_run": 2, "workers_per_run": 3}, "one worker per GPU"),
        ({"gpus_per_run": 0.5, "workers_per_run": 2}, "a whole GPU per worker"),
        ({"cpus_per_run": 0.1, "workers_per_run": 4}, "below 0.1 CPU a worker"),
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

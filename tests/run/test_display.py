"""The live display: round r/R counted from 1, the status a run reports, the suite's progress, a
view that fits an 80x24 terminal, and a final view of each run's final state."""

from __future__ import annotations

import io

from rich.console import Console

from harness.run.display import Display
from harness.suite.runs import RunResult, RunSpec

# the default suite's variants (suites/tiny.yaml), eight seeds each
VARIANTS = ("sft", "dpo", "ppo", "grpo", "raft", "rrhf", "pro", "best_of_n")


def display(variants: tuple[str, ...] = ("ppo", "sft"), seeds: int = 1) -> Display:
    specs = [
        RunSpec(None, "h", v, v, s, f"{v}-{s}")  # type: ignore[arg-type]
        for v in variants
        for s in range(seeds)
    ]
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    return Display(specs, console, rounds=4, trains={"ppo", "dpo", "grpo", "raft", "rrhf", "pro"})


def on_terminal(d: Display, width: int = 80, height: int = 24) -> list[str]:
    """``d``'s live view as a terminal of ``width`` x ``height`` shows it: its lines."""
    out = io.StringIO()
    d.console = Console(
        file=out, width=width, height=height, force_terminal=True, color_system=None
    )
    d.console.print(d.render())
    return out.getvalue().rstrip("\n").split("\n")


def result(d: Display, run_id: str, status: str = "done", steps: float = 16) -> RunResult:
    spec = d.specs[run_id]
    costs = {"wall_seconds": 7.0, "optimizer_steps": steps}
    return RunResult(run_id, "tiny", spec.variant, spec.method, spec.seed, status, costs=costs)


def test_rounds_count_from_one_out_of_the_total_and_untrained_runs_have_none() -> None:
    d = display()
    d.update("ppo-0", {"status": "training", "round": 3, "step": 40})
    ppo, sft = d.specs["ppo-0"], d.specs["sft-0"]
    assert d.round_of(ppo, d.state["ppo-0"]) == "4/4"
    assert d.round_of(sft, d.state["sft-0"]) == "-"


def test_progress_counts_rounds_evaluation_and_finished_runs() -> None:
    d = display()
    assert d.fraction() == 0 and d.eta() == "ETA -"
    d.update("ppo-0", {"status": "training", "round": 2})  # 2 of 4 rounds done: a quarter of it
    assert d.fraction() == 0.125
    d.update("ppo-0", {"status": "evaluating"})
    d.update("sft-0", {"status": "evaluating"})  # no training: evaluation is all of it
    assert d.fraction() == 0.25
    assert d.eta().startswith("ETA ")
    shown = "\n".join(on_terminal(d, width=120))
    assert "evaluating" in shown and "0/2 runs done" in shown
    d.update("ppo-0", {"status": "capability"})  # lm-eval after sampling and judging
    assert d.fraction() == 0.375
    assert "capability" in "\n".join(on_terminal(d, width=120))


def test_the_default_suite_fits_80_by_24_with_every_variant_and_every_run_in_flight() -> None:
    d = display(VARIANTS, seeds=8)  # 64 runs
    ids = list(d.specs)
    for run_id in ids[:20]:
        d.finished(result(d, run_id), "")
    flying = ids[20:22]  # a 2-core pool runs two at once
    d.update(flying[0], {"status": "training", "round": 1, "step": 9, "started": 0.0})
    d.update(flying[1], {"status": "running"})
    lines = on_terminal(d)
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    shown = "\n".join(lines)
    for variant in VARIANTS:
        assert any(line.split()[:1] == [variant] for line in lines), variant
    for run_id in flying:
        assert d.specs[run_id].label in shown
    assert "20/64 runs done" in shown and "2/4" in shown and "loading" in shown
    sft = next(line for line in lines if line.split()[:1] == ["sft"])
    assert sft.split()[1:5] == ["8", "0", "0", "0"]  # done, running, failed, pending
    dpo = next(line for line in lines if line.split()[:1] == ["dpo"])
    assert dpo.split()[1:5] == ["8", "0", "0", "0"]
    ppo = next(line for line in lines if line.split()[:1] == ["ppo"])
    assert ppo.split()[1:5] == ["4", "2", "0", "2"]


def test_more_runs_in_flight_than_lines_are_counted_not_cut() -> None:
    d = display(VARIANTS, seeds=8)
    ids = list(d.specs)
    for run_id in ids[:16]:
        d.update(run_id, {"status": "evaluating"})
    lines = on_terminal(d)
    assert len(lines) <= 24
    shown = "\n".join(lines)
    assert "in flight (16)" in shown
    listed = sum(d.specs[i].label in shown for i in ids[:16])
    assert 0 < listed < 16 and f"... {16 - listed} more" in shown
    for variant in VARIANTS:
        assert any(line.split()[:1] == [variant] for line in lines), variant


def test_the_final_view_shows_each_runs_final_state_not_its_last_progress() -> None:
    d = display(("dpo", "sft"), seeds=2)
    d.update("dpo-0", {"status": "training", "round": 2, "step": 8})
    d.finished(result(d, "dpo-0", steps=16), "")
    d.update("dpo-0", {"status": "training", "round": 3, "step": 12})  # drained after: stale
    d.finished(result(d, "dpo-1", status="failed", steps=0), "")
    d.finished(result(d, "sft-0", steps=0), "")
    assert d.state["dpo-0"] == {"status": "done", "wall": 7.0, "steps": 16}
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(d.final())
    lines = out.getvalue().split("\n")
    dpo = next(line for line in lines if line.split()[:1] == ["dpo"])
    sft = next(line for line in lines if line.split()[:1] == ["sft"])
    assert dpo.split()[1:5] == ["1", "1", "0", "16"]  # done, failed, not run, steps
    assert sft.split()[1:5] == ["1", "0", "1", "0"]
    assert "2/4 runs done" in out.getvalue() and "3/4" not in out.getvalue()


def test_off_a_terminal_one_line_per_run_started_and_finished() -> None:
    d = display()
    with d:
        d.update("ppo-0", {"status": "running"})
        d.update("ppo-0", {"status": "training", "round": 0})
        d.finished(result(d, "ppo-0"), "done     ppo/seed0")
    printed = d.console.file.getvalue().split("\n")  # type: ignore[attr-defined]
    assert printed[:2] == ["started  ppo/seed0", "done     ppo/seed0"]

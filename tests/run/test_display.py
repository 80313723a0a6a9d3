"""The live display: round r/R counted from 1, the status a run reports, the suite's progress."""

from __future__ import annotations

import io

from rich.console import Console

from harness.run.display import Display
from harness.suite.runs import RunSpec


def display() -> Display:
    specs = [RunSpec(None, "h", v, v, 0, v) for v in ("ppo", "sft")]  # type: ignore[arg-type]
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    return Display(specs, console, rounds=4, trains={"ppo"})


def test_rounds_count_from_one_out_of_the_total_and_untrained_runs_have_none() -> None:
    d = display()
    d.update("ppo", {"status": "training", "round": 3, "step": 40})
    ppo, sft = d.specs["ppo"], d.specs["sft"]
    assert d.round_of(ppo, d.state["ppo"]) == "4/4"
    assert d.round_of(sft, d.state["sft"]) == "-"


def test_progress_counts_rounds_evaluation_and_finished_runs() -> None:
    d = display()
    assert d.fraction() == 0 and d.eta() == "ETA -"
    d.update("ppo", {"status": "training", "round": 2})  # 2 of 4 rounds done: a quarter of it
    assert d.fraction() == 0.125
    d.update("ppo", {"status": "evaluating"})
    d.update("sft", {"status": "evaluating"})  # no training: evaluation is all of it
    assert d.fraction() == 0.25
    assert d.eta().startswith("ETA ")
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(d.render())
    assert "evaluating" in rendered.getvalue() and "0/2 runs done" in rendered.getvalue()
    d.update("ppo", {"status": "capability"})  # lm-eval after sampling and judging
    assert d.fraction() == 0.375
    rendered = io.StringIO()
    Console(file=rendered, width=120).print(d.render())
    assert "capability" in rendered.getvalue()

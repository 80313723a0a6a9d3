"""What ``harness run`` shows while a suite runs: on a terminal, a live table (one row per run:
its status, round r/R, step, mean reward, elapsed) under a progress bar of the whole suite with
its ETA; elsewhere (a CI log, a file) plain lines, one when a run starts and one when it ends.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.suite.runs import RunResult, RunSpec

# a run's status as its worker reports it -> as the table shows it
SHOWN = {"running": "loading"}
FINISHED = ("done", "failed")


class Display:
    """A live table on a terminal; plain lines otherwise. ``rounds``: the budget's rounds;
    ``trains``: the variants whose method trains (the others have no rounds to count)."""

    def __init__(
        self, specs: list[RunSpec], console: Console, rounds: int, trains: set[str]
    ) -> None:
        self.console = console
        self.specs = {s.run_id: s for s in specs}
        self.rounds = rounds
        self.trains = trains
        self.state: dict[str, dict[str, Any]] = {s.run_id: {"status": "pending"} for s in specs}
        self.live: Live | None = None
        self.started = time.time()

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(self.render(), console=self.console, refresh_per_second=2)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(None, None, None)

    # --- the suite's progress ----------------------------------------------------------------

    def fraction(self) -> float:
        """Share of the suite done, counting a training run's finished rounds as half of it
        (its evaluation is the other half) and a finished run as one."""
        return sum(self.run_fraction(self.specs[i], st) for i, st in self.state.items()) / max(
            len(self.state), 1
        )

    def run_fraction(self, spec: RunSpec, st: dict[str, Any]) -> float:
        status, trains = st["status"], spec.variant in self.trains
        if status in FINISHED:
            return 1.0
        if status == "training":
            return 0.5 * st.get("round", 0) / max(self.rounds, 1)
        if status in ("evaluating", "capability"):
            return (0.5 if trains else 0.0) + (0.25 if status == "capability" else 0.0)
        return 0.0

    def eta(self) -> str:
        done = self.fraction()
        if done <= 0:
            return "ETA -"
        left = (time.time() - self.started) * (1 - done) / done
        return "ETA " + _duration(left)

    def header(self) -> Table:
        """The suite's progress bar, runs done, time elapsed and ETA, on one line."""
        finished = sum(st["status"] in FINISHED for st in self.state.values())
        elapsed = _duration(time.time() - self.started)
        line = Text(f"{finished}/{len(self.state)} runs done, {elapsed}, {self.eta()}")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(ProgressBar(total=1.0, completed=self.fraction(), width=24), line)
        return grid

    # --- the table ---------------------------------------------------------------------------

    def table(self) -> Table:
        table = Table()
        for col in ("run", "status", "round", "step", "reward", "elapsed"):
            table.add_column(col, no_wrap=col != "run")
        for run_id, spec in self.specs.items():
            st = self.state[run_id]
            elapsed = f"{time.time() - st['started']:.0f} s" if "started" in st else ""
            if "wall" in st:
                elapsed = f"{st['wall']:.0f} s"
            reward = f"{st['reward']:.3f}" if st.get("reward") is not None else ""
            status = SHOWN.get(st["status"], st["status"])
            step = str(st.get("step", ""))
            table.add_row(spec.label, status, self.round_of(spec, st), step, reward, elapsed)
        return table

    def round_of(self, spec: RunSpec, st: dict[str, Any]) -> str:
        """``r/R`` (counted from 1) once a training run has reported; ``-`` for no training."""
        if spec.variant not in self.trains:
            return "-"
        return f"{st['round'] + 1}/{self.rounds}" if "round" in st else ""

    def render(self) -> Group:
        return Group(self.header(), self.table())

    # --- updates ------------------------------------------------------------------------------

    def update(self, run_id: str, state: dict[str, Any]) -> None:
        if run_id not in self.state or self.state[run_id]["status"] in FINISHED:
            return
        before = self.state[run_id].get("status")
        self.state[run_id].update(state)
        if self.live is not None:
            self.live.update(self.render())
        elif state.get("status") != before and state.get("status") == "running":
            self.console.print(f"started  {self.specs[run_id].label}")

    def finished(self, result: RunResult, summary: str) -> None:
        self.state[result.run_id].update(
            status=result.status, wall=result.costs.get("wall_seconds", 0)
        )
        if self.live is not None:
            self.live.update(self.render())
            self.live.console.print(summary)
        else:
            self.console.print(summary)


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def summary_line(result: RunResult) -> str:
    """One line per finished run: its status, primary numbers and cost."""
    label = f"{result.variant}/seed{result.seed}"
    if result.status != "done":
        return f"FAILED   {label}: {result.error}"
    rates = [m for m in result.metrics if m.metric.startswith("winrate.")]
    parts = [f"{m.metric.removeprefix('winrate.')} {m.value:.3f}" for m in rates]
    wall = result.costs.get("wall_seconds", 0.0)
    return f"done     {label}: win-rate {', '.join(parts) or '-'}; {wall:.0f} s"

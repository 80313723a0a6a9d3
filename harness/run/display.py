"""What ``harness run`` shows while a suite runs.

On a terminal, a live view that fits the terminal's height: the suite's progress bar and ETA, one
row per variant (runs done, running, failed, pending, its ETA), then the runs in flight (status,
round r/R, step, mean reward, elapsed); runs finish into lines printed above it. When the suite
ends, the view is replaced by its final state: per variant, the runs done and failed, their
optimizer steps and wall time, as ``runs.parquet`` records them. Elsewhere (a CI log, a file):
plain lines, one when a run starts and one when it ends.
"""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.suite.runs import RunResult, RunSpec

# a run's status as its worker reports it -> as the view shows it
SHOWN = {"running": "loading"}
FINISHED = ("done", "failed")
# lines the view needs besides its table rows: the progress line, and per table its title, header
# and the rule under it
HEADER_LINES = 1
TABLE_LINES = 3


class Display:
    """A live view on a terminal; plain lines otherwise. ``rounds``: the budget's rounds;
    ``trains``: the variants whose method trains (the others have no rounds to count)."""

    def __init__(
        self, specs: list[RunSpec], console: Console, rounds: int, trains: set[str]
    ) -> None:
        self.console = console
        self.specs = {s.run_id: s for s in specs}
        self.variants = list(dict.fromkeys(s.variant for s in specs))
        self.rounds = rounds
        self.trains = trains
        self.state: dict[str, dict[str, Any]] = {s.run_id: {"status": "pending"} for s in specs}
        self.live: Live | None = None
        self.started = time.time()
        self.most_in_flight = 1  # the most runs seen in flight at once: the pool's width

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(
                self.render(), console=self.console, refresh_per_second=2, transient=True
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)  # transient: the live view goes
            self.console.print(self.final())  # and the suite's final state takes its place

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

    def variant_eta(self, variant: str) -> str:
        """Time until ``variant``'s runs are all done: the work it has left, in runs, times its
        runs' mean wall time (the suite's while none of its own has finished), over the pool's
        width. ``-`` before any run of the suite has finished; empty once the variant is done."""
        runs = [
            (self.specs[i], st) for i, st in self.state.items() if self.specs[i].variant == variant
        ]
        left = sum(1 - self.run_fraction(spec, st) for spec, st in runs)
        if left <= 0:
            return ""
        own = [st["wall"] for _, st in runs if st["status"] == "done" and "wall" in st]
        every = [
            st["wall"] for st in self.state.values() if st["status"] == "done" and "wall" in st
        ]
        walls = own or every
        if not walls:
            return "-"
        return _duration(left * sum(walls) / len(walls) / self.most_in_flight)

    def in_flight(self) -> list[str]:
        return [i for i, st in self.state.items() if st["status"] not in (*FINISHED, "pending")]

    def header(self) -> Table:
        """The suite's progress bar, runs done, time elapsed and ETA, on one line."""
        finished = sum(st["status"] in FINISHED for st in self.state.values())
        elapsed = _duration(time.time() - self.started)
        line = Text(f"{finished}/{len(self.state)} runs done, {elapsed}, {self.eta()}")
        grid = Table.grid(padding=(0, 1))
        grid.add_row(ProgressBar(total=1.0, completed=self.fraction(), width=24), line)
        return grid

    # --- the tables --------------------------------------------------------------------------

    def counts(self, variant: str) -> dict[str, int]:
        """``variant``'s runs by state: done, running (anything started), failed, pending."""
        n = {"done": 0, "running": 0, "failed": 0, "pending": 0}
        for run_id, st in self.state.items():
            if self.specs[run_id].variant == variant:
                status = st["status"]
                n[status if status in n else "running"] += 1
        return n

    def variant_table(self) -> Table:
        table = _table("variants")
        for col in ("variant", "done", "running", "failed", "pending", "ETA"):
            table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
        for variant in self.variants:
            n = self.counts(variant)
            failed = f"[red]{n['failed']}[/]" if n["failed"] else "0"
            table.add_row(
                variant,
                str(n["done"]),
                str(n["running"]),
                failed,
                str(n["pending"]),
                self.variant_eta(variant),
            )
        return table

    def flight_table(self, rows: int) -> Table:
        """The runs in flight, at most ``rows`` of them (the last row says how many more)."""
        ids = self.in_flight()
        table = _table(f"in flight ({len(ids)})")
        for col in ("run", "status", "round", "step", "reward", "elapsed"):
            table.add_column(col, no_wrap=True, overflow="ellipsis")
        shown = ids if len(ids) <= rows else ids[: max(rows - 1, 0)]
        for run_id in shown:
            spec, st = self.specs[run_id], self.state[run_id]
            elapsed = f"{time.time() - st['started']:.0f} s" if "started" in st else ""
            reward = f"{st['reward']:.3f}" if st.get("reward") is not None else ""
            status = SHOWN.get(st["status"], st["status"])
            step = str(st.get("step", ""))
            table.add_row(spec.label, status, self.round_of(spec, st), step, reward, elapsed)
        if len(shown) < len(ids):
            table.add_row(f"... {len(ids) - len(shown)} more", "", "", "", "", "")
        return table

    def round_of(self, spec: RunSpec, st: dict[str, Any]) -> str:
        """``r/R`` (counted from 1) once a training run has reported; ``-`` for no training."""
        if spec.variant not in self.trains:
            return "-"
        return f"{st['round'] + 1}/{self.rounds}" if "round" in st else ""

    def render(self) -> Group:
        """The live view, within the console's height: the header and the variants first (every
        variant's counts are always shown), then as many runs in flight as the rest holds."""
        height = self.console.height
        used = HEADER_LINES + TABLE_LINES + len(self.variants)
        rows = max(height - used - TABLE_LINES - 1, 1)  # one line spare for the cursor
        parts: list[Any] = [self.header(), self.variant_table()]
        if self.in_flight():
            parts.append(self.flight_table(rows))
        return Group(*parts)

    def final(self) -> Table:
        """The suite's final state per variant: runs done and failed, optimizer steps per run
        and mean wall time, from the finished runs' results (what ``runs.parquet`` holds)."""
        table = _table(
            f"{sum(st['status'] == 'done' for st in self.state.values())}"
            f"/{len(self.state)} runs done in {_duration(time.time() - self.started)}"
        )
        for col in ("variant", "done", "failed", "not run", "steps/run", "wall/run"):
            table.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
        for variant in self.variants:
            n = self.counts(variant)
            runs = [st for i, st in self.state.items() if self.specs[i].variant == variant]
            done = [st for st in runs if st["status"] == "done"]
            steps = sorted({st.get("steps", 0) for st in done})
            walls = [st.get("wall", 0.0) for st in done]
            table.add_row(
                variant,
                str(n["done"]),
                f"[red]{n['failed']}[/]" if n["failed"] else "0",
                str(n["running"] + n["pending"]),
                "/".join(f"{s:g}" for s in steps) if steps else "",
                f"{sum(walls) / len(walls):.0f} s" if walls else "",
            )
        return table

    # --- updates ------------------------------------------------------------------------------

    def update(self, run_id: str, state: dict[str, Any]) -> None:
        if run_id not in self.state or self.state[run_id]["status"] in FINISHED:
            return  # a finished run's last progress, drained after its result: stale
        before = self.state[run_id].get("status")
        self.state[run_id].update(state)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight()))
        if self.live is not None:
            self.live.update(self.render())
        elif state.get("status") != before and state.get("status") == "running":
            self.console.print(f"started  {self.specs[run_id].label}")

    def finished(self, result: RunResult, summary: str) -> None:
        """``result`` replaces whatever its run last reported: its status, wall time and steps."""
        self.state[result.run_id] = {
            "status": result.status,
            "wall": result.costs.get("wall_seconds", 0.0),
            "steps": result.costs.get("optimizer_steps", 0.0),
        }
        if self.live is not None:
            self.live.update(self.render())
            self.live.console.print(summary)
        else:
            self.console.print(summary)


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)


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

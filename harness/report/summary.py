"""What a leaderboard shows, as one value: the ranked table and what it is about (its judges, its
capability tasks and tolerance, the suites and seeds it holds, the judged samples' statistics).
``harness.report.leaderboard.summarise`` makes it; the tables, notes and plots read it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.core.judges import Judges
from harness.report.compare import SampleSummary


@dataclass(frozen=True, eq=False)  # compared by identity: it holds a frame
class Summary:
    """``table``: one row per variant, ranked (``rank`` 1 = best) by ``judges.primary``'s
    win-rate (its columns: ``harness.report.leaderboard.summarise``). ``samples``: the judged
    samples' statistics, or None for a bare table (intervals over seeds only)."""

    table: pd.DataFrame
    judges: Judges
    tasks: list[str]
    tolerance: float
    suites: list[str]
    seeds: list[int]
    samples: SampleSummary | None = None

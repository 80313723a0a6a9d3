"""Tables never cut a value: plain full-width lines in a file or CI log, split by columns on a
narrow terminal."""

from __future__ import annotations

import io
from pathlib import Path

import typer
from rich.console import Console
from typer.testing import CliRunner

from harness.cli.common import column_blocks, print_table
from harness.cli.main import app as harness_app
from harness.cli.results import register
from harness.report.leaderboard import summarise_dir, table_cells
from harness.report.results import load_suite_info, read_table
from tests.report.test_results import write_results_dir

HEADERS = ["rank", "variant", "win-rate gold (primary)", "reward gold", "KL", "wall s", "tokens"]
ROW = ["1", "best_of_n (n=8)", "0.681 [0.600, 0.765]", "-0.123", "1.20", "123.4", "1234567"]


def test_column_blocks_repeat_the_keys_and_fit_the_width() -> None:
    widths = [4, 15, 23, 11, 4, 6, 7]
    blocks = column_blocks(widths, keys=2, width=60)
    assert all(block[:2] == [0, 1] for block in blocks)
    assert [i for block in blocks for i in block[2:]] == list(range(2, 7))
    assert all(1 + sum(widths[i] + 3 for i in block) <= 60 for block in blocks)
    assert column_blocks(widths, keys=2, width=500) == [list(range(7))]


def test_an_80_column_terminal_shows_every_cell_whole() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=80, color_system=None)
    print_table(console, "Leaderboard", HEADERS * 2, [ROW * 2], {1}, keys=2)
    shown = buffer.getvalue()
    assert "…" not in shown
    assert max(len(line) for line in shown.splitlines()) <= 80
    for cell in ROW:
        assert cell in shown


def test_leaderboard_in_a_log_file_has_every_number_uncut(tmp_path: Path) -> None:
    results = write_results_dir(tmp_path)
    app = typer.Typer()
    register(app)
    log = tmp_path / "log.txt"
    log.write_text(CliRunner().invoke(app, ["leaderboard", str(results)]).stdout)
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "…" in line or "─" in line]
    long_df, runs_df = read_table(results)
    headers, rows = table_cells(summarise_dir(results, long_df, runs_df, load_suite_info(results)))
    assert len(headers) > 15 and len(rows) >= 3
    for row in rows:  # each variant's line holds each of its cells whole
        (line,) = [line for line in lines if line.split()[:2] == row[:2]]
        position = 0
        for cell in row:
            found = line.find(cell, position)
            assert found >= 0, (cell, line)
            position = found + len(cell)


def test_methods_in_a_log_file_has_every_default_uncut(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(CliRunner().invoke(harness_app, ["methods"]).stdout)
    text = log.read_text()
    assert "…" not in text
    assert "length_penalty=1.0" in text and "rank_weight=1.0" in text

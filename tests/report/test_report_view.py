"""The HTML report as a reader sees it: every plot titled, its axis zoomed to the data with the
0.5 line shown, heatmap numbers in a colour that reads on their cell; and the page rendered in a
real browser (headless Chromium), looked at: its ranking's quality columns fit 1,400 px without
sideways scrolling, their header stays in view, every plot loads, the screenshot is not blank."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from harness.report.leaderboard import _matrix, summarise_dir, write_leaderboard
from harness.report.plots import figures, text_colour
from harness.report.results import load_suite_info, read_table
from harness.report.summary import Summary
from tests.report.test_leaderboard import DESIGN, SHIFTS
from tests.sampled import write_sampled_dir

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "results" / "baselines"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((b for b in BROWSERS if shutil.which(b)), None)
# CI installs Chromium (.ci/run) and sets this, so that a missing browser fails there, not skips
REQUIRED = os.environ.get("HARNESS_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sampled_dir(tmp_path_factory.mktemp("view"), SHIFTS, **DESIGN)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default suite's committed results (8 variants, 3 judges, 3 tasks, the judged samples
    beside them: groups, rank intervals, rewards) as a results dir."""
    out = tmp_path_factory.mktemp("baseline")
    shutil.copy(BASELINE / "tiny.parquet", out / "table.parquet")
    shutil.copy(BASELINE / "tiny.runs.parquet", out / "runs.parquet")
    shutil.copy(BASELINE / "tiny.suite.json", out / "suite.json")
    shutil.copy(BASELINE / "tiny.samples.parquet", out / "samples.parquet")
    shutil.copy(BASELINE / "tiny.reference_samples.parquet", out / "reference_samples.parquet")
    return out


def _summary(results: Path) -> Summary:
    long_df, runs_df = read_table(results)
    return summarise_dir(results, long_df, runs_df, load_suite_info(results))


def _figures(results: Path) -> list[tuple[str, Figure]]:
    summary = _summary(results)
    return figures(summary, read_table(results)[0], _matrix(summary))


def test_every_plot_has_a_title(sampled: Path, default_run: Path) -> None:
    for results in (sampled, default_run):
        for caption, fig in _figures(results):
            titles = [ax.get_title() for ax in fig.axes] + [fig.get_suptitle()]
            assert any(t.strip() for t in titles), caption


def test_the_win_rate_axis_spans_the_data_and_shows_the_half_line(default_run: Path) -> None:
    summary = _summary(default_run)
    (_, fig), (_, kl_fig) = _figures(default_run)[:2]
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    table = summary.table
    ends = np.concatenate(
        [
            table[f"winrate.{j}{e}"].to_numpy(float)
            for j in summary.judges.names
            for e in (".low", ".high")
        ]
    )
    assert low < min(ends.min(), 0.5) and high > ends.max()
    # zoomed: within a tenth of the data's span of it, where a 0-1 axis would be far wider
    span = max(ends.max(), 0.5) - min(ends.min(), 0.5)
    assert (high - low) <= 1.2 * span < 1.0
    for axes in (ax, kl_fig.axes[0]):
        halves = [
            line
            for line in axes.get_lines()
            if isinstance(line, Line2D) and list(line.get_ydata()) == [0.5, 0.5]
        ]
        assert halves, "no 0.5 line"
        assert axes.get_ylim()[0] < 0.5 < axes.get_ylim()[1]


def test_heatmap_numbers_are_white_on_dark_cells_and_black_on_light_ones(sampled: Path) -> None:
    assert text_colour((0.02, 0.19, 0.38, 1.0)) == "white"  # RdBu's darkest blue
    assert text_colour((0.40, 0.0, 0.12, 1.0)) == "white"  # its darkest red
    assert text_colour((0.97, 0.97, 0.97, 1.0)) == "black"  # its middle
    caption, fig = _figures(sampled)[-1]
    assert caption.startswith("Pairwise differences")
    ax = fig.axes[0]
    image = ax.get_images()[0]
    texts = [t for t in ax.texts if isinstance(t, Text)]
    assert texts
    for t in texts:
        value = float(t.get_text().rstrip("*"))
        expected = text_colour(image.to_rgba(value))
        assert t.get_color() == expected
    colours = {t.get_color() for t in texts}
    assert colours == {"white", "black"}  # c's +-0.17 cells are dark, a-b's 0.00 light


# --- in a browser -------------------------------------------------------------------------------

# measures the rendered page and writes what it found into it, for --dump-dom to print; added to
# a copy of the page only (the report itself carries no script)
PROBE = """<script>
window.addEventListener("load", () => {
  const quality = document.querySelector("table.ranking");
  const found = {
    page: document.documentElement.scrollWidth, window: window.innerWidth,
    right: quality.getBoundingClientRect().right,
    sticky: getComputedStyle(quality.querySelector("th")).position,
    images: [...document.images].map(i => i.naturalWidth),
    captions: [...document.querySelectorAll("figure figcaption")].map(c => c.textContent),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def _browser(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None, f"none of {', '.join(BROWSERS)} is installed"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
    flags += ["--disable-background-networking", "--disable-component-update"]
    flags += [f"--user-data-dir={profile}", "--window-size=1400,1400"]
    return subprocess.run(
        [BROWSER, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.skipif(
    BROWSER is None and not REQUIRED, reason="needs Chromium: apt-get install chromium"
)
@pytest.mark.parametrize("which", ["sampled", "default_run"])
def test_the_report_in_chromium_at_1400_px(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    results: Path = request.getfixturevalue(which)
    long_df, runs_df = read_table(results)
    _, page = write_leaderboard(results, long_df, runs_df, load_suite_info(results))
    text = page.read_text()
    plots = len(re.findall(r'<img alt="', text))
    assert plots >= 3
    probed = tmp_path / "probed.html"
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    dom = _browser(
        "--virtual-time-budget=5000", "--dump-dom", probed.as_uri(), profile=tmp_path / "p"
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert match, f"the browser ran no probe: {dom.stderr[-2000:]}"
    found = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert found["window"] == 1400
    assert found["right"] <= found["window"], "the quality columns scroll sideways"
    assert found["page"] <= found["window"], "the page scrolls sideways"
    assert found["sticky"] == "sticky"
    assert len(found["images"]) == plots and all(w > 300 for w in found["images"])
    assert len(found["captions"]) == plots and all(found["captions"])
    shot = tmp_path / "report.png"
    _browser(f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "p")
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 50_000  # a blank 1400x1400 page compresses to a few kB

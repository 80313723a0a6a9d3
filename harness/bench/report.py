"""The ``harness bench`` report as table cells (shared with the CLI's table), as markdown, and
its two files, ``bench.json`` and ``bench.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.files import write_atomic

HEADERS = ["bench", "unit", "ours/s", "TRL/s", "ours/TRL", "steady", "samples", "tokens", "note"]


def _fmt(x: float | None, spec: str = ",.1f") -> str:
    return "-" if x is None else format(x, spec)


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The report's rows as table cells, in ``HEADERS`` order."""
    cells = []
    for row in report["rows"]:
        ours, trl = row["ours"], row["trl"]
        work = ours["work"] if ours else {}
        cells.append(
            [
                row["name"],
                row["unit"],
                _fmt(ours and ours["median_per_s"]),
                _fmt(trl and trl["median_per_s"]),
                _fmt(row["ratio"], ".2f"),
                _fmt(row["steady_ratio"], ".2f"),
                _fmt(work.get("samples"), ",d"),
                _fmt(work.get("train_tokens") or work.get("generated_tokens"), ",d"),
                row["note"],
            ]
        )
    return cells


def markdown(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    lines = [
        "# harness bench: ours vs TRL",
        "",
        f"Median of {cfg['repeats']} timed runs after {cfg['warmup']} warm-up(s); "
        f"{cfg['steps']} optimizer steps, batch size {cfg['batch_size']}, group size "
        f"{cfg['group_size']}, {cfg['max_new_tokens']} new tokens; torch threads "
        f"{env['torch_threads']}; load average {env['load_average_before'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after; "
        f"{env['trl_missing'] or 'TRL ' + str(env['packages'].get('trl'))}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in table_rows(report)]
    lines += [
        "",
        "ours/TRL: ratio of median samples/s, set-up included (TRL: trainer construction + "
        "train()). steady: the same from the end of the first optimizer step to the last. "
        "samples / tokens: the work of one run (tokens through the trained model with "
        "gradients, or generated), equal on both sides (checked).",
    ]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``bench.json`` and ``bench.md`` under ``out``, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "bench.json", out / "bench.md"
    write_atomic(paths[0], json.dumps(report, indent=2) + "\n")
    write_atomic(paths[1], markdown(report))
    return paths

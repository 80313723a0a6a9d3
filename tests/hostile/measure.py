"""Run the hostile-input corpus against the harness in another source tree, each case in its own
process with a time and memory limit, and count the cases that end as they should (exit 2, the
field or file named, no traceback).

    python -m tests.hostile.measure --tree /path/to/a/checkout [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.hostile.cases import CASES, Case

TIMEOUT_S = 60
MEMORY_BYTES = 6 * 2**30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def outcome(case: Case, tree: Path) -> str:
    """``ok``, or what went wrong."""
    with tempfile.TemporaryDirectory() as tmp:
        args = case.setup(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"}
        try:
            done = subprocess.run(
                [sys.executable, "-m", "harness.cli", *args],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                preexec_fn=_limit,
            )
        except subprocess.TimeoutExpired:
            return f"no answer in {TIMEOUT_S} s"
    output = done.stdout + done.stderr
    if done.returncode != 2:
        return f"exit {done.returncode}"
    if "Traceback" in output or "internal error" in output:
        return "traceback or internal error"
    return "ok" if case.expect in done.stderr else f"exit 2 without {case.expect!r}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: outcome(c, args.tree.resolve()), CASES))
    by_kind: dict[str, list[int]] = {}
    for case, result in zip(CASES, results, strict=True):
        print(f"{case.kind:<8} {case.id:<32} {result}")
        by_kind.setdefault(case.kind, [0, 0])[0] += result == "ok"
        by_kind[case.kind][1] += 1
    for kind, (ok, total) in by_kind.items():
        print(f"{kind}: {ok}/{total}")
    passed = sum(r == "ok" for r in results)
    print(f"total: {passed}/{len(results)} ({100 * passed / len(results):.0f}%)")


if __name__ == "__main__":
    main()

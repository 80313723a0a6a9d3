"""The registry of methods: the built-ins merged with the methods installed packages register
under the ``alignment_harness.methods`` entry-point group. Plugins are fake distributions (a
``.dist-info`` folder and a module) in a temporary folder put on ``sys.path``, as pip would leave
them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from methods import BUILT_IN, ENTRY_POINT_GROUP, REGISTRY, DuplicateMethodError, Registry, get
from tests.conftest import REPO

GOOD = """
from methods.base import Method
from methods.params import DPOParams
METHOD = Method(name="{name}", description="A plugin method.", params=DPOParams,
                module="{module}", needs_reference=True)
"""


def install(root: Path, dist: str, version: str, module: str, body: str, points: str) -> None:
    """A distribution ``dist`` ``version`` with the module ``module`` and the entry points
    ``points`` (lines of ``name = value``), as installed packages look on ``sys.path``."""
    (root / f"{module}.py").write_text(body)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{points}\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("plugin_")]:
        del sys.modules[name]


def registry_of(site: Path) -> Registry:
    """A registry of the built-ins and the plugins installed under ``site`` only."""

    def discover() -> list[metadata.EntryPoint]:
        dists = metadata.distributions(path=[str(site)])
        found = [ep for d in dists for ep in d.entry_points if ep.group == ENTRY_POINT_GROUP]
        return sorted(found, key=lambda ep: ep.name)

    return Registry(BUILT_IN, discover)


def test_builtins_are_registered_with_their_origin() -> None:
    assert list(REGISTRY)[:8] == ["sft", "best_of_n", "ppo", "rrhf", "raft", "pro", "dpo", "grpo"]
    assert {"ipo", "simpo", "orpo", "kto", "rloo"} <= set(REGISTRY)
    assert REGISTRY.origin("dpo") == "built-in"


def test_a_plugin_joins_the_builtins_with_its_distribution(site: Path) -> None:
    body = GOOD.format(name="mine", module="plugin_mine_train")
    install(site, "my-plugin", "1.2.3", "plugin_mine", body, "mine = plugin_mine:METHOD")
    registry = registry_of(site)
    assert "mine" in registry and "dpo" in registry
    assert registry["mine"].module == "plugin_mine_train"
    assert registry.origin("mine") == "my-plugin 1.2.3"
    assert registry.broken == [] and registry.conflicts == {}


def test_nothing_is_read_before_the_first_use(site: Path) -> None:
    calls: list[int] = []
    registry = Registry(BUILT_IN, lambda: calls.append(1) or [])
    assert calls == []
    assert "dpo" in registry and "dpo" in registry
    assert calls == [1]  # once


def test_a_name_taken_twice_names_both_sources(site: Path) -> None:
    for dist in ("first-plugin", "second-plugin"):
        module = f"plugin_{dist.split('-')[0]}"
        body = GOOD.format(name="twice", module=module)
        install(site, dist, "0.1", module, body, f"twice = {module}:METHOD")
    body = GOOD.format(name="dpo", module="plugin_dpo")
    install(site, "dpo-clone", "2.0", "plugin_dpo", body, "dpo = plugin_dpo:METHOD")
    registry = registry_of(site)
    assert registry.conflicts == {
        "dpo": ["built-in", "dpo-clone 2.0"],
        "twice": ["first-plugin 0.1", "second-plugin 0.1"],
    }
    assert "twice" not in registry and "dpo" not in registry
    with pytest.raises(DuplicateMethodError, match=re.escape("by built-in and by dpo-clone 2.0")):
        registry.check()
    with pytest.raises(
        DuplicateMethodError, match=re.escape("first-plugin 0.1 and by second-plugin 0.1")
    ):
        registry["twice"]
    assert "grpo" in registry  # the rest still work


def test_a_broken_plugin_is_reported_and_the_rest_work(site: Path) -> None:
    install(
        site,
        "broken-plugin",
        "0.1",
        "plugin_broken",
        "raise ImportError('no torch here')",
        "broken = plugin_broken:METHOD",
    )
    install(
        site, "wrong-plugin", "0.2", "plugin_wrong", "METHOD = 42", "wrong = plugin_wrong:METHOD"
    )
    body = GOOD.format(name="other", module="plugin_fine")
    install(site, "misnamed-plugin", "0.3", "plugin_fine", body, "fine = plugin_fine:METHOD")
    registry = registry_of(site)
    broken = {b.entry_point.split(" ")[0]: b for b in registry.broken}
    assert set(broken) == {"broken", "wrong", "fine"}
    assert "ImportError: no torch here" in str(broken["broken"])
    assert "broken-plugin 0.1" in str(broken["broken"])
    assert "is a int, not a methods.base.Method" in broken["wrong"].error
    assert "named 'fine' but its Method is 'other'" in broken["fine"].error
    assert "dpo" in registry and "broken" not in registry
    registry.check()  # a broken plugin is no conflict


def test_get_suggests_a_close_name() -> None:
    with pytest.raises(KeyError, match="Did you mean 'simpo'"):
        get("simpoo")


PROBE = """
import json, sys
from typer.testing import CliRunner
from harness.cli import app
result = CliRunner().invoke(app, ["methods"])
print(json.dumps({"exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}))
"""


def cli_methods(site: Path) -> dict[str, object]:
    """``harness methods`` in a fresh interpreter that also sees the packages under ``site``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_cli_lists_a_plugin_and_names_a_broken_one(site: Path) -> None:
    body = GOOD.format(name="mine", module="plugin_mine_train")
    install(site, "my-plugin", "1.2.3", "plugin_mine", body, "mine = plugin_mine:METHOD")
    install(
        site,
        "broken-plugin",
        "0.1",
        "plugin_broken",
        "raise RuntimeError('boom')",
        "broken = plugin_broken:METHOD",
    )
    out = cli_methods(site)
    assert out["exit"] == 0
    assert "my-plugin 1.2.3" in str(out["stdout"]) and "built-in" in str(out["stdout"])
    assert "broken = plugin_broken:METHOD" in str(out["stderr"])
    assert "RuntimeError: boom" in str(out["stderr"])


def test_cli_exits_2_naming_both_sources_of_a_name(site: Path) -> None:
    for dist in ("first-plugin", "second-plugin"):
        module = f"plugin_{dist.split('-')[0]}"
        body = GOOD.format(name="twice", module=module)
        install(site, dist, "0.1", module, body, f"twice = {module}:METHOD")
    out = cli_methods(site)
    assert out["exit"] == 2
    assert "method 'twice' is registered twice" in str(out["stderr"])
    assert "first-plugin 0.1" in str(out["stderr"]) and "second-plugin 0.1" in str(out["stderr"])


def test_the_zoo_suite_runs_every_builtin_method() -> None:
    from harness.suite.loader import load_suite

    suite = load_suite(REPO / "suites" / "zoo.yaml")
    assert [v.method for v in suite.methods] == [m.name for m in BUILT_IN]
    assert len(suite.methods) == 13  # 13 * 12 / 2 = 78 pairs in the leaderboard's Holm table

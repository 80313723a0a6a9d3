"""Offline decided up front: the environment or one short probe of the hub, then a failure that
names everything missing without asking the hub again."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.run import preflight
from harness.suite.schema import Suite

REPO = Path(__file__).resolve().parents[2]


class _Hub(http.server.BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        self.send_response(self.code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Callable[[int], str]]:
    started: list[http.server.HTTPServer] = []

    def start(code: int) -> str:
        handler = type("Handler", (_Hub,), {"code": code})
        srv = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        started.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(("code", "reachable"), [(200, True), (401, True), (404, False)])
def test_probe_counts_only_a_hub_answer(
    server: Callable[[int], str], code: int, reachable: bool
) -> None:
    assert preflight.hub_reachable(server(code), timeout=2) is reachable


def test_probe_gives_up_on_a_silent_endpoint_at_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An endpoint that accepts the connection and never answers is no hub: the probe's request
    carries the probe's timeout, and the timeout it runs into counts as no answer."""
    timeouts: list[float] = []
    urlopen = urllib.request.urlopen

    def recorded(url: str, timeout: float) -> object:
        timeouts.append(timeout)
        return urlopen(url, timeout=timeout)

    monkeypatch.setattr(preflight.urllib.request, "urlopen", recorded)
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert not preflight.hub_reachable(f"http://127.0.0.1:{silent.getsockname()[1]}", 0.3)
    assert timeouts == [0.3]


@pytest.mark.slow
def test_unreachable_hub_fails_hh_offline(tmp_path: Path) -> None:
    """`harness run suites/hh.yaml` with no hub and no HF_HUB_OFFLINE: one probe finds no hub,
    the process goes offline (nothing after it asks the hub again), and it exits 2 with every
    missing model and dataset named as missing from the local cache."""
    env = {k: v for k, v in os.environ.items() if k not in preflight.OFFLINE_ENV}
    env.update(HF_ENDPOINT="http://10.255.255.1", HF_HOME=str(tmp_path / "hf"))
    cmd = [sys.executable, "-m", "harness.cli", "run", str(REPO / "suites/hh.yaml")]
    done = subprocess.run(
        [*cmd, "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "No hub answered at http://10.255.255.1" in done.stderr
    assert "the hub counts as offline (HF_HUB_OFFLINE=1)" in done.stderr
    assert "Nothing was started." in done.stderr
    assert (
        "policy model 'lomahony/eleuther-pythia410m-hh-sft': not in the local hub cache, "
        "and the hub is offline"
    ) in done.stderr
    assert (
        "eval_prompts dataset 'Anthropic/hh-rlhf': not in the local cache, and the hub is offline"
    ) in done.stderr
    assert "Traceback" not in done.stderr


# --- whether this machine can run a suite (harness validate) -------------------------------------


def _hh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Suite:
    """suites/hh.yaml on a 2-CPU machine without a GPU, offline, with an empty hub cache."""
    from harness.suite.loader import load_suite

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    return load_suite(REPO / "suites/hh.yaml")


def test_every_resource_a_run_lacks_is_named_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    suite = _hh(monkeypatch, tmp_path)
    problems = preflight.resource_problems(suite.resources, None, num_gpus=0)
    assert problems == [
        "resources.cpus_per_run is 4, but this machine has 2 CPUs",
        "resources.gpus_per_run is 1, but this machine has no GPU",
    ]
    assert preflight.resource_problems(suite.resources, "10.0.0.1:6379", 0) == []


def test_the_machine_findings_name_every_reason_hh_cannot_run_here(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    suite = _hh(monkeypatch, tmp_path)
    findings = preflight.machine_findings(suite, num_gpus=0)
    against = [(f.topic, f.text) for f in findings if not f.ok]
    assert ("pool", "resources.cpus_per_run is 4, but this machine has 2 CPUs") in against
    assert ("pool", "resources.gpus_per_run is 1, but this machine has no GPU") in against
    missing = [text for topic, text in against if topic == "models and data"]
    assert len(missing) == 7  # policy, reward, two judges, three data sources
    assert all("the hub is offline" in text for text in missing)
    hub = next(f for f in findings if f.topic == "hub")
    assert hub.ok and "offline (HF_HUB_OFFLINE=1)" in hub.text


def test_the_tiny_suite_can_run_on_one_cpu_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.suite.loader import load_suite

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    findings = preflight.machine_findings(load_suite(REPO / "suites/tiny.yaml"))
    assert all(f.ok for f in findings), findings
    assert {f.topic for f in findings} == {"pool", "hub", "models and data", "extras"}


def test_an_extra_the_suite_uses_and_lacks_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.suite.loader import load_suite

    suite = load_suite(REPO / "suites/tiny.yaml", ["tracking.backend=wandb"])
    real = preflight.importlib.util.find_spec
    monkeypatch.setattr(
        preflight.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wandb" else real(name, *a),
    )
    (finding,) = preflight.extra_findings(suite)
    assert not finding.ok and "needs the tracking extra" in finding.text


def test_validate_says_valid_and_that_it_cannot_run_here_with_exit_0(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app

    _hh(monkeypatch, tmp_path)
    env = {"COLUMNS": "200", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = CliRunner().invoke(app, ["validate", str(REPO / "suites/hh.yaml")], env=env)
    assert result.exit_code == 0, result.output
    assert "valid:" in result.stdout and "This machine:" in result.stdout
    assert "cannot run here: 9 reasons above" in result.stdout


def test_run_names_every_resource_and_every_missing_model_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from harness.cli.main import app

    _hh(monkeypatch, tmp_path)
    env = {"COLUMNS": "200", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    args = ["run", str(REPO / "suites/hh.yaml"), "--out", str(tmp_path / "out"), "--num-gpus", "0"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    said = result.stderr
    assert "this machine cannot run the suite:" in said
    assert "resources.cpus_per_run is 4, but this machine has 2 CPUs" in said
    assert "resources.gpus_per_run is 1, but this machine has no GPU" in said
    assert "policy model 'lomahony/eleuther-pythia410m-hh-sft': not in the local hub cache" in said
    assert said.rstrip().endswith("Nothing was started.")
    assert not (tmp_path / "out" / "hh" / "runs").exists()

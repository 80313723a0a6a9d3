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
    assert "running offline (HF_HUB_OFFLINE=1)" in done.stderr
    assert (
        "policy model 'lomahony/eleuther-pythia410m-hh-sft': not in the local hub cache, "
        "and the hub is offline"
    ) in done.stderr
    assert (
        "eval_prompts dataset 'Anthropic/hh-rlhf': not in the local cache, and the hub is offline"
    ) in done.stderr
    assert "Traceback" not in done.stderr

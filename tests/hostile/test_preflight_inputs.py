"""Hostile inputs found before any compute: model paths that are no hub id nor model folder, LoRA
targets the policy lacks, a tracking server that does not answer, ``bench --out`` that cannot be
written, a malformed ``suite.json`` for ``tune``, and a data file that starts with a byte order
mark. Each refusal is exit 2 naming the field or file, without a traceback."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.builder import store
from harness.cli import app
from harness.load.data import load_prompts_file, read_jsonl
from harness.run import preflight
from harness.suite.lora import Lora
from harness.suite.settings import Tracking
from harness.world.config import WorldConfig

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "suites" / "tiny.yaml")
SHIPPED = store.shipped(WorldConfig())
assert SHIPPED is not None
ONE_RUN = ["seeds=[0]", "eval.judges=[proxy]", "eval.primary_judge=proxy"]


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output, result.output
    assert "internal error" not in result.output, result.output
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def models_suite(tmp: Path, policy: str, reward: str | None = None, extra: str = "") -> Path:
    """A suite naming models (the shipped tiny world's by default) and its data as files."""
    world = SHIPPED
    assert world is not None
    data = world / "data"
    text = f"""name: hostile-models
models:
  policy: {json.dumps({"path": policy, "dtype": "float32"})}
  reward: {json.dumps({"path": reward or str(world / "proxy_rm"), "dtype": "float32"})}
data:
  train_prompts: {{source: file, path: {data / "train_prompts.jsonl"}, format: prompt}}
  eval_prompts: {{source: file, path: {data / "eval_prompts.jsonl"}, format: prompt}}
methods: [{{method: sft}}]
budget: {{prompts_per_round: 2, rounds: 1, samples_per_prompt: 2, max_new_tokens: 8}}
seeds: [0]
eval: {{judges: [proxy]}}
{extra}"""
    path = tmp / "suite.yaml"
    path.write_text(text)
    return path


def run_args(suite: Path | str, tmp: Path, *overrides: str) -> list[str]:
    args = ["run", str(suite), "--out", str(tmp / "results")]
    for item in overrides:
        args += ["-o", item]
    return args


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- model paths


def test_a_url_as_the_policy_is_no_hub_id(tmp_path: Path) -> None:
    """`models.policy.path: https://...` is refused before any run: exit 2, the field named, the
    URL given back, said to be neither a hub id nor a local folder."""
    url = "https://huggingface.co/gpt2"
    code, out = invoke(run_args(models_suite(tmp_path, url), tmp_path))
    assert code == 2, out
    assert "models.policy.path: neither a hub id" in out and f"(given: {url})" in out
    assert "neither a hub id" in out and "nor an existing local folder" in out
    assert not (tmp_path / "results").exists()


def test_a_path_climbing_out_is_no_hub_id(tmp_path: Path) -> None:
    """`models.reward.path: ../../x` (no such folder) is no hub id either: exit 2 naming
    `models.reward.path`."""
    code, out = invoke(
        run_args(models_suite(tmp_path, str(SHIPPED / "policy"), "../../x"), tmp_path)
    )
    assert code == 2, out
    assert "models.reward.path: neither a hub id" in out and "(given: ../../x)" in out


@pytest.mark.parametrize("good", ["gpt2", "org/name", "EleutherAI/pythia-70m", "a_b/c.d-e"])
def test_hub_ids_that_are_ids(good: str) -> None:
    """Names and namespace/name pairs of letters, digits, '-', '_' and '.' are hub ids."""
    assert preflight.is_hub_id(good)


@pytest.mark.parametrize(
    "bad",
    [
        "../../x",
        "https://huggingface.co/gpt2",
        "a/b/c",
        "x--y",
        "a..b",
        "name.git",
        "-x",
        "a b",
        "/abs",
        "x" * 97,
    ],
)
def test_hub_ids_that_are_not(bad: str) -> None:
    """A URL, a path with '..' or more than one '/', '--', a '.git' end, a leading '-', a space,
    an absolute path or 97 characters are no hub id."""
    assert not preflight.is_hub_id(bad)


def test_an_empty_folder_is_no_model(tmp_path: Path) -> None:
    """An empty folder as the policy: exit 2 naming `models.policy.path` and each missing part
    (config.json, weights, tokenizer)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = invoke(run_args(models_suite(tmp_path, str(empty)), tmp_path))
    assert code == 2, out
    assert "models.policy.path: not a model folder: no config.json" in out
    assert f"(given: {empty})" in out
    assert "no weights (*.safetensors, *.bin)" in out and "no tokenizer" in out


def test_etc_is_no_model() -> None:
    """`/etc` as the reward is a folder without a model's files: named, config.json missing."""
    ref = preflight.ModelRef(path="/etc")
    [problem] = preflight.model_folder_problems("models.reward", ref)
    assert problem.startswith("models.reward.path '/etc': not a model folder: no config.json")


def test_a_model_folder_without_a_tokenizer(tmp_path: Path) -> None:
    """A folder with config and weights but no tokenizer files: only the tokenizer is missing;
    with `tokenizer:` naming a folder that holds one, nothing is."""
    folder = tmp_path / "policy"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(SHIPPED / "policy" / name, folder / name)
    [problem] = preflight.model_folder_problems(
        "models.policy", preflight.ModelRef(path=str(folder))
    )
    assert "no tokenizer (none of tokenizer.json" in problem
    assert "no config.json" not in problem and "no weights" not in problem
    ref = preflight.ModelRef(path=str(folder), tokenizer=str(SHIPPED / "policy"))
    assert preflight.model_folder_problems("models.policy", ref) == []


def test_a_tokenizer_folder_without_a_tokenizer(tmp_path: Path) -> None:
    """`models.policy.tokenizer` naming an empty folder, or a file, is named as such."""
    (tmp_path / "tok").mkdir()
    (tmp_path / "file.txt").write_text("x")
    policy = str(SHIPPED / "policy")
    empty = preflight.ModelRef(path=policy, tokenizer=str(tmp_path / "tok"))
    [problem] = preflight.model_folder_problems("models.policy", empty)
    assert problem.startswith(f"models.policy.tokenizer '{tmp_path / 'tok'}': no tokenizer")
    a_file = preflight.ModelRef(path=policy, tokenizer=str(tmp_path / "file.txt"))
    [problem] = preflight.model_folder_problems("models.policy", a_file)
    assert "a file, not a tokenizer folder" in problem


def test_a_file_as_a_model(tmp_path: Path) -> None:
    """A judge whose path is a file: exit 2 naming `models.judges.<name>.path`, a file, not a
    model folder."""
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0")
    extra = f"  judges: {{other: {{path: {weights}}}}}\n"
    suite = models_suite(tmp_path, str(SHIPPED / "policy"))
    text = suite.read_text().replace("data:\n", extra + "data:\n", 1)
    suite.write_text(text.replace("eval: {judges: [proxy]}", "eval: {judges: [proxy, other]}"))
    code, out = invoke(run_args(suite, tmp_path))
    assert code == 2, out
    assert "models.judges.other.path: a file, not a model folder" in out
    assert f"(given: {weights})" in out


# --------------------------------------------------------------------------- LoRA targets


def test_lora_targets_the_policy_lacks(tmp_path: Path) -> None:
    """`lora.target_modules: [q_proj, c_attn]` on the tiny world's Llama policy: exit 2 before any
    run, naming the field, the name that matches nothing, and some layers that exist."""
    code, out = invoke(
        run_args(
            TINY,
            tmp_path,
            *ONE_RUN,
            "methods=[{method: dpo, lora: {target_modules: [q_proj, c_attn]}}]",
        )
    )
    assert code == 2, out
    assert "variant 'dpo': lora.target_modules ['q_proj', 'c_attn']" in out
    assert "no module of the policy matches 'c_attn'" in out
    assert "q_proj" in out.split("adaptable layers:")[1]
    assert not (tmp_path / "results" / "tiny").exists() or not any(
        (tmp_path / "results" / "tiny").glob("runs/*")
    )


def test_suite_lora_naming_a_block(tmp_path: Path) -> None:
    """`train.lora.target_modules: [mlp]` names a block, not a layer: exit 2 naming
    `train.lora.target_modules` and the block's kind."""
    code, out = invoke(
        run_args(
            TINY,
            tmp_path,
            *ONE_RUN,
            "methods=[{method: dpo}]",
            "train.lora={target_modules: [mlp]}",
        )
    )
    assert code == 2, out
    assert "train.lora.target_modules ['mlp']: 'mlp' matches a LlamaMLP" in out


def test_lora_targets_found_without_weights() -> None:
    """On the policy built on the meta device: layer names, full paths and 'all-linear' match;
    the tied output head is refused; no weight is held."""
    from transformers import AutoConfig

    from harness.load.lora import meta_model, target_problem

    model = meta_model(AutoConfig.from_pretrained(SHIPPED / "policy"))
    assert all(p.is_meta for p in model.parameters())
    assert target_problem(model, Lora(target_modules=["q_proj", "v_proj"])) is None
    assert target_problem(model, Lora(target_modules=["model.layers.0.mlp.up_proj"])) is None
    assert target_problem(model, Lora(target_modules="all-linear")) is None
    tied = target_problem(model, Lora(target_modules=["lm_head"]))
    assert tied is not None and "model.embed_tokens.weight" in tied


# --------------------------------------------------------------------------- tracking


def test_tracking_server_that_does_not_answer(tmp_path: Path) -> None:
    """`tracking.uri` an http server on a port nothing listens on: exit 2 naming `tracking.uri`
    (one probe, no MLflow retries), the runs never started."""
    uri = f"http://127.0.0.1:{free_port()}"
    code, out = invoke(
        run_args(TINY, tmp_path, *ONE_RUN, "tracking.backend=mlflow", f"tracking.uri={uri}")
    )
    assert code == 2, out
    assert f"tracking.uri '{uri}': no MLflow server answered" in out
    assert not (tmp_path / "results" / "tiny" / "mlruns").exists()


def test_tracking_stores_are_not_probed_and_any_answer_counts() -> None:
    """File stores, a relative path and the default need no probe; a server answering anything
    (here 404) is a server; credentials in the URI are not repeated."""
    for uri in (None, "mlruns", "file:///tmp/mlruns", "sqlite:///mlflow.db"):
        assert preflight.tracking_problem(Tracking(backend="mlflow", uri=uri)) is None

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{srv.server_address[1]}"
        assert preflight.tracking_problem(Tracking(backend="mlflow", uri=uri)) is None
    finally:
        srv.shutdown()
        srv.server_close()
    secret = f"http://user:secret@127.0.0.1:{free_port()}"
    problem = preflight.tracking_problem(Tracking(backend="mlflow", uri=secret), timeout=2)
    assert problem is not None and "secret" not in problem and "tracking.uri" in problem


# --------------------------------------------------------------------------- bench --out, tune


def test_bench_out_with_a_file_in_the_way(tmp_path: Path) -> None:
    """`harness bench --out FILE/bench`: exit 2 naming the file in the way, before any timing."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = invoke(["bench", "--steps", "1", "--out", str(blocker / "bench")])
    assert code == 2, out
    assert f"--out: {blocker} is a file, not a directory" in out


def test_bench_out_where_the_report_is_a_folder(tmp_path: Path) -> None:
    """`--out` whose bench.json is a folder: exit 2 naming it."""
    (tmp_path / "bench.json").mkdir()
    code, out = invoke(["bench", "--out", str(tmp_path)])
    assert code == 2, out
    assert f"{tmp_path / 'bench.json'} is a directory" in out


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object (a suite), found a list"),
        (b'{"eval": {"judges": "heldout"}, "methods": []}', "eval.judges: expected a list"),
        (b'{"eval": {"judges": ["heldout"]}, "methods": {}}', "methods: expected a list"),
        (b'{"eval": {"judges": ["heldout"]}, "methods": [{"method": "dpo"}]}', "methods[0].name"),
        (
            b'{"eval": {"judges": ["heldout"]}, "methods": [{"name": "a", "method": "dpo",'
            b' "params": [1]}]}',
            "methods[0].params: expected an object",
        ),
    ],
    ids=["not-json", "not-utf8", "a-list", "judges", "methods", "no-name", "params"],
)
def test_tune_on_a_malformed_suite_json(tmp_path: Path, content: bytes, expect: str) -> None:
    """`harness tune` on a results folder whose suite.json is not JSON or not a suite's shape:
    exit 2 naming suite.json and what is wrong."""
    (tmp_path / "suite.json").write_bytes(content)
    code, out = invoke(["tune", str(tmp_path)])
    assert code == 2, out
    assert f"{tmp_path / 'suite.json'}:" in out and expect in out


# --------------------------------------------------------------------------- data


def test_a_byte_order_mark_does_not_drop_the_first_record(tmp_path: Path) -> None:
    """A JSONL file written with a UTF-8 byte order mark: its first record is read, not counted
    malformed."""
    path = tmp_path / "prompts.jsonl"
    lines = [json.dumps({"prompt": f"Human: question {i}\n\nAssistant:"}) for i in range(3)]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    assert next(iter(read_jsonl(path))) == {"prompt": "Human: question 0\n\nAssistant:"}
    prompts, stats = load_prompts_file(path, "prompt")
    assert len(prompts) == 3 and stats.total == 3 and stats.kept == 3, stats.summary()


@pytest.fixture(autouse=True)
def _no_leftover(tmp_path: Path) -> Iterator[None]:
    yield
    assert not list(tmp_path.glob("**/*.partial-*"))


def test_validate_names_model_paths_that_cannot_be_models() -> None:
    """`harness validate` (not only `run`) refuses a URL as the policy and `/etc` as the reward,
    exit 2 naming `models.policy.path` and `models.reward.path`, each once (the reference is the
    policy itself and is not named twice); the listings are all it reads."""
    from typer.testing import CliRunner

    from harness.cli import app

    hh = str(Path(__file__).resolve().parents[2] / "suites" / "hh.yaml")
    args = ["validate", hh, "-o", "models.policy.path=https://x.example/m"]
    result = CliRunner().invoke(app, [*args, "-o", "models.reward.path=/etc"])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert out.count("models.policy.path: neither a hub id") == 1
    assert "models.reward.path: not a model folder: no config.json" in out
    assert "models.reference" not in out and "Traceback" not in out

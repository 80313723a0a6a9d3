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

import os
import urllib.error
import urllib.request
from pathlib import Path

from harness.suite.schema import DataSource, ModelRef, Suite

HINT = (
    "No model or dataset hub here? `harness run suites/tiny.yaml` runs every method end to end "
    "fully offline on the embedded tiny world."
)


DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_SECONDS = 3.0
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


class PreflightError(RuntimeError):
    def __init__(self, problems: list[str], offline_because: str | None = None) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        why = f"\n{offline_because}" if offline_because else ""
        super().__init__(f"cannot get what the suite names:\n{lines}{why}\n{HINT}")


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
        f"No hub answered at {endpoint} within {timeout:g} s: running offline "
        "(HF_HUB_OFFLINE=1), from the local cache only. Set HF_HUB_OFFLINE=1 to skip the probe."
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


def check(suite: Suite, offline_because: str | None = None) -> None:
    """Raise ``PreflightError`` listing every model and dataset that cannot be resolved
    (``offline_because``: what ``decide_offline`` said, told with the problems)."""
    if suite.models is None:
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
    problems = [p for role, ref in roles.items() if (p := check_model(role, ref))]
    sources = {"train_prompts": suite.data.train_prompts, "eval_prompts": suite.data.eval_prompts}
    if suite.data.preferences is not None:
        sources["preferences"] = suite.data.preferences
    problems += [p for role, src in sources.items() if (p := check_dataset(role, src))]
    if problems:
        raise PreflightError(problems, offline_because)

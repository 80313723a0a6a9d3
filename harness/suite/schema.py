"""The suite spec: a strict, typed schema for a suite (pydantic models, every field checked).

``Suite.model_validate`` fills the defaults that depend on other fields (data from the world, the
reference model, the primary judge...) and checks everything in one pass (types, unknown keys,
cross-field rules). Reading a file, overrides and error messages: ``harness.suite.loader``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Union,
    cast,
)

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness.core.judges import RESERVED, default_primary_judge
from harness.core.rules import DEFAULT_TOLERANCE, MAX_TOLERANCE
from harness.suite import checkpoints as ckpt
from harness.suite.bounds import (
    MAX_BOOTSTRAP,
    MAX_JUDGES,
    MAX_SEED,
    MAX_SEEDS,
    MAX_VARIANTS,
    TEMPERATURE,
    Batch,
    Prompts,
    PromptTokens,
    Rounds,
    Samples,
    Slug,
    Strict,
    TaskName,
    Tokens,
)
from harness.suite.generation import DEFAULT as DEFAULT_GENERATION
from harness.suite.generation import Generation
from harness.suite.lora import Lora
from harness.suite.rules import WORLD_SPLITS, cross_checks, fill_defaults
from harness.suite.settings import Resources, Tracking, VariantResources
from harness.suite.sweep import expand_methods
from harness.world.config import WorldConfig
from methods import REGISTRY
from methods.base import MethodParams

# --- models and data -----------------------------------------------------------------------------


class ModelRef(Strict):
    path: str = Field(min_length=1, description="Hub id or local directory.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    tokenizer: str | None = Field(None, description="Tokenizer path if not the model's own.")
    trust_remote_code: bool = Field(False, description="Run the repository's own model code.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_prompt_tokens: PromptTokens = Field(512, description="Prompts are truncated from the left.")
    chat_template: Literal["auto", "never"] = Field(
        "auto",
        description=(
            "auto: render prompts with the policy tokenizer's chat template when it has one."
        ),
    )


class Models(Strict):
    policy: ModelRef = Field(description="The base policy every method starts from.")
    reference: ModelRef | None = Field(None, description="Frozen reference; default: the policy.")
    reward: ModelRef = Field(description="The training (proxy) reward model.")
    judges: dict[Slug, ModelRef] = Field(
        default_factory=dict, max_length=MAX_JUDGES, description="Held-out judge RMs."
    )

    @field_validator("judges")
    @classmethod
    def _no_reserved_judge_names(cls, judges: dict[str, ModelRef]) -> dict[str, ModelRef]:
        if set(RESERVED) & set(judges):
            names = " and ".join(f"'{name}'" for name in RESERVED)
            raise PydanticCustomError("reserved", f"judge names {names} are reserved")
        return judges


class DataSource(Strict):
    source: Literal["world", "hub", "file"]
    path: str | None = Field(None, validate_default=True, description="Hub dataset id or file.")
    data_dir: str | None = Field(None, description="Hub subset, e.g. 'harmless-base'.")
    split: str = "train"
    format: Literal["hh", "prompt"] = Field(
        "hh", description="'hh': `chosen`/`rejected` HH text; 'prompt': a `prompt` field."
    )
    limit: Prompts | None = None

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, path: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if source in ("file", "hub") and not path:
            raise PydanticCustomError("required", "required when source is '{s}'", {"s": source})
        if source != "file" or path is None:
            return path
        return _data_file(path, Path((info.context or {}).get("base_dir", ".")))

    @model_validator(mode="after")
    def _world_split(self) -> DataSource:
        if self.source == "world" and self.split not in WORLD_SPLITS.values():
            splits = ", ".join(WORLD_SPLITS.values())
            raise PydanticCustomError(
                "split", "the world's splits are {s}; got {g!r}", {"s": splits, "g": self.split}
            )
        return self


def _data_file(path: str, base_dir: Path) -> str:
    """The absolute path of a data file, which must exist and be ``.jsonl`` / ``.jsonl.gz``."""
    try:
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            resolved = base_dir / resolved
        resolved = resolved.resolve()
        exists = resolved.is_file()
    except (OSError, RuntimeError) as exc:  # ~nosuchuser, a symlink loop, a name too long
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PydanticCustomError("path", "unusable path: {r}", {"r": reason}) from None
    if not exists:
        raise PydanticCustomError("file_not_found", "file not found: {p}", {"p": str(resolved)})
    if not resolved.name.endswith((".jsonl", ".jsonl.gz")):
        raise PydanticCustomError("file_type", "a data file is .jsonl or .jsonl.gz")
    return str(resolved)


class Data(Strict):
    train_prompts: DataSource
    preferences: DataSource | None = None
    eval_prompts: DataSource


# --- methods: one Variant class per registered method, a union discriminated on `method` ----------


def _omit_when_none(self: BaseModel, handler: Any) -> Any:
    """Dump without ``lora`` (or a variant's ``resources``) when there is none: a suite without
    them hashes (and its runs are identified) as before they existed."""
    data = handler(self)
    for key in ("lora", "resources"):
        if isinstance(data, dict) and key in data and data[key] is None:
            del data[key]
    return data


class VariantBase(Strict):
    name: Slug = Field(description="Unique within the suite; default: the method name.")
    method: str
    params: MethodParams
    lora: Lora | None = Field(
        None, description="Train LoRA adapters, not every weight; default: train.lora."
    )
    resources: VariantResources | None = Field(
        None,
        description="What this variant's runs reserve instead of the suite's resources (e.g. "
        "workers_per_run: 2); each field left out: the suite's.",
    )
    _dump = model_serializer(mode="wrap")(_omit_when_none)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None and "method" in data:
            return {**data, "name": data["method"]}
        return data


def _variant_class(method: str) -> type[VariantBase]:
    params = REGISTRY[method].params
    return create_model(
        f"{params.__name__.removesuffix('Params')}Variant",
        __base__=VariantBase,
        method=(cast(Any, Literal)[method], ...),
        params=(params, Field(default_factory=params)),
    )


VARIANTS: dict[str, type[VariantBase]] = {name: _variant_class(name) for name in REGISTRY}
if TYPE_CHECKING:
    Variant = VariantBase
else:
    Variant = Annotated[Union[tuple(VARIANTS.values())], Field(discriminator="method")]  # noqa: UP007


# --- budget, evaluation, resources ---------------------------------------------------------------


class Budget(Strict):
    prompts_per_round: Prompts
    rounds: Rounds
    samples_per_prompt: Samples
    max_new_tokens: Tokens


class Decoding(Strict):
    temperature: float = Field(1.0, ge=TEMPERATURE[0], le=TEMPERATURE[1])
    top_p: float = Field(1.0, gt=0, le=1)


class EvalDecoding(Decoding):
    max_new_tokens: Tokens | None = Field(None, description="Default: the budget's.")


class Train(Strict):
    decoding: Decoding = Field(
        default_factory=Decoding,
        description="How methods sample while training (the budget's max_new_tokens applies).",
    )
    lora: Lora | None = Field(
        None, description="LoRA for every trained variant that gives no `lora` of its own."
    )
    _dump = model_serializer(mode="wrap")(_omit_when_none)


class LmEval(Strict):
    tasks: list[TaskName] = Field(
        default_factory=list, max_length=1000, description="World default: its tiny tasks."
    )
    tolerance: float = Field(
        DEFAULT_TOLERANCE, ge=0, le=MAX_TOLERANCE, description="Largest accepted capability drop."
    )
    limit: Prompts | None = None
    batch_size: Batch = 16


class Eval(Strict):
    judges: list[str] = Field(
        min_length=1, max_length=MAX_JUDGES, description="proxy, gold, heldout or models.judges."
    )
    primary_judge: str | None = Field(None, description="Default: the first non-proxy judge.")
    num_prompts: Prompts = 128
    samples_per_prompt: Samples = Field(
        1,
        description="Answers per eval prompt from the policy and from the reference: a prompt's "
        "win-rate is over all k x k pairs.",
    )
    decoding: EvalDecoding = Field(default_factory=EvalDecoding)
    lm_eval: LmEval = Field(default_factory=LmEval)
    bootstrap: int = Field(
        1000, ge=100, le=MAX_BOOTSTRAP, description="Bootstrap resamples for intervals."
    )
    checkpoints: ckpt.Checkpoints = "none"  # harness.suite.checkpoints
    checkpoint_prompts: ckpt.CheckpointPrompts = ckpt.DEFAULT_CHECKPOINT_PROMPTS

    @model_serializer(mode="wrap")
    def _hash_as_before(self, handler: Any) -> dict[str, Any]:
        return ckpt.drop_when_off(handler(self))


# --- the suite -----------------------------------------------------------------------------------


class Suite(Strict):
    name: Slug
    world: WorldConfig | None = None
    models: Models | None = None
    data: Data
    methods: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)
    budget: Budget
    train: Train = Field(default_factory=Train)
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] = Field(
        min_length=1, max_length=MAX_SEEDS
    )
    eval: Eval
    resources: Resources = Field(default_factory=Resources)
    tracking: Tracking = Field(default_factory=Tracking)
    generation: Generation = Field(
        default_factory=Generation,
        description="The backend every sample is drawn through: hf (default) or vllm.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _check_all(cls, data: Any, handler: Any) -> Suite:
        """Fill the defaults, then report type errors and cross-field errors together."""
        if not isinstance(data, dict):
            return handler(data)
        data, swept = expand_methods(data, MAX_VARIANTS)  # `sweep:` -> one variant per value
        data = fill_defaults(data)
        cross = [
            InitErrorDetails(type=PydanticCustomError("suite", msg), loc=loc, input=given)
            for loc, given, msg in swept + cross_checks(data)
        ]
        try:
            suite = handler(data)
        except ValidationError as exc:
            if not cross:
                raise
            raise ValidationError.from_exception_data(cls.__name__, _details(exc) + cross) from None
        if cross:
            raise ValidationError.from_exception_data(cls.__name__, cross)
        suite = _resolve(suite)
        spread = _spread_checks(suite)
        if spread:
            raise ValidationError.from_exception_data(cls.__name__, spread)
        return suite

    @model_serializer(mode="wrap")
    def _default_generation_unsaid(self, handler: Any) -> Any:
        """The default ``generation`` (hf) is left out of every dump, so a suite that does not
        name a backend keeps the hash, run ids and ``suite.json`` it had before the field
        existed; another backend is part of them (its samples are other draws)."""
        data = handler(self)
        if isinstance(data, dict) and self.generation == DEFAULT_GENERATION:
            data.pop("generation", None)
        return data

    def variant(self, name: str) -> VariantBase:
        for variant in self.methods:
            if variant.name == name:
                return variant
        raise KeyError(f"no variant '{name}'; variants: {', '.join(v.name for v in self.methods)}")

    def resources_of(self, variant: str) -> Resources:
        """What each run of ``variant`` reserves: the suite's resources, with the variant's own
        where it gives them (checked when the suite was validated). A method that trains nothing
        has nothing to spread: its runs are one process, of one worker's share."""
        found = self.variant(variant)
        res = self.resources.overridden(found.resources)
        if res.workers > 1 and not REGISTRY[found.method].trains:
            one = {"cpus_per_run": res.cpus_per_worker, "gpus_per_run": res.gpus_per_worker}
            return res.model_copy(update={**one, "workers_per_run": 1})
        return res

    def run_resources(self) -> list[Resources]:
        """The distinct reservations of the suite's runs (one, unless a variant gives its own)."""
        found: list[Resources] = []
        for variant in self.methods:
            res = self.resources_of(variant.name)
            if res not in found:
                found.append(res)
        return found

    def hash(self) -> str:
        """Stable sha256 of the resolved content (defaults filled, file paths absolute); where
        the runs are tracked is not content."""
        dump = self.model_dump(mode="json", exclude={"tracking"})
        blob = json.dumps(dump, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(
            type=PydanticCustomError(e["type"], e["msg"], e.get("ctx")),
            loc=e["loc"],
            input=e["input"],
        )
        for e in exc.errors()
    ]


def _spread_checks(suite: Suite) -> list[InitErrorDetails]:
    """A variant's own resources that break a rule of ``Resources`` once combined with the
    suite's, and what a run spread over several workers cannot do: train LoRA adapters, evaluate
    checkpoints during training, or sample through vLLM (each worker samples with hf)."""
    issues: list[InitErrorDetails] = []

    def issue(loc: tuple[str | int, ...], given: Any, msg: str) -> None:
        details = InitErrorDetails(type=PydanticCustomError("suite", msg), loc=loc, input=given)
        issues.append(details)

    for i, variant in enumerate(suite.methods):
        where: tuple[str | int, ...] = ("methods", i, "resources")
        try:
            res = suite.resources.overridden(variant.resources)
        except ValidationError as exc:
            given = variant.resources.model_dump(exclude_none=True) if variant.resources else None
            for e in exc.errors():
                issue(where, given, e["msg"])
            continue
        if res.workers == 1 or not REGISTRY[variant.method].trains:
            continue
        spread = f"{variant.name} is spread over {res.workers} workers"
        if variant.lora is not None:
            msg = f"{spread}: LoRA adapters train on one worker"
            issue(("methods", i, "lora"), variant.lora.model_dump(), msg)
        if ckpt.checkpoint_rounds(suite.eval.checkpoints, suite.budget.rounds):
            msg = f"{spread}: eval.checkpoints needs runs of one worker"
            issue(("eval", "checkpoints"), suite.eval.checkpoints, msg)
        if suite.generation.backend != "hf":
            msg = f"{spread}: a run of several workers samples with the hf backend"
            issue(("generation", "backend"), suite.generation.backend, msg)
    return issues


def _resolve(suite: Suite) -> Suite:
    """Defaults that copy other (validated) fields: the reference, primary judge, eval length,
    and the suite's LoRA into each trained variant that gives none."""
    models, ev, methods = suite.models, suite.eval, suite.methods
    if models is not None and models.reference is None:
        models = models.model_copy(update={"reference": models.policy})
    if ev.primary_judge is None:
        ev = ev.model_copy(update={"primary_judge": default_primary_judge(ev.judges)})
    if ev.decoding.max_new_tokens is None:
        decoding = ev.decoding.model_copy(update={"max_new_tokens": suite.budget.max_new_tokens})
        ev = ev.model_copy(update={"decoding": decoding})
    if suite.train.lora is not None:
        methods = [
            v.model_copy(update={"lora": suite.train.lora})
            if v.lora is None and REGISTRY[v.method].trains
            else v
            for v in methods
        ]
    return suite.model_copy(update={"models": models, "eval": ev, "methods": methods})

"""A variant's ``lora:`` section (Hu et al. 2021): the adapters' settings, validated without torch.
Attaching them to a policy is ``harness.load.lora``'s."""

from __future__ import annotations

import importlib.util
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

INSTALL = "pip install 'peft>=0.21', or the project's extra: pip install -e '.[lora]'"


MAX_RANK = 4096


ALL_LINEAR = "all-linear"


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,127}")


def peft_installed() -> bool:
    """Whether ``peft`` can be imported (the suite check; tests replace it to simulate none)."""
    return importlib.util.find_spec("peft") is not None


def _targets(value: str | list[str]) -> str | list[str]:
    if isinstance(value, str):
        if value != ALL_LINEAR:
            raise PydanticCustomError(
                "target_modules", "'all-linear' or a list of module names such as [q_proj, v_proj]"
            )
        return value
    if not value:
        raise PydanticCustomError("target_modules", "at least one module name")
    bad = [name for name in value if not _MODULE.fullmatch(name)]
    if bad:
        raise PydanticCustomError(
            "target_modules",
            "not module names: {bad} (a name is letters, digits, '_' and '.')",
            {"bad": ", ".join(map(repr, bad))},
        )
    return value


class Lora(BaseModel):
    """Low-rank adapters on the policy (peft's ``LoraConfig``: ``r``, ``lora_alpha``,
    ``lora_dropout``, ``target_modules``; no bias is trained)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    r: int = Field(16, ge=1, le=MAX_RANK, description="Rank of each adapter.")
    alpha: int = Field(
        32,
        ge=1,
        le=1_000_000,
        description="Scale: an adapter adds alpha / r * B A to its weight (fixed while r varies, "
        "as Hu et al. do, so a change of r needs no new learning rate).",
    )
    dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Dropout on the adapters' input while training; 0 keeps the log-probs in "
        "PPO's and GRPO's ratios deterministic.",
    )
    target_modules: Annotated[str | list[str], AfterValidator(_targets)] = Field(
        ALL_LINEAR,
        max_length=1000,
        description="'all-linear': every linear layer but the output head; or module names "
        "(a name matches each module whose path ends with it, e.g. [q_proj, v_proj]).",
    )

    @model_validator(mode="after")
    def _peft_installed(self) -> Lora:
        if not peft_installed():
            msg = "lora needs 'peft', which is not installed ({install})"
            raise PydanticCustomError("lora", msg, {"install": INSTALL})
        return self

"""LoRA (Hu et al. 2021) for every trained method: the only module that imports ``peft``.

A variant's ``lora: {r, alpha, dropout, target_modules}`` (or the suite's ``train.lora``, for
every trained variant that gives none) trains low-rank adapters instead of the policy's weights.
The method modules do not know: ``attach`` hands them the same transformers model (its linear
layers now carry adapters; only the adapters require grad, and ``common.OptimizerStep`` optimizes
what requires grad, the PPO value head included), and a reference that is that model with its
adapters off (``BaseView``), so the base policy is held once, not twice.

What leaves a run is merged (``W + alpha / r * B A``), computed out of place so the live model
(and the reference inside it) is never touched: ``merged_state_dict`` for ``save_pretrained``
(lm-eval reads the saved folder) and ``merged_weights`` for a generation backend's weight push.
``peft`` is optional (the ``lora`` extra: ``pip install -e '.[lora]'``); a suite asking for LoRA
without it fails validation, saying what to install.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from harness.suite.lora import Lora

# --------------------------------------------------------------------------- the run's models


def attach(policy: Any, spec: Lora) -> tuple[Any, BaseView]:
    """Adapters on ``policy``, in place: ``(policy, base)``, the same transformers model (adapters
    injected, only they require grad; forward, ``config`` and sampling as before) and a
    ``BaseView`` of it with the adapters off, the reference. Adapters start as the identity
    (peft's ``B = 0``), so policy and base agree until the first optimizer step."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=spec.target_modules
        if isinstance(spec.target_modules, str)
        else list(spec.target_modules),
        bias="none",
    )
    with warnings.catch_warnings():  # peft asks a deprecated transformers property
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        model = get_peft_model(policy, config).get_base_model()  # adapters injected in place
    _check_untied(model)
    return model, BaseView(model)


def _check_untied(model: Any) -> None:
    """An adapted weight must not be shared with another parameter (e.g. an output head tied to
    the embeddings): merged, the two would differ and the saved model would not be the trained
    one."""
    adapted = {id(layer.get_base_layer().weight) for layer in _lora_layers(model).values()}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in adapted and ".base_layer." not in name:
            raise ValueError(
                f"lora targets a weight that '{name}' shares (tied embeddings?); "
                "leave that module out of target_modules"
            )


class BaseView:
    """The reference: the policy with its adapters off, i.e. the frozen base model, held once.

    It answers where a frozen copy did: called like the model (under ``torch.no_grad()``, in
    eval mode, adapters off; the model's own mode and adapters are restored after), sampled from
    (``training`` is False and ``train``/``eval`` change nothing; ``forward`` has the model's
    signature, so the sampler finds its cache and ``logits_to_keep`` arguments), ``config`` the
    model's, and ``save_pretrained`` writes the base weights.

    Adapters are switched per layer (peft's ``enable_adapters``), not with the ``PeftModel``'s
    ``disable_adapter()``, which also takes the model's adapter status each time: 1.3 against
    6.7 ms a call on the tiny world's policy, whose one-token decoding step takes 5 ms."""

    training = False

    def __init__(self, model: Any) -> None:
        self._model = model
        layers = _lora_layers(model)
        self._layers = list(layers.values())
        # the frozen base's parameters, found once: the same tensors for the model's lifetime
        named = model.named_parameters()
        self._base = [p for name, p in named if not _is_adapter_key(name, layers)]
        self.config = model.config

        @functools.wraps(model.forward)  # its signature: what the sampler inspects
        def forward(*args: Any, **kwargs: Any) -> Any:
            was_training = model.training
            model.eval()
            for layer in self._layers:
                layer.enable_adapters(False)
            try:
                with torch.no_grad():
                    return model(*args, **kwargs)
            finally:
                for layer in self._layers:
                    layer.enable_adapters(True)
                model.train(was_training)

        self.forward = forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True) -> BaseView:
        return self

    def eval(self) -> BaseView:
        return self

    def save_pretrained(self, directory: Any, **kwargs: Any) -> None:
        kwargs["state_dict"] = base_state_dict(self._model)
        self._model.save_pretrained(directory, **kwargs)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The base model's parameters (adapters left out): what a generation backend watches
        for changes, as it does a model's."""
        return iter(self._base)

    def buffers(self) -> Iterator[torch.Tensor]:
        return self._model.buffers()


# --------------------------------------------------------------------------- weights out


def _lora_layers(model: Any) -> dict[str, Any]:
    """The model's LoRA layers by module path; none when peft was never imported (then no model
    can have any) or ``model`` is no module (a ``BaseView``)."""
    if "peft" not in sys.modules or not isinstance(model, torch.nn.Module):
        return {}
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}


def has_adapters(model: Any) -> bool:
    return bool(_lora_layers(model))


def merged_weights(model: Any, merge: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of every weight of ``model`` under the plain model's names, adapters
    merged (``W + alpha / r * B A``, computed in float32, in the weight's dtype): what a
    generation backend pushes, one tensor at a time (only the merged ones are new memory). A
    model without adapters yields its ``state_dict`` as it is. ``merge=False``: the base
    weights, adapters left out. A ``BaseView`` yields its base weights."""
    if isinstance(model, BaseView):
        yield from merged_weights(model._model, merge=False)
        return
    layers = _lora_layers(model)
    for key, value in model.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        path, _, kind = owner.rpartition(".")
        if path in layers and kind == "base_layer":
            layer, plain = layers[path], f"{path}.{leaf}"
            if leaf == "weight" and (merge != layer.merged):
                yield plain, _apply(value, layer, sign=1.0 if merge else -1.0)
            else:
                yield plain, value
        elif not _is_adapter_key(key, layers):
            yield key, value


def _is_adapter_key(key: str, layers: dict[str, Any]) -> bool:
    """Whether ``key`` is a parameter or buffer of an adapter (``<layer>.lora_A.default.weight``
    ...), not of the model."""
    parts = key.split(".")
    return any(
        ".".join(parts[:i]) in layers and parts[i].startswith("lora_") for i in range(len(parts))
    )


@torch.no_grad()
def _apply(weight: torch.Tensor, layer: Any, sign: float) -> torch.Tensor:
    """``weight + sign * delta`` of the layer's active adapters, in float32, cast back."""
    total = weight.to(torch.float32, copy=True)
    for adapter in layer.active_adapters:
        if adapter in layer.lora_A:
            total += sign * layer.get_delta_weight(adapter).float()
    return total.to(weight.dtype)


def merged_state_dict(model: Any) -> dict[str, torch.Tensor] | None:
    """The merged weights as a state dict, for ``save_pretrained(state_dict=...)``; None for a
    model without adapters (whose own state dict is saved as usual)."""
    return dict(merged_weights(model)) if has_adapters(model) else None


def base_state_dict(model: Any) -> dict[str, torch.Tensor] | None:
    """The base weights (adapters left out) as a state dict; None without adapters."""
    return dict(merged_weights(model, merge=False)) if has_adapters(model) else None


# --------------------------------------------------------------------------- before the run

# the layers peft's LoRA adapts (a matched module of another kind fails the run at ``attach``)
ADAPTABLE = ("Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D", "MultiheadAttention")
SHOWN_NAMES = 10  # module names a problem lists


def meta_model(config: Any) -> torch.nn.Module:
    """The causal LM ``config`` describes, built on the ``meta`` device: its modules and their
    names (and tied weights) without one weight's memory or a file read."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model: torch.nn.Module = AutoModelForCausalLM.from_config(config)
    return model


def target_problem(model: torch.nn.Module, spec: Lora) -> str | None:
    """Why ``attach`` would fail on ``model`` (a ``meta_model`` will do) with ``spec``'s
    ``target_modules``, or None: names no module's path is or ends with (as peft matches them),
    names matching a module LoRA cannot adapt, a target whose weight another parameter shares.
    ``'all-linear'`` always finds the model's linear layers."""
    if isinstance(spec.target_modules, str):
        return None
    modules = {name: m for name, m in model.named_modules() if name}
    adaptable = sorted(
        {name.rpartition(".")[2] for name, m in modules.items() if type(m).__name__ in ADAPTABLE}
    )
    shown = ", ".join(adaptable[:SHOWN_NAMES]) + (", ..." if len(adaptable) > SHOWN_NAMES else "")
    matched: dict[str, list[str]] = {
        target: [name for name in modules if name == target or name.endswith(f".{target}")]
        for target in spec.target_modules
    }
    unmatched = [target for target, names in matched.items() if not names]
    if unmatched:
        return (
            f"no module of the policy matches {', '.join(map(repr, unmatched))}"
            f" (its adaptable layers: {shown})"
        )
    for target, names in matched.items():
        kinds = {type(modules[n]).__name__ for n in names} - set(ADAPTABLE)
        if kinds:
            return (
                f"'{target}' matches a {', '.join(sorted(kinds))}, which LoRA cannot adapt;"
                f" name its layers instead (the policy's adaptable layers: {shown})"
            )
    targeted = {
        id(weight)
        for names in matched.values()
        for n in names
        if isinstance(weight := getattr(modules[n], "weight", None), torch.nn.Parameter)
    }
    for name, param in model.named_parameters(remove_duplicate=False):
        owner = name.rpartition(".")[0]
        if id(param) in targeted and not any(
            owner == n for names in matched.values() for n in names
        ):
            return (
                f"a target's weight is shared with '{name}' (tied embeddings?); "
                "leave that module out of target_modules"
            )
    return None

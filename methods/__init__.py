"""The registry of alignment methods: the built-in list, merged with the methods installed
packages register under the entry-point group ``alignment_harness.methods``.

The registry is torch-free: an entry names its params model (``methods.params``) and the module
holding its ``train`` (and ``respond``), which is imported only when a run trains or answers with it
(``Method.train_fn``, ``Method.respond_fn``). Validating a suite or listing the methods imports no
training loop.

A plugin is an installed distribution whose metadata declares, in its ``pyproject.toml``::

    [project.entry-points."alignment_harness.methods"]
    my_method = "my_package.registration:METHOD"

where ``METHOD`` is a ``methods.base.Method`` named ``my_method`` (its module, imported only to
train, is the plugin's own). Code comes only from installed packages: a suite names a method, it
cannot point at a module or a path. The entry points are read once, on the registry's first use;
a plugin that fails to load is set aside with its error (``REGISTRY.broken``) and the rest work; a
name registered twice is kept by neither (``REGISTRY.conflicts``; ``REGISTRY.check()`` raises).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata

from methods import params
from methods.base import Method, MethodParams

ENTRY_POINT_GROUP = "alignment_harness.methods"
BUILT_IN_ORIGIN = "built-in"

BUILT_IN: tuple[Method, ...] = (
    Method(
        name="sft",
        description="The base (SFT) policy itself, untrained: what every method is judged against.",
        params=params.SFTParams,
        module=None,
        trains=False,
    ),
    Method(
        name="best_of_n",
        description="Base policy answering with the best of N samples under the training reward.",
        params=params.BestOfNParams,
        module="methods.best_of_n",
        trains=False,
        responds=True,
        source="Nakano et al. 2021 (WebGPT); Stiennon et al. 2020",
    ),
    Method(
        name="ppo",
        description="PPO-RLHF: KL-shaped RM reward, GAE, clipped policy/value losses, adaptive KL.",
        params=params.PPOParams,
        module="methods.ppo",
        needs_reference=True,
        source="Ouyang et al. 2022; TRL PPOTrainer (classic)",
    ),
    Method(
        name="rrhf",
        description="RRHF: hinge ranking loss on length-normalised log-probs plus SFT on the best "
        "candidate.",
        params=params.RRHFParams,
        module="methods.rrhf",
        source="Yuan et al. 2023; github.com/GanjinZero/RRHF",
    ),
    Method(
        name="raft",
        description="RAFT: sample K, keep the reward-best (per prompt or globally), fine-tune "
        "on them.",
        params=params.RAFTParams,
        module="methods.raft",
        source="Dong et al. 2023; LMFlow",
    ),
    Method(
        name="pro",
        description="PRO: listwise Plackett-Luce ranking of candidates plus SFT on the best.",
        params=params.PROParams,
        module="methods.pro",
        source="Song et al. 2023; AlibabaResearch/DAMO-ConvAI/PRO",
    ),
    Method(
        name="dpo",
        description="DPO: logistic loss on the policy/reference log-ratio margin of preference "
        "pairs.",
        params=params.DPOParams,
        module="methods.dpo",
        needs_reference=True,
        source="Rafailov et al. 2023",
    ),
    Method(
        name="grpo",
        description="GRPO: group-normalised advantages, clipped ratio, k3 KL to the reference.",
        params=params.GRPOParams,
        module="methods.grpo",
        needs_reference=True,
        source="Shao et al. 2024 (DeepSeekMath)",
    ),
    Method(
        name="ipo",
        description="IPO: squared loss pulling the preference pairs' log-ratio margin to "
        "1/(2 beta).",
        params=params.IPOParams,
        module="methods.ipo",
        needs_reference=True,
        source="Azar et al. 2023",
    ),
    Method(
        name="simpo",
        description="SimPO: reference-free logistic loss on length-normalised log-probs with a "
        "margin gamma.",
        params=params.SimPOParams,
        module="methods.simpo",
        source="Meng et al. 2024",
    ),
    Method(
        name="orpo",
        description="ORPO: SFT on the chosen responses plus lambda times an odds-ratio "
        "preference term; reference-free.",
        params=params.ORPOParams,
        module="methods.orpo",
        source="Hong et al. 2024",
    ),
    Method(
        name="kto",
        description="KTO: unpaired desirable/undesirable responses against a reference point "
        "z0 from mismatched pairs.",
        params=params.KTOParams,
        module="methods.kto",
        needs_reference=True,
        source="Ethayarajh et al. 2024",
    ),
    Method(
        name="rloo",
        description="RLOO: REINFORCE over k samples per prompt with the leave-one-out mean as "
        "baseline, KL in the reward.",
        params=params.RLOOParams,
        module="methods.rloo",
        needs_reference=True,
        source="Ahmadian et al. 2024",
    ),
)


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that did not give a method: where it is declared and why it failed."""

    entry_point: str  # "name = package.module:METHOD"
    origin: str  # the distribution declaring it: "name version"
    error: str

    def __str__(self) -> str:
        return f"{self.entry_point} (from {self.origin}): {self.error}"


class DuplicateMethodError(ValueError):
    """Two sources register one method name."""

    def __init__(self, name: str, origins: list[str]) -> None:
        self.name, self.origins = name, origins
        super().__init__(
            f"method '{name}' is registered twice: by {' and by '.join(origins)}; "
            "uninstall one of them"
        )


def origin_of(entry_point: metadata.EntryPoint) -> str:
    """The distribution declaring ``entry_point``, as ``name version``."""
    dist = entry_point.dist
    if dist is None:
        return "an unknown distribution"
    return f"{dist.metadata['Name']} {dist.version}"


def installed_entry_points() -> list[metadata.EntryPoint]:
    """The entry points of ``ENTRY_POINT_GROUP`` of every installed distribution, in a stable
    order (distribution, then name)."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted(found, key=lambda ep: (origin_of(ep), ep.name))


def load_plugin(entry_point: metadata.EntryPoint) -> Method:
    """The ``Method`` an entry point names; ``TypeError``/``ValueError`` when it names
    something else, whatever its import raises when it fails to import."""
    method = entry_point.load()
    if not isinstance(method, Method):
        raise TypeError(
            f"{entry_point.value} is a {type(method).__name__}, not a methods.base.Method"
        )
    if method.name != entry_point.name:
        raise ValueError(
            f"the entry point is named '{entry_point.name}' but its Method is '{method.name}'"
        )
    if not (isinstance(method.params, type) and issubclass(method.params, MethodParams)):
        raise TypeError(f"{method.name}'s params is not a methods.base.MethodParams subclass")
    return method


class Registry(Mapping[str, Method]):
    """Every usable method by name: the built-ins and the installed plugins, read lazily (on the
    first lookup, listing or ``origin``) from ``discover``. A name two sources register is usable
    from neither: it is listed in ``conflicts``, and looking it up raises
    ``DuplicateMethodError``."""

    def __init__(
        self,
        built_in: Iterable[Method],
        discover: Callable[[], Iterable[metadata.EntryPoint]] = installed_entry_points,
    ) -> None:
        self._built_in = tuple(built_in)
        self._discover = discover
        self._methods: dict[str, Method] | None = None
        self._origins: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}
        self._broken: list[BrokenPlugin] = []

    def _load(self) -> dict[str, Method]:
        if self._methods is not None:
            return self._methods
        methods: dict[str, Method] = {}
        claims: dict[str, list[str]] = {}
        for method in self._built_in:
            methods[method.name] = method
            claims.setdefault(method.name, []).append(BUILT_IN_ORIGIN)
        for entry_point in self._discover():
            origin = origin_of(entry_point)
            try:
                method = load_plugin(entry_point)
            except Exception as exc:  # a broken plugin is reported; the others still work
                where = f"{entry_point.name} = {entry_point.value}"
                self._broken.append(BrokenPlugin(where, origin, f"{type(exc).__name__}: {exc}"))
                continue
            methods.setdefault(method.name, method)
            claims.setdefault(method.name, []).append(origin)
        for name, origins in claims.items():
            if len(origins) > 1:
                self._conflicts[name] = origins
                del methods[name]
            else:
                self._origins[name] = origins[0]
        self._methods = methods
        return methods

    def __getitem__(self, name: str) -> Method:
        methods = self._load()
        if name in self._conflicts:
            raise DuplicateMethodError(name, self._conflicts[name])
        return methods[name]

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def origin(self, name: str) -> str:
        """Where ``name`` comes from: ``built-in``, or the plugin's distribution and version."""
        self[name]  # unknown or duplicated: the lookup's error
        return self._origins[name]

    @property
    def broken(self) -> list[BrokenPlugin]:
        """The plugins that failed to load, each with its error."""
        self._load()
        return list(self._broken)

    @property
    def conflicts(self) -> dict[str, list[str]]:
        """Each name registered more than once, with every source registering it."""
        self._load()
        return dict(self._conflicts)

    def check(self) -> None:
        """``DuplicateMethodError`` for the first name registered twice; nothing otherwise."""
        for name, origins in self.conflicts.items():
            raise DuplicateMethodError(name, origins)


REGISTRY = Registry(BUILT_IN)


class UnknownMethodError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
        self.suggestion = did_you_mean(name)

    def __str__(self) -> str:
        hint = f" Did you mean '{self.suggestion}'?" if self.suggestion else ""
        return f"unknown method '{self.name}'.{hint} Known: {', '.join(REGISTRY)}."


def did_you_mean(name: str) -> str | None:
    close = difflib.get_close_matches(name.lower(), list(REGISTRY), n=1, cutoff=0.5)
    return close[0] if close else None


def get(name: str) -> Method:
    """The method registered as ``name``; a "did you mean" error otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownMethodError(name) from None

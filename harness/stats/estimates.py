"""Statistics of the evaluation: pure functions over numbers (numpy / pandas in, numbers out;
a torch tensor is read as an array).

Win-rates with paired outcomes, means with seeded bootstrap intervals, Monte-Carlo KL, distinct-n,
the capability rows of a run against the base model; the per-prompt table that the hierarchical,
paired statistics of ``harness.stats.paired`` work on, and the power of a design from its variance
components.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.suite.runs import MetricRow

Z95 = 1.96
ArrayLike = Any  # list[float] | np.ndarray | torch.Tensor, 1-D unless said otherwise


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval over ``n`` units (prompts, responses or seeds);
    NaN endpoints mean the interval cannot be estimated."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def row(self, metric: str) -> MetricRow:
        """As a result row; a NaN interval endpoint becomes None."""
        return MetricRow(metric, self.value, _finite(self.ci_low), _finite(self.ci_high), self.n)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _array(values: ArrayLike) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, read without importing torch here
        return np.asarray(values.detach().cpu().double().numpy())
    return np.asarray(values, dtype=np.float64)


def outcomes(policy_scores: ArrayLike, ref_scores: ArrayLike, tie_eps: float = 1e-6) -> np.ndarray:
    """Per prompt ``[N]``: 1.0 a win (the policy's score is higher by more than ``tie_eps``),
    0.0 a loss (lower by more than ``tie_eps``), 0.5 a tie. Their mean is the win-rate."""
    policy, ref = _array(policy_scores), _array(ref_scores)
    if policy.shape != ref.shape or policy.ndim != 1:
        raise ValueError(f"paired scores must be 1-D of one length: {policy.shape}, {ref.shape}")
    diff = policy - ref  # [N]
    return np.where(diff > tie_eps, 1.0, np.where(diff < -tie_eps, 0.0, 0.5))


def mean_with_ci(values: ArrayLike, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Mean of ``values [N]`` with a seeded percentile-bootstrap 95% interval: ``n_boot``
    resamples of the N units with replacement, all drawn at once (``[n_boot, N]`` indices)."""
    x = _array(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, x.size, size=(n_boot, x.size))  # [B, N]
    means = x[index].mean(axis=1)  # [B]
    low, high = np.quantile(means, [0.025, 0.975])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size))


def win_rate(
    policy_scores: ArrayLike,
    ref_scores: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    tie_eps: float = 1e-6,
) -> Estimate:
    """``(wins + ties / 2) / n`` over paired prompts, with a bootstrap 95% interval that
    resamples prompts (``mean_with_ci`` of ``outcomes``)."""
    return mean_with_ci(outcomes(policy_scores, ref_scores, tie_eps), n_boot, seed)


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the whitespace tokens of ``texts`` (n-grams never cross
    two texts; Li et al. 2016); 0.0 when there are none."""
    grams = [
        tuple(tokens[i : i + n])
        for tokens in (t.split() for t in texts)
        for i in range(len(tokens) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


# --------------------------------------------------------------------------- per-prompt table

PROMPT_KEYS = ["variant", "seed", "cluster", "prompt_id"]


def prompt_table(
    samples: pd.DataFrame, reference: pd.DataFrame, judge: str, tie_eps: float = 1e-6
) -> pd.DataFrame:
    """One row per (variant, seed, prompt) of ``judge``'s scores: ``variant, seed, cluster,
    prompt_id, win, reward``.

    ``win`` is the prompt's win probability over all k x k' (policy sample, reference sample)
    pairs, ``(wins + ties / 2) / (k k')``, a tie being ``|diff| <= tie_eps`` (as ``outcomes``);
    ``reward`` is the mean policy score over the prompt's samples. ``samples`` has columns
    ``variant, seed, prompt_id, cluster, sample, judge, score``; ``reference`` has ``prompt_id,
    cluster, sample, judge, score`` (the base policy's samples, the same for every run).
    """
    policy = samples.loc[samples["judge"] == judge, [*PROMPT_KEYS, "score"]]
    ref = reference.loc[reference["judge"] == judge, ["prompt_id", "score"]]
    if policy.empty or ref.empty:
        side = "samples" if policy.empty else "reference"
        judges = sorted(set((samples if policy.empty else reference)["judge"]))
        raise ValueError(f"no {side} scored by judge '{judge}' (judges there: {judges})")
    unmatched = set(policy["prompt_id"]) - set(ref["prompt_id"])
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} prompts have no reference samples: {sorted(unmatched)[:5]}"
        )
    # one row per (policy sample, reference sample) of a prompt
    pairs = policy.merge(ref, on="prompt_id", suffixes=("", "_ref"))
    diff = (pairs["score"] - pairs["score_ref"]).to_numpy()
    pairs["outcome"] = np.where(diff > tie_eps, 1.0, np.where(diff < -tie_eps, 0.0, 0.5))
    win = pairs.groupby(PROMPT_KEYS)["outcome"].mean().rename("win")
    reward = policy.groupby(PROMPT_KEYS)["score"].mean().rename("reward")
    out = pd.concat([win, reward], axis=1).reset_index()
    return out.sort_values(["variant", "seed", "prompt_id"], ignore_index=True)


# --------------------------------------------------------------------------- seed x prompt tables


@dataclass(frozen=True)
class SeedPromptGrid:
    """Each variant's seed x prompt values on the prompts that every (variant, seed) has, with
    the prompt columns grouped by cluster (``sizes [C]`` prompts per cluster, in column order)."""

    sizes: np.ndarray  # [C]
    seeds: dict[str, tuple[int, ...]]  # variant -> its seeds, ascending (the rows of its table)
    values: dict[str, np.ndarray]  # variant -> [S, P]


def seed_prompt_grid(tbl: pd.DataFrame, value: str) -> SeedPromptGrid:
    """The table (columns ``variant, seed, cluster, prompt_id, <value>``) as a ``SeedPromptGrid``;
    prompts that some (variant, seed) lacks are left out (the design must be crossed)."""
    missing = {"variant", "seed", "cluster", "prompt_id", value} - set(tbl.columns)
    if missing:
        raise ValueError(f"the prompt table lacks columns {sorted(missing)}")
    variant_idx, variants = pd.factorize(tbl["variant"])  # order of first appearance
    prompt_idx, prompt_ids = pd.factorize(tbl["prompt_id"])
    cluster_idx, cluster_names = pd.factorize(tbl["cluster"])
    runs, run_idx = np.unique(
        np.stack([variant_idx, tbl["seed"].to_numpy()]), axis=1, return_inverse=True
    )  # [2, runs]: (variant, seed), sorted
    cell = run_idx * prompt_ids.size + prompt_idx
    if np.bincount(cell).max() > 1:
        raise ValueError("the prompt table has more than one row for a (variant, seed, prompt)")
    cluster_of = np.zeros(prompt_ids.size, dtype=np.int64)
    cluster_of[prompt_idx] = cluster_idx
    if (cluster_of[prompt_idx] != cluster_idx).any():
        raise ValueError("a prompt is in two clusters")
    values = np.full(runs.shape[1] * prompt_ids.size, np.nan)
    values[cell] = tbl[value].to_numpy(dtype=np.float64)
    values = values.reshape(runs.shape[1], prompt_ids.size)  # [runs, P]
    columns = pd.DataFrame({"cluster": cluster_names[cluster_of], "prompt_id": prompt_ids})
    columns = columns[~np.isnan(values).any(0)]  # a crossed design: the prompts every run has
    if columns.empty:
        raise ValueError("no prompt has a value in every (variant, seed)")
    columns = columns.sort_values(["cluster", "prompt_id"])
    values = values[:, columns.index.to_numpy()]
    seeds = {str(v): tuple(int(s) for s in runs[1, runs[0] == i]) for i, v in enumerate(variants)}
    return SeedPromptGrid(
        sizes=columns.groupby("cluster", sort=True).size().to_numpy(),
        seeds=seeds,
        values={str(v): values[runs[0] == i] for i, v in enumerate(variants)},
    )


# --------------------------------------------------------------------------- power


@dataclass(frozen=True)
class VarianceComponents:
    """Variance components of one value (win or reward) of a prompt table, pooled over variants,
    in the model ``x[v, s, p] = mu_v + a_{v,s} + b_p + (vc)_{v,c(p)} + (vb)_{v,p} + e_{v,s,p}``:
    ``seed`` is ``var(a)`` (between training runs), ``noise`` is ``var(e)`` (a prompt's value in
    one run around its mean over runs: sampling and run-to-run noise), ``cluster`` is ``var(vc)``
    (the part of a paired difference that every seed and every prompt of a cluster repeat: a
    variant better on one task than on another), ``interaction`` is ``var(vb)`` (what a single
    prompt repeats beyond its cluster); both 0 with one variant. Prompt effects ``b`` (and the
    clusters' shared by all variants) cancel in paired differences and are not needed."""

    seed: float
    noise: float
    interaction: float
    n_seeds: int  # the fewest seeds of a variant
    n_prompts: int
    cluster: float = 0.0
    n_clusters: int = 0  # 0: every prompt its own cluster

    def prompt_var(self, n_prompts: int | None = None) -> float:
        """The cluster/prompt level's variance of a paired difference of two variants on
        ``n_prompts`` (default: the table's) prompts, ``2 (cluster / C + interaction / P)``: what
        every seed of a variant repeats, so per-seed values cannot show it."""
        n_prompts = n_prompts or self.n_prompts
        n_clusters = min(self.n_clusters or n_prompts, n_prompts)
        return 2 * (self.cluster / n_clusters + self.interaction / n_prompts)

    def to_dict(self) -> dict[str, float | int]:
        """As stored beside a table (``from_dict`` reads it back)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VarianceComponents:
        """``to_dict``'s mapping back; ``ValueError`` naming what is missing or wrong."""
        try:
            values = {k: data[k] for k in cls.__dataclass_fields__}
            ints = {"n_seeds", "n_prompts", "n_clusters"}
            parsed = {k: int(v) if k in ints else float(v) for k, v in values.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a set of variance components ({exc})") from None
        if any(v < 0 or not math.isfinite(v) for v in parsed.values()):
            raise ValueError(f"variance components must be finite and >= 0: {parsed}")
        return cls(**parsed)  # type: ignore[arg-type]

    def min_detectable(
        self,
        n_seeds: int,
        n_prompts: int,
        alpha: float,
        power: float,
        n_seeds_b: int | None = None,
    ) -> float:
        """Smallest true difference of two variants that ``n_seeds`` x ``n_prompts`` (the other
        side ``n_seeds_b`` seeds, default the same) detects with ``power`` at two-sided level
        ``alpha`` (normal approximation)::

            V_seed = (seed + noise / P) (1 / S_a + 1 / S_b)  (the bootstrap's seed level)
            V_prompt = 2 (cluster / C + interaction / P)      (``prompt_var``)
            SE(q) = sqrt((t_df(q) / z(q))^2 V_seed + V_prompt)
            MDD = z(1 - alpha/2) SE(1 - alpha/2) + z(power) SE(power)

        that is ``(z_{1-alpha/2} + z_{power}) SE_diff`` with the seed part's quantiles from t on
        ``df = min(S_a, S_b) - 1`` degrees of freedom (as the bootstrap's seed level; with few
        seeds a z-only formula promises power the test does not have), or the other side's
        ``S - 1`` when one side has one seed and borrows its variance
        (``harness.stats.paired.Borrowed``). C is the table's clusters, or P when fewer: more
        prompts do not add clusters, so the cluster part bounds what prompts can buy. Assumes
        independent clusters, the variances as estimated; one comparison, not a Holm-adjusted
        family (pass ``alpha / pairs`` for its first step).
        """
        n_b = n_seeds if n_seeds_b is None else n_seeds_b
        df = min(n_seeds, n_b) - 1 if min(n_seeds, n_b) > 1 else max(n_seeds, n_b) - 1
        if df < 1:
            raise ValueError("a difference between seeds needs at least 2 seeds on one side")
        seed_var = (self.seed + self.noise / n_prompts) * (1 / n_seeds + 1 / n_b)
        prompt_var = self.prompt_var(n_prompts)

        def quantile_times_se(q: float) -> float:  # z(q) SE(q)
            z, t = float(sps.norm.ppf(q)), float(sps.t.ppf(q, df))
            return math.sqrt(t**2 * seed_var + z**2 * prompt_var)

        return quantile_times_se(1 - alpha / 2) + quantile_times_se(power)


def variance_components(prompt_tbl: pd.DataFrame, value: str) -> VarianceComponents:
    """``VarianceComponents`` estimated from the table by ANOVA moments: ``noise`` from the
    seed x prompt residuals of each variant, ``seed`` from the variance of its per-seed means
    less ``noise / P``; then, on the variant x prompt residuals of the seed-averaged values,
    ``interaction`` from their spread within clusters less ``noise / S``, and ``cluster`` from
    the spread of their cluster means beyond that (over the mean cluster size ``n0``); negative
    estimates become 0. Needs a variant with 2 seeds."""
    grid = seed_prompt_grid(prompt_tbl, value)
    seed_ss = seed_df = noise_ss = noise_df = 0.0
    for x in grid.values.values():  # [S, P]
        n_seeds, n_prompts = x.shape
        if n_seeds < 2:
            continue
        rows, cols, mean = x.mean(1), x.mean(0), x.mean()
        seed_ss, seed_df = seed_ss + rows.var(ddof=1) * (n_seeds - 1), seed_df + n_seeds - 1
        resid = x - rows[:, None] - cols[None, :] + mean
        noise_ss, noise_df = noise_ss + (resid**2).sum(), noise_df + (n_seeds - 1) * (n_prompts - 1)
    if seed_df == 0:
        raise ValueError("the variance between seeds needs a variant with at least 2 seeds")
    n_prompts, n_clusters = int(grid.sizes.sum()), len(grid.sizes)
    n_seeds = min(len(s) for s in grid.seeds.values())
    noise = noise_ss / noise_df if noise_df else 0.0
    seed = max(seed_ss / seed_df - noise / n_prompts, 0.0)
    cols = np.stack([x.mean(0) for x in grid.values.values()])  # [V, P]
    interaction = cluster = 0.0
    if cols.shape[0] > 1 and n_prompts > 1:
        interaction, cluster = _interactions(cols, grid.sizes, noise / n_seeds)
    return VarianceComponents(
        float(seed),
        float(noise),
        float(interaction),
        n_seeds,
        n_prompts,
        float(cluster),
        n_clusters,
    )


def _interactions(cols: np.ndarray, sizes: np.ndarray, noise_part: float) -> tuple[float, float]:
    """(interaction, cluster) from the seed-averaged values ``cols [V, P]`` (columns grouped by
    cluster, ``sizes [C]``), each mean square less what ``noise_part`` (noise / S) puts into it:
    within clusters ``E[MS_w] = interaction + noise/S``, between them ``E[MS_c] = MS_w's + n0
    cluster``. With one prompt per cluster all of it is the cluster's; with one cluster, none."""
    n_variants, n_prompts = cols.shape
    n_clusters = len(sizes)
    resid = cols - cols.mean(1, keepdims=True) - cols.mean(0, keepdims=True) + cols.mean()
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    if n_clusters in (1, n_prompts):
        ms_total = (resid**2).sum() / ((n_variants - 1) * (n_prompts - 1))
        part = max(ms_total - noise_part, 0.0)
        return (part, 0.0) if n_clusters == 1 else (0.0, part)
    means = np.add.reduceat(resid, starts, axis=1) / sizes  # [V, C]
    within = resid - np.repeat(means, sizes, axis=1)  # [V, P]
    ms_within = (within**2).sum() / ((n_variants - 1) * (n_prompts - n_clusters))
    ms_cluster = (sizes * means**2).sum() / ((n_variants - 1) * (n_clusters - 1))
    n0 = (n_prompts - (sizes**2).sum() / n_prompts) / (n_clusters - 1)
    return max(ms_within - noise_part, 0.0), max((ms_cluster - ms_within) / n0, 0.0)


def min_detectable_difference(
    prompt_tbl: pd.DataFrame, value: str, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest paired difference between two variants that this design (its seeds and
    prompts) detects with ``power`` at level ``alpha``: ``VarianceComponents.min_detectable``
    on the components estimated from the table itself."""
    vc = variance_components(prompt_tbl, value)
    return vc.min_detectable(vc.n_seeds, vc.n_prompts, alpha, power)


def needed_for(
    prompt_tbl: pd.DataFrame,
    value: str,
    delta: float,
    alpha: float = 0.05,
    power: float = 0.8,
    max_seeds: int = 100,
    max_prompts: int = 10**6,
) -> dict[str, int | None]:
    """How many seeds (at the table's prompts) and how many prompts (at its seeds) detect a
    difference ``delta`` with ``power`` (``VarianceComponents.min_detectable``): ``{"seeds": S,
    "prompts": P}``, None where no number up to ``max_seeds`` / ``max_prompts`` does (e.g. more
    prompts cannot remove the variance between seeds)."""
    vc = variance_components(prompt_tbl, value)

    def detects(n_seeds: int, n_prompts: int) -> bool:
        return vc.min_detectable(n_seeds, n_prompts, alpha, power) <= delta

    seeds = next((s for s in range(2, max_seeds + 1) if detects(s, vc.n_prompts)), None)
    prompts: int | None = None
    if vc.n_seeds >= 2 and detects(vc.n_seeds, max_prompts):
        low, high = 1, max_prompts  # detects(high); the MDD falls with P
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if detects(vc.n_seeds, mid) else (mid + 1, high)
        prompts = high
    return {"seeds": seeds, "prompts": prompts}


def sample_index(n: int, k: int, clusters: Sequence[str]) -> dict[str, list[Any]]:
    """The ``prompt_id, cluster, sample`` columns of ``n`` prompts with ``k`` samples each
    (row ``i * k + j``); a prompt with no cluster named is a cluster of its own."""
    named = list(clusters) or [f"p{i}" for i in range(n)]
    return {
        "prompt_id": [i for i in range(n) for _ in range(k)],
        "cluster": [named[i] for i in range(n) for _ in range(k)],
        "sample": [j for _ in range(n) for j in range(k)],
    }

"""Evaluation: statistics checked by hand and against closed forms; then, on the tiny world, the
base policy against itself, best-of-8, and a damaged policy caught by lm-eval."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from harness.evaluation.capability import BITS_PER_BYTE, TaskScore, capability_rows
from harness.evaluation.evaluate import (
    EvalSetup,
    ReferenceEval,
    evaluate_policy,
    kl_estimate,
    kl_terms,
    prompt_win_rates,
    reference_eval,
)
from harness.stats.estimates import (
    Estimate,
    distinct_n,
    mean_with_ci,
    outcomes,
    win_rate,
)
from harness.stats.items import newcombe_paired
from harness.suite.runs import MetricRow
from methods.best_of_n import best_of_n_kl
from tests.conftest import load_run

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- statistics


def paired(wins: int, ties: int, losses: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Policy and reference scores ``[N]`` with exactly these outcomes, in a shuffled order."""
    policy = np.array([1.0] * wins + [0.5] * ties + [0.0] * losses)
    ref = np.array([0.0] * wins + [0.5] * ties + [1.0] * losses)
    order = np.random.default_rng(seed).permutation(len(policy))
    return policy[order], ref[order]


def test_bootstrap_interval_matches_wald() -> None:
    policy, ref = paired(wins=240, ties=0, losses=160)  # n = 400, p = 0.6
    est = win_rate(policy, ref, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.6 * 0.4 / 400)  # Wald: 0.048
    assert est.value == pytest.approx(0.6)
    assert est.n == 400
    assert est.ci_low == pytest.approx(0.6 - half, abs=0.012)
    assert est.ci_high == pytest.approx(0.6 + half, abs=0.012)


def test_win_rate_is_deterministic_per_seed() -> None:
    policy, ref = paired(wins=30, ties=5, losses=25)
    assert win_rate(policy, ref, 500, seed=3) == win_rate(policy, ref, 500, seed=3)
    assert win_rate(policy, ref, 500, seed=3) != win_rate(policy, ref, 500, seed=4)


def test_ties_count_half() -> None:
    # win, tie, tie (within tie_eps), tie: (1 + 3 / 2) / 4
    policy, ref = [2.0, 1.0, 1.0 + 1e-9, 5.0], [1.0, 1.0, 1.0, 5.0]
    assert outcomes(policy, ref).tolist() == [1.0, 0.5, 0.5, 0.5]
    assert win_rate(policy, ref, 200, 0).value == pytest.approx(0.625)
    assert win_rate([0.0, 3.0], [1.0, 3.0], 200, 0).value == pytest.approx(0.25)  # loss, tie


def test_all_ties_give_one_half() -> None:
    scores = torch.linspace(-1, 1, 50)
    assert win_rate(scores, scores.clone(), 200, 0) == Estimate(0.5, 0.5, 0.5, 50)


def test_unpaired_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="paired"):
        outcomes([1.0, 2.0], [1.0])


def test_mean_with_ci_by_hand() -> None:
    assert mean_with_ci([2.0, 2.0, 2.0]) == Estimate(2.0, 2.0, 2.0, 3)
    est = mean_with_ci([0.0, 1.0, 2.0, 3.0], 500, 0)
    assert est.value == 1.5 and 0.0 <= est.ci_low < 1.5 < est.ci_high <= 3.0
    empty = mean_with_ci([])
    assert empty.n == 0 and math.isnan(empty.value)


def test_distinct_n_by_hand() -> None:
    texts = ["a b a b", "a b"]
    assert distinct_n(texts, 1) == pytest.approx(2 / 6)  # {a, b} of a b a b a b
    assert distinct_n(texts, 2) == pytest.approx(2 / 4)  # {ab, ba} of ab ba ab | ab
    assert distinct_n(["x"], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_kl_estimate_by_hand() -> None:
    logps = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])  # [2, 3]
    ref_logps = torch.tensor([[-1.5, -1.0, -10.0], [-1.0, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    # per response: 0.5 - 1.0 = -0.5 and 0.5 + 1.5 = 2.0 (masked tokens ignored)
    est = kl_estimate(logps, ref_logps, mask, 200, 0)
    assert est.value == pytest.approx(0.75)
    assert est.n == 2 and -0.5 <= est.ci_low <= est.ci_high <= 2.0
    assert kl_estimate(logps, logps, mask).value == 0.0
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(8) == pytest.approx(math.log(8) - 7 / 8)


def test_kl_terms_are_each_response_s_own_in_the_samples_order() -> None:
    """``kl_terms`` runs the rows reordered by length (few padding columns per batch) and hands
    each term back to its row: equal, up to float rounding, to each response scored alone,
    unpadded, by the two models (rows of many lengths, more rows than one batch)."""
    from methods.sampling import SampleRequest, sample
    from tests.methods.conftest import build_policy, build_tokenizer

    tokenizer = build_tokenizer()
    policy, reference = build_policy(tokenizer, seed=0), build_policy(tokenizer, seed=1)
    prompts = ["human why assistant", "human how do i make tea with milk and sugar assistant"]
    request = SampleRequest(prompts * 40, 1, 12, 1.0, 1.0, torch.Generator().manual_seed(0))
    samples = sample(policy, tokenizer, request, "cpu")  # [80], more rows than EVAL_BATCH
    assert len(set(samples.lengths.tolist())) > 3  # the order really changes

    def alone(model: Any, i: int) -> float:
        prompt = samples.prompt_ids[i][samples.prompt_mask[i].bool()].tolist()
        response = samples.response_ids[i][samples.response_mask[i].bool()].tolist()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + response])).logits[0].float()
        logps = logits.log_softmax(-1)[len(prompt) - 1 : -1]  # [len(response), V]
        return float(logps.gather(-1, torch.tensor(response)[:, None]).sum())

    terms = kl_terms(policy, reference, samples)  # [80]
    by_hand = [alone(policy, i) - alone(reference, i) for i in range(len(samples))]
    assert terms == pytest.approx(by_hand, abs=1e-4)


def test_prompt_win_rates_average_all_k_by_k_pairs() -> None:
    # prompt 0: policy (3, 1) against reference (2, 1): 3>2 win, 3>1 win, 1<2 loss, 1=1 tie
    # prompt 1: policy (0, 0) against reference (1, 1): four losses
    rates = prompt_win_rates([3.0, 1.0, 0.0, 0.0], [2.0, 1.0, 1.0, 1.0], k=2)
    assert rates.tolist() == [(1 + 1 + 0 + 0.5) / 4, 0.0]
    one = prompt_win_rates([1.0, 0.0], [0.0, 0.0], k=1)  # k = 1: each prompt's one pair
    assert one.tolist() == outcomes([1.0, 0.0], [0.0, 0.0]).tolist() == [1.0, 0.5]


def test_capability_rows_flag_drops_beyond_tolerance() -> None:
    base = {"facts": TaskScore("facts", 0.9, 0.03, 100), "arith": TaskScore("arith", 0.8, 0.04, 50)}
    policy = {
        "facts": TaskScore("facts", 0.8, 0.04, 100),  # drop 0.10 > 0.05: regression
        "arith": TaskScore("arith", 0.78, 0.04, 50),  # drop 0.02: within tolerance
    }
    rows = {r.metric: r for r in capability_rows(base, policy, tolerance=0.05)}
    delta = rows["capability_delta.facts"]
    assert delta.value == pytest.approx(-0.1)
    assert delta.ci_low == pytest.approx(-0.1 - 1.96 * 0.05)  # se = sqrt(0.04^2 + 0.03^2)
    assert delta.ci_high == pytest.approx(-0.1 + 1.96 * 0.05)
    assert rows["capability.facts"].ci_low == pytest.approx(0.8 - 1.96 * 0.04)
    assert rows["regression.facts"].value == 1.0
    assert rows["regression.arith"].value == 0.0
    at_tolerance = {"facts": TaskScore("facts", 0.85, 0.03, 100)}
    flags = capability_rows(base, at_tolerance, 0.05)
    assert [r.value for r in flags if r.metric.startswith("regression")] == [0.0]
    # a drop of 0.06 beyond the tolerance, but its interval (se 0.05) reaches above 0: the
    # interval does not support it, so it is not a regression (the gate's rule, harness.core.rules)
    unsupported = {"facts": TaskScore("facts", 0.84, 0.04, 100)}
    flags = capability_rows(base, unsupported, 0.05)
    assert [r.value for r in flags if r.metric.startswith("regression")] == [0.0]
    with pytest.raises(ValueError, match="no base score"):
        capability_rows({}, policy, 0.05)


def test_capability_delta_is_paired_per_item() -> None:
    """Base and policy answer the same items: the delta's interval comes from the answers that
    changed (Newcombe's paired interval, ``harness.stats.items``), so an unchanged model has delta
    0 with a narrow interval that is never of zero width (independent samples would give it
    +-1.96 sqrt(2) se = +-0.17), and two flipped answers out of 36 a wide one."""
    items = [1.0] * 30 + [0.0] * 6
    base = {"arith": TaskScore("arith", 30 / 36, 0.063, 36, items)}
    same = capability_rows(base, base, 0.05)
    delta = next(r for r in same if r.metric == "capability_delta.arith")
    assert delta.value == 0.0 and delta.ci_low < 0.0 < delta.ci_high
    assert delta.ci_high - delta.ci_low < 0.2  # about 2 z^2 / (n + z^2) = 0.19 at n = 36
    flipped = [0.0, 0.0, *items[2:]]  # two right answers lost: drop 2/36 = 0.056 > 0.05
    policy = {"arith": TaskScore("arith", 28 / 36, 0.07, 36, flipped)}
    rows = {r.metric: r for r in capability_rows(base, policy, 0.05)}
    expected = newcombe_paired(np.array(items), np.array(flipped))
    assert rows["capability_delta.arith"].value == pytest.approx(-2 / 36)
    assert rows["capability_delta.arith"].ci_high == pytest.approx(expected.ci_high)
    assert rows["regression.arith"].value == 0.0  # two items: the interval reaches above 0


def test_reference_eval_round_trips(tmp_path: Path) -> None:
    ref = ReferenceEval(
        ["\n\nHuman: hi\n\nAssistant:"],
        [" Hello."],
        {"gold": [1.5], "proxy": [-0.25]},
        {"tiny_facts": TaskScore("tiny_facts", 0.95, 0.05, 20)},
    )
    ref.save(tmp_path / "reference.json")
    assert ReferenceEval.load(tmp_path / "reference.json") == ref


# --------------------------------------------------------------------------- on the tiny world


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def suite_of(tiny_world: Path) -> Callable[..., Any]:
    from harness.suite.loader import load_suite

    return lambda *overrides: load_suite(REPO / "suites" / "tiny.yaml", ["seeds=[0]", *overrides])


def run_context(suite: Any, variant: str) -> tuple[Any, EvalSetup]:
    return load_run(suite, variant)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def suite(suite_of: Callable[..., Any]) -> Any:
    """The default suite judged on fewer prompts and one answer each (as fast as it was)."""
    return suite_of("eval.num_prompts=128", "eval.samples_per_prompt=1")


@pytest.fixture(scope="module")
def reference(suite: Any) -> ReferenceEval:
    """The suite's shared reference side, base lm-eval scores included (one lm-eval run)."""
    _, setup = run_context(suite, "sft")
    return reference_eval(setup)


def by_metric(rows: list[MetricRow]) -> dict[str, MetricRow]:
    for row in rows:
        print(f"  {row.metric:28s} {row.value:8.3f}  [{row.ci_low}, {row.ci_high}]  n={row.n}")
    return {r.metric: r for r in rows}


@pytest.mark.slow
def test_without_shared_reference(suite_of: Callable[..., Any], tmp_path: Path) -> None:
    suite = suite_of("eval.num_prompts=16", "eval.lm_eval.tasks=[]")
    ctx, setup = run_context(suite, "sft")
    from methods import REGISTRY

    rows = by_metric(evaluate_policy(ctx, REGISTRY["sft"], None, setup, None, tmp_path).metrics)
    expected = {f"{m}.{j}" for m in ("winrate", "reward") for j in suite.eval.judges}
    assert set(rows) == expected | {"kl", "length", "distinct_1", "distinct_2"}
    assert rows["kl"].value == 0.0 and rows["winrate.gold"].n == 16
    no_judges = dataclasses.replace(setup, judges={})
    again = reference_eval(no_judges)
    assert (
        again.responses
        == reference_eval(dataclasses.replace(no_judges, reference=ctx.policy)).responses
    )


@pytest.mark.slow
def test_base_policy_against_itself(suite: Any, reference: ReferenceEval, tmp_path: Path) -> None:
    from methods import REGISTRY

    reference.save(tmp_path / "reference.json")
    shared = ReferenceEval.load(tmp_path / "reference.json")
    assert shared == reference
    ctx, setup = run_context(suite, "sft")
    rows = by_metric(evaluate_policy(ctx, REGISTRY["sft"], None, setup, shared, tmp_path).metrics)
    # each judge's 95% interval misses 0.5 one time in twenty when the policy is the reference,
    # so three judges at 95% would fail about one draw in seven; widened 1.5 times (about 99.7%,
    # z 2.94), the three together fail about one in a hundred
    for judge in suite.eval.judges:
        row = rows[f"winrate.{judge}"]
        assert row.ci_low is not None and row.ci_high is not None
        assert abs(row.value - 0.5) < 1.5 * (row.ci_high - row.ci_low) / 2, (judge, row)
    assert rows["kl"].value == 0.0
    assert all(
        r.value == 0.0 for m, r in rows.items() if m.startswith(("regression", "capability_delta"))
    )
    assert not (tmp_path / "policy").exists()  # nothing trained: no checkpoint, no lm-eval


@pytest.mark.slow
def test_best_of_8_beats_the_base(suite: Any, reference: ReferenceEval, tmp_path: Path) -> None:
    from methods import REGISTRY

    ctx, setup = run_context(suite, "best_of_n")
    params = suite.variant("best_of_n").params
    assert params.n == 8
    evaluation = evaluate_policy(ctx, REGISTRY["best_of_n"], params, setup, reference, tmp_path)
    rows = by_metric(evaluation.metrics)
    proxy = rows["winrate.proxy"]
    assert proxy.ci_low is not None and proxy.ci_low > 0.5
    assert {"winrate.heldout", "winrate.gold"} <= set(rows)
    assert rows["kl"].value == pytest.approx(math.log(8) - 7 / 8)
    n_samples = 8 * len(reference.prompts) * reference.samples_per_prompt
    assert ctx.costs.samples == n_samples
    assert ctx.costs.reward_calls == n_samples  # the proxy judge's calls are not charged
    assert ctx.costs.generated_tokens > 0
    assert ctx.costs.reward_tokens > ctx.costs.generated_tokens  # the RM reads the prompts too
    assert ctx.costs.forward_tokens > 0  # the prompts each sample prefilled
    # the curve from the same pool: n = 1, 2, 4, 8 under every judge; at n = 8 it is the answers
    curve = {(p["metric"], p["n"]): p for p in evaluation.bon_curve}
    metrics = [f"{m}.{j}" for m in ("reward", "winrate") for j in suite.eval.judges]
    assert sorted(curve) == sorted((m, n) for m in metrics for n in (1, 2, 4, 8))
    for metric in metrics:
        assert curve[(metric, 8)]["value"] == pytest.approx(rows[metric].value)
    proxy_curve = [curve[("reward.proxy", n)]["value"] for n in (1, 2, 4, 8)]
    assert proxy_curve == sorted(proxy_curve)  # the proxy's own best of more is no worse
    assert curve[("reward.gold", 2)]["kl_bound"] == pytest.approx(math.log(2) - 1 / 2)


def add_noise(sigma: float) -> Callable[[Any, Any], None]:
    """A 'training' that adds N(0, sigma) to every weight of the policy."""

    def train(ctx: Any, params: Any) -> None:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in ctx.policy.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * sigma)

    return train


@pytest.mark.slow
@pytest.mark.parametrize(("sigma", "flagged"), [(0.0, False), (0.1, True)])
def test_damaged_policy_is_a_capability_regression(
    suite: Any, reference: ReferenceEval, tmp_path: Path, sigma: float, flagged: bool
) -> None:
    from methods import REGISTRY

    method = dataclasses.replace(REGISTRY["sft"], name=f"noise{sigma}", trains=True)
    ctx, setup = run_context(suite, "raft")  # a trained variant's context: a frozen reference
    assert ctx.policy is not ctx.reference
    add_noise(sigma)(ctx, None)
    rows = by_metric(evaluate_policy(ctx, method, None, setup, reference, tmp_path).metrics)
    assert (tmp_path / "policy" / "config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "policy" in p.name) == ["policy"]
    print({t: s.acc for t, s in reference.capability.items()}, "base accuracies")
    flags = [rows[f"regression.{t}"].value for t in suite.eval.lm_eval.tasks]
    if flagged:
        assert 1.0 in flags
        assert rows["kl"].value > 1.0
    else:
        assert flags == [0.0] * len(flags)
        for task, base in reference.capability.items():
            score = "bits_per_byte" if base.metric == BITS_PER_BYTE else "capability"
            assert rows[f"{score}.{task}"].value == pytest.approx(base.acc)


@pytest.mark.slow
def test_k_answers_per_prompt_keep_every_judged_sample(
    suite_of: Callable[..., Any], tmp_path: Path
) -> None:
    from methods import REGISTRY

    suite = suite_of("eval.num_prompts=8", "eval.samples_per_prompt=3", "eval.lm_eval.tasks=[]")
    ctx, setup = run_context(suite, "sft")
    ref = reference_eval(setup)
    assert len(ref.responses) == len(ref.scores["gold"]) == 24 and ref.samples_per_prompt == 3
    evaluation = evaluate_policy(ctx, REGISTRY["sft"], None, setup, ref, tmp_path)
    rows = by_metric(evaluation.metrics)
    assert rows["winrate.gold"].n == 8  # one win-rate per prompt, over its 3 x 3 pairs
    samples = evaluation.samples
    assert len(samples["prompt_id"]) == 24
    assert samples["prompt_id"][:6] == [0, 0, 0, 1, 1, 1] and samples["sample"][:3] == [0, 1, 2]
    assert set(samples) >= {"cluster", "length", "kl", *(f"score.{j}" for j in suite.eval.judges)}
    assert all(k == 0.0 for k in samples["kl"])  # the base policy against itself
    # the world names each prompt's cluster (its task); several prompts share one
    assert len(set(samples["cluster"])) < 8 and not samples["cluster"][0].startswith("p")
    gold = np.array(samples["score.gold"]).reshape(8, 3).mean(axis=1).mean()
    assert rows["reward.gold"].value == pytest.approx(gold)

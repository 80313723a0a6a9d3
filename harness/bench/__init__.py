"""``harness bench``: our training loops against TRL's on the same work, in one process.

Rows compared with TRL (our side in ``harness.bench.ours``; TRL's in ``harness.bench.trl``, the
only module that imports ``trl``, an optional extra):

- ``dpo``: ``methods.dpo.train`` on offline pairs vs ``DPOTrainer`` with reference log-probs
  precomputed once (as ours does); a sample is a preference pair.
- ``grpo``: ``methods.grpo.train`` vs ``GRPOTrainer``, the same proxy RM scoring text; a sample
  is a completion. Completions are ``max_new_tokens`` long on both sides (ours samples with no EOS
  token, TRL with ``min_new_tokens``), so both generate the very same number of tokens.
- ``reward_model``: our Bradley–Terry step loop (``harness.builder.trainer``'s) vs
  ``RewardTrainer``; a sample is a preference pair.

Our-only rows: generation tokens/s (``methods.sampling.sample`` on the world's policy, stopping at
EOS as in training); generation tokens/s through each generation backend (``generation.hf``,
``generation.vllm``: the same prompts, every completion ``max_new_tokens`` long, on one model, the
world policy's architecture with heads at least 32 wide since vLLM's CPU attention rejects the
world's 16; the vLLM engine started outside the timer; its note gives its speed against hf's,
and the row says what to install where vLLM is not); the evaluation's draw (``eval_generation``:
2 answers to each of 256 prompts, ``harness.evaluation.evaluate.SAMPLE_BATCH`` rows a pass, its
note giving its speed against ``eval_generation_64``, the 64 rows a pass it drew before); and PPO,
RRHF, RAFT, PRO samples/s for a one-round budget.

**Equal work.** Each side counts what it actually did (``Work``): samples; real (non-pad) tokens
through the trained model's forward passes with gradients and through the reference; generated
tokens; reward-model calls; optimizer steps. Token counts come from the same forward hooks on both
sides (``ForwardCounter``), the rest from each side's own books (our ``Costs``, the trainer's
state and generation batches). ``check_equal_work`` raises ``WorkMismatchError`` naming every
count that differs, for every pair of runs, warm-ups included, before any ratio is reported.

**Timing.** ``warmup`` untimed runs, then ``repeats`` timed runs, alternating ours and TRL so load
on the machine falls on both alike, under ``threads`` torch threads; fresh models every run, built
outside the timer. A run's time is what a user waits for: our ``train(ctx, params)``; TRL's
trainer construction (tokenising, precomputing reference log-probs) plus ``train()``. Rows report
the median samples/s and the median steady-state rate (from the end of the first optimizer step
to the end of the last, which leaves set-up out).

**Modules**, imported in one direction (this package imports none of them):

- ``config``: the settings, the ``Work`` record and the equal-work check (no torch: the command
  line reads them);
- ``core``: the ``Run`` records, the forward counter, the step clock, ``quiet``;
- ``world``: the tiny world's models and data (``BenchWorld``), shared by both sides;
- ``ours`` and ``trl``: one runner per row, each side (both import ``core`` and ``world``);
- ``report``: the report as table cells, markdown, and its files;
- ``run``: ``run_bench``, the orchestration (imports all of the above).
"""

#!/usr/bin/env bash
# The GPU check: on a machine with a CUDA GPU, our DPO and GRPO step throughput and MFU on a
# ~0.44B Llama-architecture model built from a config (no download), generation through
# transformers' generate and (when vllm is installed) vLLM, and a 2-worker FSDP2 step when two
# GPUs are visible. Writes results/gpu-check/device.json and device.md (a short table).
#
#   scripts/gpu_check.sh [OUT]          # OUT: default results/gpu-check
#
# Runs in a few minutes (under 8: the model is built once, 5 timed steps a row); the CPU path of
# the same code is tested (tests/bench/test_device.py: --device cpu --model tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu-check}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
timeout 480 harness bench --device cuda --model 0.5b --steps 5 --batch-size 8 --out "$out"

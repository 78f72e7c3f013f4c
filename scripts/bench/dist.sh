#!/usr/bin/env bash
# Data-parallel training on CPU (c10d over Gloo) on the 8x512 bench model train.sh uses (the real
# Llama-2 vocabulary, fp32), on the same real chat data (samples of exactly 512 tokens):
#   1. bytes handed to collectives per optimizer step in each shard mode (none, grad-op, full),
#      measured (metrics.jsonl's comm_bytes) next to the formula's prediction;
#   2. tokens/s of 1 process with 2 threads against 2 processes with 1 thread each, per shard
#      mode, and two independent 1-thread runs at once (the ceiling without communication), as
#      ratios against the target (2 processes reach 90% of 1 process), with MFU against fp32 matmul
#      peaks measured in the same run;
#   3. peak memory per rank in those runs;
#   4. per-rank memory with --shard full for N = 1, 2, 4: parameters and optimizer state kept
#      between steps, and the measured peak RSS.
# It prints the CPU model and flags first. dist.py's docstring has the formula and the method.
#   scripts/bench/dist.sh [WORK_DIR]      (needs ../shared beside the project root)
# Knobs (environment): STEPS (per speed run, default 4), WARMUP (steps not timed, default 1), RUNS
# (runs of each configuration, default 3), GLOBAL_BATCH (samples per step, default 4), MICRO
# (micro-batch, default 2), MEM_STEPS (default 2), MEM_LENGTH (tokens per sample in the memory
# runs, default 128), BUILD=0 (use target/release/vicuna as it is instead of `make build`).
# About 7 minutes on a quiet 2-core machine (6.5 on a 2-core AMD EPYC with AVX-512).
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
ensure_corpus
if [ "${BUILD:-1}" = 1 ]; then
  ensure_vicuna
  make -C "$root" --no-print-directory tokenizers >/dev/null 2>&1
fi
[ -x "$vicuna" ] || { echo "no $vicuna: build it (make build) or drop BUILD=0" >&2; exit 1; }
mkdir -p "$work/train"
tok=$root/.cache/tokenizers/llama2
model=$work/small-llama2
if [ ! -f "$model/config.json" ]; then
  "$vicuna" model init --preset small --tokenizer "$tok" -o "$model" --seed 0
fi
clean=$work/train/clean.json
if [ ! -f "$clean" ]; then
  "$vicuna" prep clean "$corpus/sharegpt_raw.json" -o "$clean" >/dev/null
fi
if [ ! -f "$work/train/encoded_512.jsonl" ]; then
  "$vicuna" prep encode "$clean" --tokenizer "$tok" --template vicuna_v1.1 --max-length 512 \
    -o "$work/train/encoded_512.jsonl" >/dev/null
fi
"$root/.venv/bin/python" "$root/scripts/bench/dist.py" "$vicuna" "$model" "$work/train"

#!/usr/bin/env bash
# Training speed and memory on CPU: `vicuna train` against `transformers` (LlamaForCausalLM, sdpa
# attention, torch.optim.AdamW, a plain PyTorch loop) on the same 8x512 model with the real Llama-2
# vocabulary, fp32, 2 threads, on real chat data encoded once for both sides (the large benchmark
# corpus, `vicuna prep clean`, `vicuna prep encode --template vicuna_v1.1`, only samples of exactly
# the context length so every micro-batch is full and unpadded):
#   1. micro-batch 4 x 512 tokens, gradient checkpointing off and on: tokens/s, peak memory, the
#      ratios, and model FLOPs utilisation against a measured fp32 matmul peak;
#   2. micro-batch 1 x 2048 tokens, checkpointing on and off: peak memory and its ratio.
# Peak memory is the PSS of the process tree sampled as measure.py does, and the kernel's VmHWM;
# speed comes from runs of their own that nothing samples (train.py says why).
#   scripts/bench/train.sh [WORK_DIR]      (needs ../shared beside the project root)
# Knobs (environment): STEPS (steps of each 512-token speed run, default 8: 2 warm-up + 6 timed),
# MEM_STEPS (steps of each 512-token memory run, default 3), LONG_STEPS (steps of each 2048-token
# run, default 3), LONG_BATCH (micro-batch at 2048, default 2, as the 7B recipe), THREADS (default 2). Every
# configuration runs in a process of its own; about 7 minutes on a quiet 2-core machine.
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
ensure_corpus
ensure_vicuna
make -C "$root" --no-print-directory tokenizers >/dev/null 2>&1
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
for len in 512 2048; do
  if [ ! -f "$work/train/encoded_$len.jsonl" ]; then
    "$vicuna" prep encode "$clean" --tokenizer "$tok" --template vicuna_v1.1 --max-length "$len" \
      -o "$work/train/encoded_$len.jsonl" >/dev/null
  fi
done
"$root/.venv/bin/python" "$root/scripts/bench/train.py" "$vicuna" "$model" "$work/train"

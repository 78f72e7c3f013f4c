#!/usr/bin/env bash
# Decoding speed: `vicuna generate` vs `transformers` `generate()` (greedy, KV cache, same model,
# same prompt), batch 1 and batch 16, against the memory-bandwidth limit of batch-1 decoding; then
# batch 16 in bf16 against our fp32 and transformers in bf16.
# The model is the 8-layer, 512-wide preset with the real Llama-2 vocabulary (232 MB in fp32).
#   scripts/bench/generate.sh [WORK_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$root/out/bench}
make -C "$root" --no-print-directory build tokenizers >/dev/null 2>&1
vicuna=$root/target/release/vicuna
model=$work/small-llama2
if [ ! -f "$model/config.json" ]; then
  "$vicuna" model init --preset small --tokenizer "$root/.cache/tokenizers/llama2" -o "$model" --seed 0
fi
"$root/.venv/bin/python" "$root/scripts/bench/generate.py" "$vicuna" "$model"

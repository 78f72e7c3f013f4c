#!/usr/bin/env bash
# Tokenization speed: `vicuna prep split` against FastChat's splitter
# (`python -m fastchat.data.split_long_conversation`, PyPI fschat with transformers==4.46.3 and
# sentencepiece==0.2.0; it loads the slow SentencePiece LlamaTokenizer, use_fast=False) on the
# cleaned large benchmark corpus with the real Llama-2 tokenizer and --max-length 2048: wall time,
# conversations/s, MB/s, peak memory (PSS of the whole process tree) and the ratio; then
# `vicuna prep encode` on the same input; then the exactness check: `prep split` with the fast
# Llama-2 encoder and with it disabled (VICUNA_NO_FAST_TOKENIZER=1) must write identical bytes.
#   scripts/bench/encode.sh [WORK_DIR]      (needs ../shared beside the project root, and
#                                            .cache/tokenizers/llama2 from scripts/fetch_tokenizers.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh" "${1:-}"
ensure_corpus
ensure_fastchat
# The splitter's tokenizer: transformers' slow LlamaTokenizer on tokenizer.model (sentencepiece).
if ! "$ref/bin/python" -c "import transformers, sentencepiece" 2>/dev/null; then
  "$ref/bin/pip" install -q transformers==4.46.3 sentencepiece==0.2.0
fi
tok=$root/.cache/tokenizers/llama2
if [ ! -f "$tok/tokenizer.json" ] || [ ! -f "$tok/tokenizer.model" ]; then
  bash "$root/scripts/fetch_tokenizers.sh"
fi
ensure_vicuna
clean=$work/encode_clean.json
"$vicuna" prep clean "$corpus/sharegpt_raw.json" -o "$clean" 2>/dev/null
n=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$clean")
mb=$(python3 -c "import os, sys; print(os.path.getsize(sys.argv[1]) / 1e6)" "$clean")
measure="python3 $root/scripts/bench/measure.py"
echo "input: $clean ($n conversations, ${mb%.*} MB, $(nproc) cores), tokenizer $tok, max length 2048"
ours=$($measure vicuna -- "$vicuna" prep split "$clean" --tokenizer "$tok" --max-length 2048 -o "$work/vicuna_split.json")
plain=$(VICUNA_NO_FAST_TOKENIZER=1 $measure vicuna-plain -- "$vicuna" prep split "$clean" --tokenizer "$tok" \
  --max-length 2048 -o "$work/vicuna_split_plain.json")
theirs=$($measure fastchat -- "$ref/bin/python" -m fastchat.data.split_long_conversation --in-file "$clean" \
  --out-file "$work/fastchat_split.json" --model-name-or-path "$tok" --max-length 2048)
enc=$($measure vicuna-encode -- "$vicuna" prep encode "$clean" --tokenizer "$tok" --max-length 2048 \
  -o "$work/vicuna_encode.jsonl")
python3 - "$n" "$mb" "$ours" "$plain" "$theirs" "$enc" <<'PY'
import json, sys
n, mb = int(sys.argv[1]), float(sys.argv[2])
ours, plain, theirs, enc = (json.loads(a) for a in sys.argv[3:7])
for r, what in ((ours, "prep split"), (plain, "prep split, plain encoder"), (theirs, "FastChat split"),
                (enc, "prep encode")):
    print(f"{r['label']:>14} ({what}): {r['wall_s']:.2f} s, {n / r['wall_s']:.0f} conversations/s, "
          f"{mb / r['wall_s']:.1f} MB/s, peak PSS {r['peak_pss_mb']:.0f} MB")
print(f"speed: vicuna split {ours['wall_s']:.2f} s, fastchat {theirs['wall_s']:.2f} s, "
      f"ratio {theirs['wall_s'] / ours['wall_s']:.1f}x (fast encoder vs plain: {plain['wall_s'] / ours['wall_s']:.1f}x)")
print(f"peak memory (PSS): vicuna {ours['peak_pss_mb']:.0f} MB, fastchat {theirs['peak_pss_mb']:.0f} MB, "
      f"ratio {theirs['peak_pss_mb'] / ours['peak_pss_mb']:.1f}x")
PY
if cmp -s "$work/vicuna_split.json" "$work/vicuna_split_plain.json"; then
  echo "equality: prep split output with and without the fast encoder is byte-identical"
else
  echo "equality: FAILED, $work/vicuna_split.json and $work/vicuna_split_plain.json differ"
  exit 1
fi
